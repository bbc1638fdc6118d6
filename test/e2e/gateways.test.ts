/**
 * Gateways end to end, with real daemons in lab namespaces:
 *
 *        home ── gw1 ── inet (198.51.100.10: "the internet")
 *                 │  ╲
 *        c ───────┤   lan (192.168.77.10)
 *         ╲       │  ╱
 *          ────── gw2
 *
 * - hub: c and home share no link; gw1 (`forward-for: [c, home]`) routes
 *   between them, and each accepts the other's source only through gw1;
 * - subnet routers: gw1 (priority 10) and gw2 (priority 20) both advertise
 *   the LAN with `masquerade: true`; c reaches the LAN host through gw1, and
 *   through gw2 once gw1 is killed (a dead machine, not a clean stop);
 * - exit: gw1 offers `0.0.0.0/0`; c (`exit-node: gw1`) reaches the internet
 *   host through the tunnel, masqueraded by gw1, and no packet to it leaves
 *   c's uplinks outside the tunnel (an nftables counter on c); when gw1 dies
 *   c falls back to its own default route; with `exit-node-required` it
 *   blocks instead.
 * Needs root and the compiled tree (`npm test` builds it).
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { parse, stringify } from 'yaml'
import { Lab } from '../../src/lab/topology.js'
import { quicetherLauncher, startDaemons, type LabDaemon } from '../../src/lab/daemon.js'
import { DEFAULT_NETWORK } from '../../src/lab/scenario.js'
import { overlayAddresses } from '../../src/lab/nodeconfig.js'
import { run, runIn, timeUntil } from '../../src/lab/exec.js'
import { pingOnce } from '../../src/lab/traffic.js'
import { NO_EFFECT, type LinkSpec, type TopologySpec } from '../../src/lab/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const LAN = '192.168.77.0/24'
const LAN_HOST = '192.168.77.10'
const INET_HOST = '198.51.100.10'
const LOOP = '10.99.0.0/24'
const link = (name: string, a: string, b: string): LinkSpec => ({ name, a, b, aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' })
const spec: TopologySpec = {
  nodes: [
    { name: 'c', daemon: true, config: { 'exit-node': 'gw1' } },
    {
      name: 'gw1',
      daemon: true,
      config: {
        node: { role: 'gateway' },
        subnets: [{ prefix: '0.0.0.0/0', exit: true }, { prefix: LAN, masquerade: true, priority: 10 }],
        routes: [{ to: LOOP, via: 'gw2' }],
        gateway: {
          'forward-for': ['c', 'home'],
          ingress: [
            { listen: '0.0.0.0:8080', to: 'home:8080', proto: 'tcp' },
            { listen: '0.0.0.0:8081', to: 'c:8081', proto: 'tcp' },
          ],
        },
      },
    },
    {
      name: 'gw2',
      daemon: true,
      // A routing loop between the two hubs (gw1 routes 10.99.0.0/24 to gw2 too).
      config: { node: { role: 'gateway' }, subnets: [{ prefix: LAN, masquerade: true, priority: 20 }], gateway: { 'forward-for': ['c'] }, routes: [{ to: LOOP, via: 'gw1' }] },
    },
    { name: 'home', daemon: true, config: null },
    { name: 'lan', daemon: false, config: null },
    { name: 'inet', daemon: false, config: null },
  ],
  // Link i is 10.251.i.0/24, a = .1, b = .2; the a end dials.
  links: [link('c-gw1', 'c', 'gw1'), link('c-gw2', 'c', 'gw2'), link('home-gw1', 'home', 'gw1'), link('gw1-lan', 'gw1', 'lan'), link('gw2-lan', 'gw2', 'lan'), link('gw1-inet', 'gw1', 'inet'), link('gw1-gw2', 'gw1', 'gw2')],
}
const overlay = overlayAddresses(spec, DEFAULT_NETWORK)
const C = overlay.get('c')!
const HOME = overlay.get('home')!

const lab = new Lab({ spec })
const started: LabDaemon[] = []
t.teardown(async () => {
  for (const d of started) await d.stop().catch(() => undefined)
  await lab.stop()
})
const ns = (n: string) => lab.node(n).netns
const sh = (n: string, ...args: string[]) => run('ip', ['-n', ns(n), ...args])
const uplinks = () => [lab.link('c-gw1').ifA, lab.link('c-gw2').ifA]
const daemons = new Map<string, LabDaemon>()
try {
  await setUp()
} catch (err) {
  // A failed set-up must not leave namespaces behind (teardown runs only once tests do).
  for (const d of started) await d.stop().catch(() => undefined)
  await lab.stop()
  throw err
}

async function setUp(): Promise<void> {
await lab.start()
// The LAN host and the internet host, on loopback aliases behind their gateways.
await sh('lan', 'addr', 'add', `${LAN_HOST}/32`, 'dev', 'lo')
await sh('gw1', 'route', 'add', LAN, 'via', '10.251.3.2')
await sh('gw2', 'route', 'add', LAN, 'via', '10.251.4.2')
await sh('inet', 'addr', 'add', `${INET_HOST}/32`, 'dev', 'lo')
await sh('gw1', 'route', 'add', 'default', 'via', '10.251.5.2')
// c's own default route (what a fallen-back exit uses): its second uplink. gw2 knows no way to the
// internet host, so only the tunnel through gw1 reaches it, and nothing forms a direct c–home path.
await sh('c', 'route', 'add', 'default', 'via', '10.251.1.2')
// Leaks: packets to the internet host leaving c by an uplink, outside the tunnel.
await runIn(ns('c'), 'nft', ['-f', '-'], {
  input: `table inet qetest {\nchain out {\ntype filter hook output priority 0;\noifname { ${uplinks().map((u) => `"${u}"`).join(', ')} } ip daddr ${INET_HOST} counter\n}\n}\n`,
})
const all = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false })
for (const [k, v] of all) daemons.set(k, v)
started.push(...all.values())
}
const leaks = async (): Promise<number> => {
  const r = await runIn(ns('c'), 'nft', ['-j', 'list', 'table', 'inet', 'qetest'])
  const rule = (JSON.parse(r.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables.find((x) => x.rule)
  return rule?.rule?.expr.find((e) => e.counter)?.counter?.packets ?? -1
}


/** A daemon's `status` (JSON, over its control socket). */
async function status(node: string): Promise<Record<string, unknown>> {
  const d = daemons.get(node)!
  // Exit code 1 while the config has errors: the JSON is printed all the same.
  const r = await run(process.execPath, [quicetherLauncher(), 'status', '--json', '--config', d.init.configPath], { allowFail: true })
  return JSON.parse(r.stdout) as Record<string, unknown>
}

