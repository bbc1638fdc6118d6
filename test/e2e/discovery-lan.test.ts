/**
 * LAN discovery over real multicast, in namespaces this file builds and
 * deletes (also on failure). Segment 1 is a bridge in a switch namespace with
 * nodes a, b and c; segment 2 is a veth pair from c (its second interface) to
 * d. Every node runs test/e2e/fixtures/lan-node.ts. Checks: each node hears
 * the others on its segment over IPv4 and IPv6 link-local, on the right
 * interface; d never hears a or b (nor they d), though c forwards IPv4;
 * frames without the magic or too big are counted and dropped; own echoes
 * are dropped; stop() leaves no socket and no timer.
 */
import t from 'tap'
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { LAN_GROUP_V4, LAN_GROUP_V6, type LanStats } from '../../src/discovery/lan.js'
import { createNetns, waitFor, type Netns } from '../system/netns.js'
import { nodeArgs } from './fixtures/node-script.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const FIXTURE = fileURLToPath(new URL('./fixtures/lan-node.ts', import.meta.url))

interface Announcement {
  payload: string
  from: { address: string; port: number }
  interface: string
}
interface Iface {
  name: string
  ipv4: string[]
  ipv6LinkLocal: string | null
}
interface Node {
  readonly ns: Netns
  readonly child: ChildProcessWithoutNullStreams
  readonly events: Record<string, unknown>[]
  readonly pid: number
  readonly interfaces: Iface[]
  heard(): Announcement[]
  send(cmd: Record<string, unknown>): void
  next(event: string): Promise<Record<string, unknown>>
  stderr(): string
  exited: Promise<number | null>
}

function makeNs(): Netns {
  const ns = createNetns(t, { tuns: [] })
  // Addresses are usable at once: no duplicate address detection on links made after this.
  execFileSync('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'])
  return ns
}

