/**
 * The config file is the truth, live: three daemons in lab namespaces (a
 * linked to b and to c); a's file is rewritten, broken, swapped through a
 * symlink and a rename, applied with --confirm; a's owned routes are deleted
 * behind its back. Needs root and the compiled tree.
 */
import t from 'tap'
import { readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import { Lab } from '../../src/lab/topology.js'
import { startDaemons, quicetherLauncher, type LabDaemon } from '../../src/lab/daemon.js'
import { DEFAULT_NETWORK } from '../../src/lab/scenario.js'
import { overlayAddresses } from '../../src/lab/nodeconfig.js'
import { run, runIn } from '../../src/lab/exec.js'
import { IperfServer, pingOnce } from '../../src/lab/traffic.js'
import { NO_EFFECT, type TopologySpec } from '../../src/lab/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const link = (name: string, a: string, b: string) => ({ name, a, b, aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' as const })
const spec: TopologySpec = {
  nodes: ['a', 'b', 'c'].map((name) => ({ name, daemon: true, config: null })),
  links: [link('ab', 'a', 'b'), link('ac', 'a', 'c')],
}
const overlay = overlayAddresses(spec, DEFAULT_NETWORK)
const B = overlay.get('b')!

const lab = new Lab({ spec })
const started: LabDaemon[] = []
t.teardown(async () => {
  if (t.counts.fail > 0) for (const d of started) t.comment(`--- ${d.init.node} log:\n${d.logTail(25).join('\n')}`)
  for (const d of started) await d.stop().catch(() => undefined)
  await lab.stop()
})
await lab.start()
const daemons = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false })
started.push(...daemons.values())
const da = daemons.get('a')!
const nsA = lab.node('a').netns
const cfgPath = da.init.configPath
const original = readFileSync(cfgPath, 'utf8')
const socket = (parseYaml(original) as { control: { socket: string } }).control.socket

type Doc = Record<string, unknown> & { subnets?: unknown; routes?: unknown; tun?: Record<string, unknown> }
function edit(fn: (doc: Doc) => void): string {
  const doc = parseYaml(original) as Doc
  fn(doc)
  return toYaml(doc)
}

async function routes(): Promise<string[]> {
  const r = await run('ip', ['-n', nsA, '-j', 'route', 'show', 'table', '5280'])
  return (JSON.parse(r.stdout || '[]') as { dst: string; protocol?: string }[]).filter((x) => x.protocol === '113' || x.protocol === 'quicether').map((x) => x.dst).sort()
}

async function mtu(): Promise<number> {
  const r = await run('ip', ['-n', nsA, '-j', 'link', 'show', 'qe0'])
  return (JSON.parse(r.stdout) as { mtu: number }[])[0]!.mtu
}

/** Polls until `check` holds; returns the ms it took, or -1 after `limitMs`. */
async function until(check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const t0 = Date.now()
  while (Date.now() - t0 < limitMs) {
    if (await check()) return Date.now() - t0
    await new Promise((r) => setTimeout(r, 25))
  }
  return -1
}

async function status(): Promise<Record<string, unknown>> {
  const r = await runIn(nsA, process.execPath, [quicetherLauncher(), 'status', '--json', '--socket', socket], { allowFail: true })
  return JSON.parse(r.stdout) as Record<string, unknown>
}

const edited = edit((doc) => {
  doc.subnets = ['192.168.77.0/24']
  doc.routes = [{ to: '10.60.0.0/16', via: 'c' }]
  doc.tun = { ...(doc.tun ?? {}), mtu: 1300 }
})

t.test('rewrite A → B: the kernel follows within a second; a transfer over the untouched peer runs on', async (t) => {
  const server = new IperfServer({ netns: lab.node('b').netns, bind: B.ipv4, runId: lab.runId })
  await server.start()
  t.teardown(() => server.stop())
  const transfer = runIn(nsA, 'iperf3', ['-c', B.ipv4, '-t', '4', '-i', '0.5', '-J'], { allowFail: true, timeoutMs: 30_000 }).then((r) => {
    const doc = JSON.parse(r.stdout) as { error?: string; intervals?: { sum: { bits_per_second: number } }[]; end?: { sum_received?: { bits_per_second: number } } }
    return { error: doc.error ?? null, mbit: (doc.end?.sum_received?.bits_per_second ?? 0) / 1e6, intervalsMbit: (doc.intervals ?? []).map((i) => i.sum.bits_per_second / 1e6) }
  })
  await new Promise((r) => setTimeout(r, 1500))
  const before = await routes()
  const t0 = Date.now()
  writeFileSync(cfgPath, edited)
  const ms = await until(async () => (await routes()).includes('10.60.0.0/16') && (await mtu()) === 1300, 10_000)
  t.comment(`kernel converged ${ms} ms after the write (target: 1000 ms)`)
  t.not(ms, -1, 'the route via c and the new MTU appear')
  t.notOk(before.includes('10.60.0.0/16'))
  const result = await transfer
  t.equal(result.error, null, 'iperf3 reported no error')
  t.comment(`transfer during the reload: ${result.mbit.toFixed(0)} Mbit/s; min interval ${Math.min(...result.intervalsMbit).toFixed(0)} Mbit/s`)
  t.ok(result.intervalsMbit.length >= 6, 'the transfer ran to its end')
  t.ok(result.intervalsMbit.every((m) => m > 0), 'no interval without traffic: not interrupted')
  t.ok(Date.now() - t0 < 60_000)
  const st = await status()
  t.equal((st.config as { generation: number }).generation, 2, 'one new generation')
})

