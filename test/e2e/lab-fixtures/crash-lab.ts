// Builds a lab with a delay line (so there is a process to leave behind),
// prints its run id, and waits to be killed: the crash case of lab.test.ts.
import { Lab } from '../../../src/lab/topology.js'

const dir = { rate: 20e6, delay: 5, jitter: 0, loss: 0.01 }
const lab = new Lab({
  spec: {
    nodes: [
      { name: 'alpha', daemon: false, config: null },
      { name: 'beta', daemon: false, config: null },
    ],
    links: [{ name: 'l', a: 'alpha', b: 'beta', aToB: dir, bToA: dir, queue: null, nat: 'cone' }],
  },
})
await lab.start()
process.stdout.write(`${lab.runId}\n`)
setInterval(() => undefined, 1000)