/** Polls `ok` until it holds or `ms` pass. */
const until = async (ok: () => Promise<boolean>, ms: number): Promise<boolean> => (await timeUntil(ok, ms, 200)) !== null

/** The source address a TCP connection from `from` to `dst:port` arrives with at `at` (listening on `listen`, default `dst`). */
async function sourceSeen(at: string, from: string, dst: string, port: number, listen = dst): Promise<string> {
  const server = `const s=require('net').createServer((c)=>{console.log(c.remoteAddress.replace(/^::ffff:/,''));c.end();s.close()});s.listen(${port},'${listen}',()=>console.log('up'))`
  const { spawn } = await import('node:child_process')
  const child = spawn('ip', ['netns', 'exec', ns(at), process.execPath, '-e', server], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.trim().split('\n')))
  try {
    await until(async () => lines.includes('up'), 5000)
    await runIn(ns(from), process.execPath, ['-e', `require('net').connect(${port},'${dst}').on('error',()=>process.exit(1)).on('close',()=>process.exit(0))`], { timeoutMs: 5000 })
    await until(async () => lines.length > 1, 3000)
    return lines.find((l) => l !== 'up') ?? ''
  } finally {
    child.kill()
  }
}

t.test('the tunnels come up: c with gw1 and gw2, home with gw1', async (t) => {
  t.ok(await until(() => pingOnce(ns('c'), overlay.get('gw1')!.ipv4, 1000, 'qe0'), 20_000), 'c → gw1')
  t.ok(await until(() => pingOnce(ns('c'), overlay.get('gw2')!.ipv4, 1000, 'qe0'), 20_000), 'c → gw2')
  t.ok(await until(() => pingOnce(ns('home'), overlay.get('gw1')!.ipv4, 1000, 'qe0'), 20_000), 'home → gw1')
})

