/**
 * Two real daemons (`quicether start`) in lab namespaces: overlay traffic both
 * ways over IPv4 and IPv6, a 100 MB transfer that arrives intact, a crash and
 * restart of one side, a refused second start, and a stop that leaves nothing.
 * Needs root and the compiled tree (`npm test` builds it).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Lab } from '../../src/lab/topology.js'
import { startDaemons, waitForOverlay, quicetherLauncher, type LabDaemon } from '../../src/lab/daemon.js'
import { DEFAULT_NETWORK } from '../../src/lab/scenario.js'
import { overlayAddresses } from '../../src/lab/nodeconfig.js'
import { run, runIn } from '../../src/lab/exec.js'
import { pingOnce } from '../../src/lab/traffic.js'
import { NO_EFFECT, type TopologySpec } from '../../src/lab/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const spec: TopologySpec = {
  nodes: [
    { name: 'a', daemon: true, config: null },
    { name: 'b', daemon: true, config: null },
  ],
  links: [{ name: 'wire', a: 'a', b: 'b', aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' }],
}
const overlay = overlayAddresses(spec, DEFAULT_NETWORK)
const A = overlay.get('a')!
const B = overlay.get('b')!
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

const lab = new Lab({ spec })
const started: LabDaemon[] = []
t.teardown(async () => {
  for (const d of started) await d.stop().catch(() => undefined)
  await lab.stop()
})
await lab.start()
const daemons = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false })
started.push(...daemons.values())
const da = daemons.get('a')!
const db = daemons.get('b')!

t.test('overlay ping both ways, IPv4 and IPv6', async (t) => {
  t.ok(await pingOnce(lab.node('a').netns, B.ipv4, 1000, 'qe0'), 'a → b ipv4')
  t.ok(await pingOnce(lab.node('b').netns, A.ipv4, 1000, 'qe0'), 'b → a ipv4')
  t.ok(await pingOnce(lab.node('a').netns, B.ipv6, 1000, 'qe0'), 'a → b ipv6')
  t.ok(await pingOnce(lab.node('b').netns, A.ipv6), 'b → a ipv6')
})

t.test('both daemons log the peer by name', async (t) => {
  t.ok(da.events(/peer connected/).some((e) => e.peer === 'b'), 'a saw b')
  t.ok(db.events(/peer connected/).some((e) => e.peer === 'a'), 'b saw a')
})

t.test('a 100 MB TCP transfer arrives with a matching checksum', async (t) => {
  const size = 100 * 1024 * 1024
  const sink = spawn('ip', ['netns', 'exec', lab.node('b').netns, process.execPath, fixture('sha-sink.mjs'), B.ipv4, '9100'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const sinkOut: string[] = []
  sink.stdout.setEncoding('utf8').on('data', (d: string) => sinkOut.push(d))
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (sinkOut.join('').includes('listening')) {
        clearInterval(check)
        resolve()
      }
    }, 20)
    sink.once('exit', () => reject(new Error('sink exited early')))
  })
  const src = await runIn(lab.node('a').netns, process.execPath, [fixture('sha-source.mjs'), B.ipv4, '9100', String(size)], { timeoutMs: 120_000 })
  await new Promise((r) => (sink.exitCode !== null ? r(null) : sink.once('exit', r)))
  const got = sinkOut.join('').split('\n').find((l) => /^\d+ [0-9a-f]{64}$/.test(l))
  const sent = src.stdout.trim()
  t.equal(sent.split(' ')[0], String(size), 'the source sent 100 MB')
  t.equal(got, sent, 'bytes and sha256 match at the sink')
})

t.test('the same config started twice: the second refuses with a clear message', async (t) => {
  const r = await runIn(lab.node('a').netns, process.execPath, [quicetherLauncher(), 'start', '--config', da.init.configPath], { allowFail: true, timeoutMs: 20_000 })
  t.equal(r.code, 1, 'exit code 1')
  t.match(r.stderr, /already running/, r.stderr)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  t.ok(await pingOnce(lab.node('a').netns, B.ipv4, 1000, 'qe0'), 'the running daemon is undisturbed')
})

t.test('kill -9 of one daemon, restart: traffic resumes without touching the other', async (t) => {
  const pidB = db.pid
  process.kill(da.pid!, 'SIGKILL')
  await new Promise((r) => setTimeout(r, 300))
  const t0 = Date.now()
  da.start()
  const ms = await waitForOverlay({ netns: lab.node('a').netns, to: B.ipv4, dev: 'qe0', daemons: [da, db], timeoutMs: 20_000, label: 'a → b after restart' })
  t.comment(`traffic resumed ${Date.now() - t0} ms after the restart (ping success after ${ms} ms)`)
  t.equal(db.pid, pidB, 'b was not restarted')
  t.ok(await pingOnce(lab.node('b').netns, A.ipv4, 1000, 'qe0'), 'b → a too')
  const routes = await run('ip', ['-n', lab.node('a').netns, '-j', 'route', 'show', 'table', '5280'])
  const dsts = (JSON.parse(routes.stdout) as { dst: string }[]).map((r) => r.dst)
  t.equal(new Set(dsts).size, dsts.length, 'no duplicate routes after the crash')
})

t.test('a clean stop removes every interface, address, rule and route it created', async (t) => {
  await da.stop()
  const ns = lab.node('a').netns
  const links = JSON.parse((await run('ip', ['-n', ns, '-j', 'link', 'show'])).stdout) as { ifname: string }[]
  t.notOk(links.some((l) => l.ifname === 'qe0'), 'qe0 is gone')
  const rules4 = JSON.parse((await run('ip', ['-n', ns, '-4', '-j', 'rule', 'show'])).stdout) as { priority: number }[]
  const rules6 = JSON.parse((await run('ip', ['-n', ns, '-6', '-j', 'rule', 'show'])).stdout) as { priority: number }[]
  t.notOk([...rules4, ...rules6].some((r) => r.priority >= 5280 && r.priority <= 5299), 'no rule in our priority range')
  const routes = await run('ip', ['-n', ns, '-j', 'route', 'show', 'table', 'all', 'proto', '113'])
  t.same(JSON.parse(routes.stdout || '[]'), [], 'no route of our protocol')
})