t.test('an invalid edit changes nothing and status shows the error with its line', async (t) => {
  const before = await routes()
  writeFileSync(cfgPath, edited.replace('192.168.77.0/24', '192.168.77.0/33'))
  const seen = await until(async () => ((await status()).config as { errors: unknown[] }).errors.length > 0, 5000)
  t.not(seen, -1, 'status reports the error')
  const errors = ((await status()).config as { errors: { line: number; message: string }[] }).errors
  const line = edited.split('\n').findIndex((l) => l.includes('192.168.77.0/24')) + 1
  t.equal(errors[0]?.line, line, `the error points at line ${line}`)
  t.same(await routes(), before, 'routes unchanged')
  t.equal(await mtu(), 1300, 'MTU unchanged')
  t.ok(await pingOnce(nsA, B.ipv4, 1000, 'qe0'), 'the network stays up')
  const st = await runIn(nsA, process.execPath, [quicetherLauncher(), 'status', '--socket', socket], { allowFail: true })
  t.equal(st.code, 1, 'status exits 1 while an error is pending')
  t.match(st.stdout, new RegExp(`:${line}:\\d+: `), 'the text status shows file:line:col')
  writeFileSync(cfgPath, edited)
  t.not(await until(async () => ((await status()).config as { errors: unknown[] }).errors.length === 0, 5000), -1, 'fixing the file clears the error')
})

t.test('an owned route deleted by someone else comes back; a hand-made route in our table stays', async (t) => {
  await run('ip', ['-n', nsA, 'route', 'add', '10.99.0.0/24', 'dev', 'qe0', 'table', '5280'])
  await run('ip', ['-n', nsA, 'route', 'del', '10.60.0.0/16', 'table', '5280'])
  const ms = await until(async () => (await routes()).includes('10.60.0.0/16'), 5000)
  t.comment(`restored after ${ms} ms (target: 2000 ms)`)
  t.not(ms, -1, 'restored')
  const all = await run('ip', ['-n', nsA, '-j', 'route', 'show', 'table', '5280'])
  t.ok((JSON.parse(all.stdout) as { dst: string }[]).some((r) => r.dst === '10.99.0.0/24'), 'the user\'s route is untouched')
  await run('ip', ['-n', nsA, 'route', 'del', '10.99.0.0/24', 'table', '5280'])
})