t.test('hub: c and home, with no tunnel between them, reach each other through gw1', async (t) => {
  t.ok(await until(() => pingOnce(ns('c'), HOME.ipv4, 1000), 15_000), 'c → home (IPv4)')
  t.ok(await pingOnce(ns('home'), C.ipv4, 1000), 'home → c')
  t.ok(await until(() => pingOnce(ns('c'), HOME.ipv6, 1000), 5000), 'c → home (IPv6)')
  // The hop is a router hop: the TTL went down by one.
  const r = await runIn(ns('c'), 'ping', ['-n', '-c', '1', '-W', '1', HOME.ipv4], { allowFail: true })
  t.match(r.stdout, /ttl=63/, 'TTL decremented once at the hub')
  const ttl1 = await runIn(ns('c'), 'ping', ['-n', '-c', '1', '-W', '1', '-t', '1', HOME.ipv4], { allowFail: true })
  t.match(ttl1.stdout, new RegExp(`From ${overlay.get('gw1')!.ipv4.replace(/\./g, '\\.')}.*Time to live exceeded`), 'TTL 1: the hub sends the ICMP error back')
  const routes = await sh('c', 'route', 'get', HOME.ipv4)
  t.match(routes.stdout, /dev qe0/, 'the kernel sends it into the tunnel; the engine picks the hub')
})

t.test('a source spoofed through the hub is dropped and counted', async (t) => {
  // home sends with c's address as its source (a raw ping from an address it does not own):
  // gw1 checks the source of what home sends into the tunnel, so it never reaches c.
  const spoofedAtHub = async (): Promise<number> => ((await status('gw1')).engine as { global: { spoofed: number } }).global.spoofed
  const before = await spoofedAtHub()
  await sh('home', 'addr', 'add', `${overlay.get('gw2')!.ipv4}/32`, 'dev', 'lo')
  const r = await runIn(ns('home'), 'ping', ['-n', '-c', '2', '-W', '1', '-I', overlay.get('gw2')!.ipv4, C.ipv4], { allowFail: true })
  await sh('home', 'addr', 'del', `${overlay.get('gw2')!.ipv4}/32`, 'dev', 'lo')
  t.not(r.code, 0, 'no reply to a spoofed source')
  t.ok((await spoofedAtHub()) >= before + 2, 'the hub dropped both as spoofed')
})

t.test('a routing loop between two hubs ends: packets do not circulate', async (t) => {
  const drops = async (n: string): Promise<number> => {
    const g = ((await status(n)).engine as { global: { spoofed: number; noRoute: number } }).global
    return g.spoofed + g.noRoute
  }
  const dropped0 = (await drops('gw1')) + (await drops('gw2'))
  const tx0 = ((await status('gw2')).engine as { global: { tunRx: number } }).global.tunRx
  const r = await runIn(ns('gw1'), 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '1', '10.99.0.1'], { allowFail: true })
  t.not(r.code, 0, 'nothing answers inside the loop')
  const tx = ((await status('gw2')).engine as { global: { tunRx: number } }).global.tunRx - tx0
  t.ok(tx <= 3 * 2, `gw2 forwarded each packet a bounded number of times (${tx} for 3 pings), never until the TTL ran out by circulating`)
  t.ok((await drops('gw1')) + (await drops('gw2')) >= dropped0 + 3, 'each looping packet was dropped and counted (source check at the second hub)')
})

t.test('subnet router with masquerade: c reaches the LAN host through gw1 (priority 10), which it sees as gw1', async (t) => {
  t.ok(await until(() => pingOnce(ns('c'), LAN_HOST, 1000), 15_000), 'c → LAN host')
  t.equal(await sourceSeen('lan', 'c', LAN_HOST, 9301), '10.251.3.1', 'the LAN host sees gw1\'s LAN address: it needs no route back')
})

t.test('exit: c reaches the internet host through gw1, masqueraded, and nothing leaks', async (t) => {
  t.ok(await until(() => pingOnce(ns('c'), INET_HOST, 1000), 15_000), 'c → internet host')
  const route = await sh('c', 'route', 'get', INET_HOST)
  t.match(route.stdout, /dev qe0/, 'the internet host is routed into the tunnel')
  const tunnel = await sh('c', 'route', 'get', '10.251.0.2')
  t.notMatch(tunnel.stdout, /dev qe0/, 'the gateway\'s own address (the tunnel\'s UDP) is not')
  t.equal(await sourceSeen('inet', 'c', INET_HOST, 9302), '10.251.5.1', 'the internet sees gw1\'s address')
  t.equal(await leaks(), 0, 'no packet to the internet host left c outside the tunnel')
  const lan = await sh('c', 'route', 'get', '10.251.1.2')
  t.match(lan.stdout, /dev qel-/, 'the LAN next to c stays local')
})