const sw = makeNs()
const [a, b, c, d] = [makeNs(), makeNs(), makeNs(), makeNs()] as const
sw.ip('link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
sw.ip('link', 'set', 'br0', 'up')
const seg1: [Netns, string, string][] = [
  [a, 'pa', '10.71.1.1/24'],
  [b, 'pb', '10.71.1.2/24'],
  [c, 'pc', '10.71.1.3/24'],
]
for (const [ns, port, addr] of seg1) {
  ns.ip('link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', port, 'netns', sw.name)
  sw.ip('link', 'set', port, 'master', 'br0', 'up')
  ns.ip('addr', 'add', addr, 'dev', 'lan0')
  ns.ip('link', 'set', 'lan0', 'up')
}
c.ip('link', 'add', 'lan1', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', d.name)
c.ip('addr', 'add', '10.71.2.1/24', 'dev', 'lan1')
d.ip('addr', 'add', '10.71.2.2/24', 'dev', 'lan0')
c.ip('link', 'set', 'lan1', 'up')
d.ip('link', 'set', 'lan0', 'up')
// c routes between the segments: multicast must still stay on its link.
execFileSync('ip', ['netns', 'exec', c.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'])

const linkLocalReady = (ns: Netns, dev: string): boolean => {
  const out = ns.ip('-6', 'addr', 'show', 'dev', dev, 'scope', 'link')
  return /inet6 fe80::/.test(out) && !/tentative/.test(out)
}
// No assertion at the top level: tap would end the root test (and run the teardown) at the next idle moment.
if (!(await waitFor(() => [a, b, c, d].every((ns) => linkLocalReady(ns, 'lan0')) && linkLocalReady(c, 'lan1'), 5000))) {
  throw new Error('IPv6 link-local addresses did not become ready')
}

const started: Node[] = []
t.teardown(async () => {
  for (const n of started) {
    if (n.child.exitCode === null && n.child.signalCode === null) {
      n.child.kill('SIGKILL')
      await n.exited
    }
  }
})

async function startNode(ns: Netns, interfaces: string[], payload: string): Promise<Node> {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, ...nodeArgs(FIXTURE), JSON.stringify({ interfaces, payload, intervalMs: 300 })], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const events: Record<string, unknown>[] = []
  const waiters: { event: string; resolve: (e: Record<string, unknown>) => void }[] = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    const e = JSON.parse(line) as Record<string, unknown>
    events.push(e)
    const i = waiters.findIndex((w) => w.event === e.event)
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(e)
  })
  const next = (event: string): Promise<Record<string, unknown>> =>
    Promise.race([
      new Promise<Record<string, unknown>>((resolve) => waiters.push({ event, resolve })),
      exited.then(() => {
        throw new Error(`lan-node in ${ns.name} exited: ${err}`)
      }),
    ])
  const ready = await next('ready')
  const node: Node = {
    ns,
    child,
    events,
    pid: ready.pid as number,
    interfaces: ready.interfaces as Iface[],
    heard: () => events.filter((e) => e.event === 'announcement') as unknown as Announcement[],
    send: (cmd) => child.stdin.write(JSON.stringify(cmd) + '\n'),
    next,
    stderr: () => err,
    exited,
  }
  started.push(node)
  return node
}

const na = await startNode(a, ['lan0'], 'node-a')
const nb = await startNode(b, [], 'node-b')
const nc = await startNode(c, ['lan0', 'lan1'], 'node-c')
const nd = await startNode(d, [], 'node-d')

const iface = (n: Node, name: string): Iface => {
  const found = n.interfaces.find((i) => i.name === name)
  if (!found) throw new Error(`no ${name} in ${JSON.stringify(n.interfaces)}`)
  return found
}
const heardFrom = (rx: Node, payload: string, on: string, from: string): boolean =>
  rx.heard().some((h) => h.payload === payload && h.interface === on && h.from.address === from)
const stats = async (n: Node): Promise<LanStats> => {
  n.send({ cmd: 'stats' })
  return (await n.next('stats')) as unknown as LanStats
}

t.test('interfaces(): explicit lists and auto mode, with IPv4 and link-local addresses', async (t) => {
  t.same(na.interfaces.map((i) => i.name), ['lan0'])
  t.same(nb.interfaces.map((i) => i.name), ['lan0'], 'auto mode leaves out lo')
  t.same(nc.interfaces.map((i) => i.name), ['lan0', 'lan1'])
  t.same(nd.interfaces.map((i) => i.name), ['lan0'])
  t.same(iface(nc, 'lan1').ipv4, ['10.71.2.1'])
  for (const n of [na, nb, nc, nd]) for (const i of n.interfaces) t.match(i.ipv6LinkLocal, /^fe80:/)
})

t.test('each node hears the others on its segment, over IPv4 and IPv6 link-local, on the right interface', async (t) => {
  const seg1Nodes: [Node, string][] = [
    [na, 'node-a'],
    [nb, 'node-b'],
    [nc, 'node-c'],
  ]
  const expect: [Node, string, string, string][] = [] // receiver, payload, interface, source
  for (const [rx] of seg1Nodes) {
    for (const [tx, payload] of seg1Nodes) {
      if (rx === tx) continue
      const src = iface(tx, 'lan0')
      expect.push([rx, payload, 'lan0', src.ipv4[0] ?? ''], [rx, payload, 'lan0', src.ipv6LinkLocal ?? ''])
    }
  }
  expect.push([nc, 'node-d', 'lan1', '10.71.2.2'], [nc, 'node-d', 'lan1', iface(nd, 'lan0').ipv6LinkLocal ?? ''])
  expect.push([nd, 'node-c', 'lan0', '10.71.2.1'], [nd, 'node-c', 'lan0', iface(nc, 'lan1').ipv6LinkLocal ?? ''])
  const ok = await waitFor(() => expect.every(([rx, p, on, src]) => heardFrom(rx, p, on, src)), 3000)
  for (const [rx, p, on, src] of expect) t.ok(heardFrom(rx, p, on, src), `${String(rx.interfaces[0]?.name)}@${rx.ns.name} hears ${p} on ${on} from ${src}`)
  if (!ok) t.comment(JSON.stringify({ a: na.heard(), c: nc.heard(), d: nd.heard() }))
})

t.test('multicast stays on its link; own announcements are dropped', async (t) => {
  await new Promise((r) => setTimeout(r, 1200)) // four announce periods
  t.notOk(nd.heard().some((h) => h.payload === 'node-a' || h.payload === 'node-b'), 'd hears neither a nor b')
  t.notOk(nc.heard().some((h) => h.interface === 'lan1' && h.payload !== 'node-d'), 'c hears only d on lan1')
  t.notOk(nc.heard().some((h) => h.interface === 'lan0' && h.payload === 'node-d'), 'c does not hear d on lan0')
  for (const n of [na, nb]) t.notOk(n.heard().some((h) => h.payload === 'node-d'), 'a and b do not hear d')
  for (const [n, own] of [
    [na, 'node-a'],
    [nb, 'node-b'],
    [nc, 'node-c'],
    [nd, 'node-d'],
  ] as const) {
    t.notOk(n.heard().some((h) => h.payload === own), `${own} never reports itself`)
    const s = await stats(n)
    t.ok(s.ownDropped > 0, `${own} dropped its own echoes (${s.ownDropped})`)
    t.ok(s.sent > 0 && s.received > 0, `${own} sent ${s.sent}, received ${s.received}`)
    t.equal(s.sendErrors, 0, `${own} had no send errors`)
    t.equal(s.unplaced, 0, `${own} placed every IPv4 datagram`)
  }
  t.ok(nc.heard().every((h) => (h.interface === 'lan1') === (h.payload === 'node-d')), 'c files every announcement under the interface it came in on')
})

t.test('a frame without the magic, or too big, is dropped and counted', async (t) => {
  const before = await stats(na)
  const bad = Buffer.from('XXXXnot an announcement').toString('base64')
  nb.send({ cmd: 'raw', group: LAN_GROUP_V4, via: '10.71.1.2', data: bad })
  await nb.next('raw-sent')
  nb.send({ cmd: 'raw', group: LAN_GROUP_V6, via: '::%lan0', data: bad })
  await nb.next('raw-sent')
  nb.send({ cmd: 'raw', group: LAN_GROUP_V4, via: '10.71.1.2', data: Buffer.concat([Buffer.from('QEL1'), Buffer.alloc(1300, 1)]).toString('base64') })
  await nb.next('raw-sent')
  let after = before
  for (let i = 0; i < 50 && !(after.malformed >= before.malformed + 2 && after.oversize >= before.oversize + 1); i++) {
    await new Promise((r) => setTimeout(r, 40))
    after = await stats(na)
  }
  t.equal(after.malformed - before.malformed, 2, 'two malformed frames (IPv4 and IPv6)')
  t.equal(after.oversize - before.oversize, 1, 'one oversize frame')
  t.notOk(na.heard().some((h) => h.payload.includes('not an announcement')), 'nothing delivered')
  t.equal(na.child.exitCode, null, 'a is still running')
})

t.test('announce(null) stops announcing; a new payload is heard at once', async (t) => {
  nb.send({ cmd: 'announce', payload: null })
  await new Promise((r) => setTimeout(r, 600)) // what was in flight has arrived
  const count = na.heard().filter((h) => h.payload === 'node-b').length
  await new Promise((r) => setTimeout(r, 700))
  t.equal(na.heard().filter((h) => h.payload === 'node-b').length, count, 'a hears nothing more from b')
  nb.send({ cmd: 'announce', payload: 'node-b2' })
  t.ok(await waitFor(() => heardFrom(na, 'node-b2', 'lan0', '10.71.1.2'), 1000), 'a hears b’s new payload')
})

t.test('an interface that appears later is picked up on the next refresh', async (t) => {
  // b (auto mode) gets a second link to a new namespace e.
  const e = makeNs()
  b.ip('link', 'add', 'lan1', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', e.name)
  b.ip('addr', 'add', '10.71.3.1/24', 'dev', 'lan1')
  e.ip('addr', 'add', '10.71.3.2/24', 'dev', 'lan0')
  b.ip('link', 'set', 'lan1', 'up')
  e.ip('link', 'set', 'lan0', 'up')
  t.ok(await waitFor(() => linkLocalReady(e, 'lan0') && linkLocalReady(b, 'lan1'), 5000))
  const ne = await startNode(e, ['lan0'], 'node-e')
  t.ok(await waitFor(() => heardFrom(ne, 'node-b2', 'lan0', '10.71.3.1'), 3000), 'e hears b over IPv4')
  t.ok(await waitFor(() => ne.heard().some((h) => h.payload === 'node-b2' && /^fe80:/.test(h.from.address)), 3000), 'e hears b over IPv6')
  t.ok(await waitFor(() => heardFrom(nb, 'node-e', 'lan1', '10.71.3.2'), 3000), 'b hears e on lan1')
  t.notOk(na.heard().some((h) => h.payload === 'node-e'), 'a does not hear e')
  // e's address changes: the next refresh sends from (and joins with) the new one.
  e.ip('-4', 'addr', 'flush', 'dev', 'lan0')
  e.ip('addr', 'add', '10.71.3.9/24', 'dev', 'lan0')
  t.ok(await waitFor(() => heardFrom(nb, 'node-e', 'lan1', '10.71.3.9'), 3000), 'b hears e from its new address')
  const n = ne.heard().filter((h) => h.payload === 'node-b2' && h.from.address === '10.71.3.1').length
  t.ok(await waitFor(() => ne.heard().filter((h) => h.payload === 'node-b2' && h.from.address === '10.71.3.1').length > n, 3000), 'e still hears b over IPv4')
})

t.test('stop() leaves no socket and no timer', async (t) => {
  for (const n of [na, nc]) {
    const mine = new RegExp(`pid=${n.pid},`)
    t.match(execFileSync('ip', ['netns', 'exec', n.ns.name, 'ss', '-uanpH'], { encoding: 'utf8' }), mine, `pid ${n.pid} has UDP sockets while running`)
    n.send({ cmd: 'stop' })
    await n.next('stopped')
    const ss = execFileSync('ip', ['netns', 'exec', n.ns.name, 'ss', '-uanpH'], { encoding: 'utf8' })
    t.notMatch(ss, mine, `no UDP socket of pid ${n.pid} left`)
    n.child.stdin.end()
    const code = await Promise.race([n.exited, new Promise((r) => setTimeout(() => r('still running'), 3000))])
    t.equal(code, 0, 'the process ends on its own: nothing keeps the event loop alive')
  }
  t.equal(nb.stderr().match(/"level":40/g)?.length ?? 0, 0, 'b logged no warning')
})