t.test('a rename over the file and a symlink swap are both seen', async (t) => {
  const tmp = join(lab.dir, 'a', 'next.yaml')
  writeFileSync(tmp, edit((doc) => (doc.routes = [{ to: '10.61.0.0/16', via: 'c' }])))
  renameSync(tmp, cfgPath)
  t.not(await until(async () => (await routes()).includes('10.61.0.0/16'), 5000), -1, 'rename seen')

  // Kubernetes ConfigMap style: the file is a symlink into ..data, and ..data is swapped.
  const dir = join(lab.dir, 'a')
  const v1 = join(dir, '..v1')
  const v2 = join(dir, '..v2')
  for (const [d, route] of [[v1, '10.62.0.0/16'], [v2, '10.63.0.0/16']] as const) {
    await run('mkdir', ['-p', d])
    writeFileSync(join(d, 'quicether.yaml'), edit((doc) => (doc.routes = [{ to: route, via: 'c' }])))
  }
  symlinkSync('..v1', join(dir, '..data'))
  unlinkSync(cfgPath)
  symlinkSync('..data/quicether.yaml', cfgPath)
  t.not(await until(async () => (await routes()).includes('10.62.0.0/16'), 5000), -1, 'symlinked file seen')
  symlinkSync('..v2', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  t.not(await until(async () => (await routes()).includes('10.63.0.0/16'), 5000), -1, 'symlink swap seen')
  unlinkSync(cfgPath)
  writeFileSync(cfgPath, edited)
  t.not(await until(async () => (await routes()).includes('10.60.0.0/16'), 5000), -1, 'back to a plain file')
})

t.test('apply --confirm reverts unless confirmed, and keeps when confirmed', async (t) => {
  const side = join(lab.dir, 'a', 'try.yaml')
  const apply = (window = '2s') => runIn(nsA, process.execPath, [quicetherLauncher(), 'apply', '--config', side, '--confirm', window, '--socket', socket], { allowFail: true })
  writeFileSync(side, edit((doc) => (doc.routes = [{ to: '10.64.0.0/16', via: 'c' }])))
  const r1 = await apply()
  t.equal(r1.code, 0, r1.stderr)
  t.ok((await routes()).includes('10.64.0.0/16'), 'applied at once')
  t.not(await until(async () => !(await routes()).includes('10.64.0.0/16'), 6000), -1, 'reverted when not confirmed')
  t.equal(readFileSync(cfgPath, 'utf8'), edited, 'the config file was not touched')

  // A window long enough for a second CLI process to start on a loaded machine; the check waits past it.
  const deadline = Date.now() + 5000
  const r2 = await apply('5s')
  t.equal(r2.code, 0, r2.stderr)
  const c = await runIn(nsA, process.execPath, [quicetherLauncher(), 'confirm', '--socket', socket], { allowFail: true })
  t.equal(c.code, 0, c.stderr)
  // Past the window, counted from before the apply (the window starts after it began).
  await new Promise((r) => setTimeout(r, Math.max(0, deadline + 500 - Date.now())))
  t.ok((await routes()).includes('10.64.0.0/16'), 'kept after the deadline')
  t.equal(readFileSync(cfgPath, 'utf8'), readFileSync(side, 'utf8'), 'the confirmed file became the config')
})

t.test('plan: nothing pending exits 0, a pending change exits 2 and names it', async (t) => {
  const plan = (file: string) => runIn(nsA, process.execPath, [quicetherLauncher(), 'plan', '--config', file, '--socket', socket], { allowFail: true })
  const same = await plan(cfgPath)
  t.equal(same.code, 0, same.stdout + same.stderr)
  const other = join(lab.dir, 'a', 'plan.yaml')
  writeFileSync(other, edit((doc) => (doc.routes = [{ to: '10.65.0.0/16', via: 'c' }])))
  const pending = await plan(other)
  t.equal(pending.code, 2)
  t.match(pending.stdout, /\+ route 10\.65\.0\.0\/16 dev qe0 table 5280/)
  t.notOk((await routes()).includes('10.65.0.0/16'), 'a plan changes nothing')

  // A peer the new config adds is an engine table change: plan names it, and applies nothing.
  const newKey = Buffer.alloc(32, 77).toString('base64')
  const withPeer = join(lab.dir, 'a', 'plan-peer.yaml')
  writeFileSync(withPeer, edit((doc) => ((doc.peers as unknown[]).push({ name: 'newcomer', key: newKey }))))
  const peerPlan = await plan(withPeer)
  t.equal(peerPlan.code, 2, peerPlan.stdout + peerPlan.stderr)
  t.match(peerPlan.stdout, /\+ engine peer newcomer \(/)
  const st = (await status()) as { peers: { name: string }[] }
  t.notOk(st.peers.some((p) => p.name === 'newcomer'), 'a plan admits nobody')
})

t.test('a listen-port change rebuilds the tunnels in-process, and the mesh comes back', async (t) => {
  const pid = da.pid
  const moved = readFileSync(cfgPath, 'utf8')
  const doc = parseYaml(moved) as Doc & { listen: { port: number } }
  doc.listen = { ...doc.listen, port: 7444 }
  writeFileSync(cfgPath, toYaml(doc))
  t.not(await until(async () => ((await status()).config as { generation: number } | undefined)?.generation !== undefined && (await runIn(nsA, 'ss', ['-Hlun', 'sport = :7444'], { allowFail: true })).stdout.includes('7444'), 10_000), -1, 'listening on the new port')
  t.not(await until(async () => pingOnce(nsA, B.ipv4, 300, 'qe0'), 15_000), -1, 'a reaches b again')
  t.equal(da.pid, pid, 'same process: no restart')
  writeFileSync(cfgPath, moved)
  t.not(await until(async () => (await runIn(nsA, 'ss', ['-Hlun', 'sport = :7443'], { allowFail: true })).stdout.includes('7443'), 10_000), -1, 'back on 7443')
  t.not(await until(async () => pingOnce(nsA, B.ipv4, 300, 'qe0'), 15_000), -1, 'and reachable')
})

t.test('kill -9 and restart: the same routes, none duplicated or leaked', async (t) => {
  const before = await routes()
  process.kill(da.pid!, 'SIGKILL')
  await new Promise((r) => setTimeout(r, 300))
  da.start()
  t.not(await until(async () => pingOnce(nsA, B.ipv4, 300, 'qe0'), 20_000), -1, 'back up')
  const after = await routes()
  t.same(after, before, 'same owned routes')
  t.equal(new Set(after).size, after.length, 'no duplicates')
})