t.test('ingress: a public port of gw1 reaches a member; the client address is kept only toward a member that exits through gw1', async (t) => {
  const GW1_PUBLIC = '10.251.5.1'
  t.equal(await sourceSeen('home', 'inet', GW1_PUBLIC, 8080, HOME.ipv4), overlay.get('gw1')!.ipv4, 'home (no exit through gw1) sees gw1: masqueraded, so its reply goes back through the tunnel')
  t.equal(await sourceSeen('c', 'inet', GW1_PUBLIC, 8081, C.ipv4), '10.251.5.2', 'c (exit-node: gw1) sees the internet client itself')
})

t.test('an ingress port already in use on the gateway: refused at plan, nothing changed', async (t) => {
  const d = daemons.get('gw1')!
  const text = await readFile(d.init.configPath, 'utf8')
  const cfg = parse(text) as { gateway: { ingress: unknown[] } }
  // The engine's own UDP port is in use on gw1.
  cfg.gateway.ingress.push({ listen: '0.0.0.0:7443', to: 'home:7443', proto: 'udp' })
  await writeFile(d.init.configPath, stringify(cfg))
  const failed = await until(async () => JSON.stringify((await status('gw1')).lastApply ?? {}).includes('QE_INGRESS_PORT_IN_USE'), 10_000)
  t.ok(failed, 'the apply fails with QE_INGRESS_PORT_IN_USE')
  const table = await runIn(ns('gw1'), 'nft', ['list', 'table', 'inet', 'quicether-qe0'])
  t.notMatch(table.stdout, /7443/, 'the table was not touched')
  t.equal(await sourceSeen('home', 'inet', '10.251.5.1', 8080, HOME.ipv4), overlay.get('gw1')!.ipv4, 'the ingress that was there still works')
  await writeFile(d.init.configPath, text)
})

t.test('gw1 dies: the LAN moves to gw2, the exit falls back to c\'s own default route', async (t) => {
  const gw1 = daemons.get('gw1')!
  const t0 = Date.now()
  process.kill(gw1.pid!, 'SIGKILL')
  t.ok(await until(() => pingOnce(ns('c'), LAN_HOST, 500), 10_000), 'the LAN host answers again, through gw2')
  t.comment(`LAN reachable again ${Date.now() - t0} ms after the kill`)
  t.equal(await sourceSeen('lan', 'c', LAN_HOST, 9303), '10.251.4.1', 'now masqueraded by gw2')
  t.ok(await until(async () => !(await sh('c', 'route', 'get', INET_HOST)).stdout.includes('qe0'), 10_000), 'internet traffic leaves by c\'s own default route')
  t.comment(`exit fallback ${Date.now() - t0} ms after the kill`)
})

t.test('exit-node-required: while the exit is down, internet traffic is blocked, not leaked', async (t) => {
  const dc = daemons.get('c')!
  const cfg = parse(await readFile(dc.init.configPath, 'utf8')) as Record<string, unknown>
  await writeFile(dc.init.configPath, stringify({ ...cfg, 'exit-node-required': true }))
  const blocked = await until(async () => (await run('ip', ['-n', ns('c'), 'route', 'get', INET_HOST], { allowFail: true })).code !== 0, 10_000)
  t.ok(blocked, 'the route lookup fails: unreachable')
  const before = await leaks()
  t.notOk(await pingOnce(ns('c'), INET_HOST, 1000), 'no reply')
  t.equal(await leaks(), before, 'and nothing left by an uplink')
  t.ok(await pingOnce(ns('c'), '10.251.1.2', 1000), 'the LAN next to c still works')
})

t.test('a clean stop of c removes its exit rules and table', async (t) => {
  await daemons.get('c')!.stop()
  const rules = JSON.parse((await sh('c', '-j', 'rule', 'show')).stdout) as { priority: number }[]
  t.notOk(rules.some((r) => r.priority >= 5280 && r.priority <= 5299), 'no rule in our range')
  const routes = await sh('c', '-j', 'route', 'show', 'table', 'all', 'proto', '113')
  t.same(JSON.parse(routes.stdout || '[]'), [], 'no route of ours')
  t.ok((await sh('c', 'route', 'get', INET_HOST)).stdout.includes('10.251.1.2'), 'the machine\'s own default route is in charge again')
})
