/**
 * `lab pair` and `lab demo` with real quicether daemons (root; the compiled
 * tree: npm run build). Each leaves nothing behind, also when interrupted.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runPair } from '../../src/lab/pair.js'
import { listLabNetns } from '../../src/lab/netns.js'
import { markedProcesses } from '../../src/lab/teardown.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const bin = `${root}bin/quicether.js`
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0

async function leftovers(runId: string): Promise<string[]> {
  const ns = await listLabNetns(runId)
  const procs = (await markedProcesses(runId)).map(String)
  return [...ns, ...procs, ...(existsSync(`/tmp/qel-${runId}`) ? [`/tmp/qel-${runId}`] : [])]
}

function cli(args: string[]): { child: ReturnType<typeof spawn>; out: () => string; err: () => string; done: Promise<number> } {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const done = new Promise<number>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 0))))
  return { child, out: () => out, err: () => err, done }
}

async function tests(): Promise<void> {
  t.test('pair: throughput, RTT, retransmits and CPU per Gbit through the tunnel over an emulated link', async (t) => {
    const r = await runPair({ rate: 50e6, delay: 5, loss: 0, seconds: 2, streams: 1 })
    t.same(await leftovers(r.run_id), [], 'nothing of the run is left')
    t.ok(r.mbit > 0 && r.mbit <= 50 * 1.05, `${r.mbit} Mbit/s through a 50 Mbit/s link`)
    t.ok(r.rtt_ms_p50 >= 9.5, `RTT p50 ${r.rtt_ms_p50} ms over a link of 2 × 5 ms`)
    t.ok(r.rtt_ms_p99 >= r.rtt_ms_p50)
    t.equal(r.ping_received, r.ping_sent)
    t.type(r.retransmits, 'number')
    t.ok(r.cpu_s_per_gbit > 0, `${r.cpu_s_per_gbit} CPU s per Gbit`)
    t.ok(r.bytes > 0)
    t.same(r.link, { rate_mbit: 50, delay_ms: 5, loss_pct: 0 })
  })

  t.test('pair: Ctrl-C in the middle of the transfer tears everything down', async (t) => {
    const run = cli(['lab', 'pair', '--seconds', '60', '--json'])
    const runId = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /building run ([0-9a-f]{4})/.exec(run.err())
        if (m?.[1] && run.err().includes('iperf3 TCP')) {
          clearInterval(timer)
          resolve(m[1])
        }
      }, 100)
      void run.done.then(() => {
        clearInterval(timer)
        reject(new Error(`lab pair exited early:\n${run.err()}`))
      })
    })
    run.child.kill('SIGINT')
    const code = await run.done
    t.not(code, 0, 'an interrupted run does not exit 0')
    t.match(run.err(), /QE_LAB_ABORTED/)
    t.same(await leftovers(runId), [], 'nothing of the run is left')
  })

  t.test('demo: the two sites find each other, ping and transfer, then everything is gone', async (t) => {
    const run = cli(['lab', 'demo'])
    const code = await run.done
    t.equal(code, 0, run.err())
    const out = run.out()
    t.match(out, /found each other in [0-9.]+ s/)
    t.match(out, /peer up/i, "a peer-up line from the daemons' logs")
    t.match(out, /TCP through the tunnel\s+[0-9.]+ Mbit\/s/)
    t.match(out, /Bonding: a rural desk/, 'the bonding scene runs')
    t.match(out, /bonded total\s+[0-9.]+ Mbit\/s|did not bond/, 'and reports a total, or says plainly that it did not bond')
    const m = /torn down \(run ([0-9a-f]{4})/.exec(out)
    t.ok(m, 'the demo says it tore down')
    if (m?.[1]) t.same(await leftovers(m[1]), [])
  })
}

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
} else if (!['ip', 'tc', 'nft', 'iperf3', 'ping'].every(have)) {
  t.plan(0, 'needs ip, tc, nft, iperf3 and ping')
} else if (!existsSync(`${root}dist/cli/main.js`)) {
  t.plan(0, 'needs the compiled tree (npm run build)')
} else {
  await tests()
}
