/**
 * NAT traversal's logic, on fakes (no sockets, a hand-turned clock):
 * reflexive addresses and who is believed, introductions (mediator side and
 * peer side), punches and peer-reflexive dialling, the fall back to a relay,
 * binding on it, and every kind of bad input refused and counted.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import type { Config, Endpoint } from '../../src/config/types.js'
import type { Generation } from '../../src/daemon/generation.js'
import type { EngineStats } from '../../src/engine/types.js'
import type { ControlMessage, HelloMessage } from '../../src/mesh/messages.js'
import { Traversal, type TraversalPeer } from '../../src/traversal/traversal.js'
import { encodePunch } from '../../src/traversal/punch-wire.js'
import { encodeBound } from '../../src/traversal/relay-wire.js'

const key = (c: string) => Buffer.alloc(32, c).toString('base64')
const SELF = key('m') // in the middle: lower than 'z', higher than 'a'
const A = key('a')
const Z = key('z')
const R = key('r')

function hello(role: HelloMessage['role'], relay = false): HelloMessage {
  return { type: 'hello', v: 1, name: 'x', role, overlay: { ipv4: null, ipv6: null }, subnets: [], ...(relay ? { relay: true } : {}) }
}

function world(opts: { relay?: boolean; uplinks?: boolean } = {}) {
  let now = 1_000_000
  const sent: { peer: string; msg: ControlMessage }[] = []
  const raw: { to: string; data: Buffer }[] = []
  const dials: { to: string; relayed: boolean }[] = []
  const disconnects: string[] = []
  const connected: TraversalPeer[] = []
  const members = [
    { key: A, name: 'alice', endpoints: [] as Endpoint[] },
    { key: Z, name: 'zed', endpoints: [{ host: '203.0.113.26', port: 7443 }] },
    { key: R, name: 'relay', endpoints: [{ host: '198.51.100.1', port: 7443 }] },
  ]
  const allocations: { a: { key: string; ip: string }; b: { key: string; ip: string } }[] = []
  const stats: EngineStats = { global: {} as EngineStats['global'], peers: [] }
  const tr = new Traversal({
    log: pino({ level: 'silent' }),
    engine: () => ({
      connect: (ep, o) => void dials.push({ to: `${ep.address}:${ep.port}`, relayed: o?.relayed === true }),
      disconnect: (p) => void disconnects.push(p),
      sendRaw: (ep, data) => void raw.push({ to: `${ep.address}:${ep.port}`, data: Buffer.from(data) }),
      stats: () => stats,
    }),
    send: (peer, msg) => void sent.push({ peer, msg }),
    connected: () => connected,
    members: () => members,
    localEndpoints: () => [{ host: '192.168.1.10', port: 7443 }],
    listenPort: () => 7443,
    now: () => now,
    lans: () => [],
    createRelay: () => ({
      allocate: async (a, b) => {
        allocations.push({ a, b })
        return { id: 'x', a: { port: 40001, token: Buffer.alloc(16, 1) }, b: { port: 40002, token: Buffer.alloc(16, 2) } }
      },
      stop: () => undefined,
      stats: () => ({}) as never,
    }),
  })
  const config = {
    gateway: { relay: opts.relay ?? false, advertiseBandwidth: null, forwardFor: [] },
    node: { role: 'client', bootstrapMode: false },
    listen: { address: '0.0.0.0', port: 7443 },
    tun: { name: 'qe0' },
    interfaces: opts.uplinks ? [{ name: 'wan0' }] : [],
    multipath: { target: null },
  } as unknown as Config
  const gen = { config, selfKey: SELF } as unknown as Generation
  return {
    tr,
    gen,
    sent,
    raw,
    dials,
    disconnects,
    connected,
    members,
    allocations,
    advance: (ms: number) => {
      now += ms
      tr.tick()
    },
    connect: (k: string, address: string, port: number, h: HelloMessage | null = hello('client')) => {
      connected.push({ key: k, name: members.find((m) => m.key === k)?.name ?? null, remote: { address, port }, hello: h })
    },
  }
}

t.test('reflexive addresses: a bootstrap or relay is believed at once, others need a second reporter at another IP', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(R, '198.51.100.1', 7443, hello('gateway', true))
  w.connect(A, '203.0.113.5', 7443)
  w.connect(Z, '203.0.113.26', 7443)
  w.tr.onMessage(A, { type: 'observed', v: 1, address: '203.0.113.77', port: 40000 })
  t.same(w.tr.reflexiveEndpoints(), [], 'one ordinary peer alone plants nothing')
  w.tr.onMessage(Z, { type: 'observed', v: 1, address: '203.0.113.77', port: 40000 })
  t.same(w.tr.reflexiveEndpoints(), [{ host: '203.0.113.77', port: 40000 }], 'two peers at two IPs agree: believed')
  w.tr.onMessage(R, { type: 'observed', v: 1, address: '198.51.100.200', port: 40001 })
  t.ok(w.tr.reflexiveEndpoints().some((e) => e.host === '198.51.100.200'), 'a relay is believed alone')
  w.tr.onMessage(A, { type: 'observed', v: 1, address: '127.0.0.1', port: 1 })
  w.tr.onMessage(A, { type: 'observed', v: 1, address: '224.0.0.1', port: 1 })
  w.tr.onMessage(key('q'), { type: 'observed', v: 1, address: '203.0.113.9', port: 1 })
  t.equal(w.tr.status().refused.observed, 3, 'loopback, multicast, and a report from no connected peer are refused and counted')
  t.equal(w.tr.status().nat, 'endpoint-independent', 'two peers at two IPs saw one port: a cone')
  w.tr.onMessage(Z, { type: 'observed', v: 1, address: '203.0.113.77', port: 40777 })
  t.equal(w.tr.status().nat, 'address-dependent', 'they saw different ports: symmetric')
})

t.test('a peer that comes up is told where it comes from', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(A, '203.0.113.5', 41000)
  w.tr.onPeerUp({ peer: A, remote: { address: '203.0.113.5', port: 41000 }, role: 'server' })
  t.same(w.sent.map((s) => s.msg), [{ type: 'observed', v: 1, address: '203.0.113.5', port: 41000 }])
})

t.test('mediator: introduces two connected members to each other with one token', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(A, '203.0.113.5', 41000)
  w.connect(Z, '203.0.113.26', 52000)
  w.tr.onMessage(A, { type: 'intro-request', v: 1, peer: Z, candidates: ['192.168.7.2:7443', '127.0.0.1:7443', 'junk'] })
  const intros = w.sent.filter((s) => s.msg.type === 'intro')
  t.equal(intros.length, 2, 'one intro to each side')
  const toZ = intros.find((s) => s.peer === Z)?.msg as Extract<ControlMessage, { type: 'intro' }>
  const toA = intros.find((s) => s.peer === A)?.msg as Extract<ControlMessage, { type: 'intro' }>
  t.equal(toZ.peer, A)
  t.equal(toA.peer, Z)
  t.equal(toZ.token, toA.token, 'the same token for both')
  t.ok(toZ.candidates.includes('203.0.113.5:41000'), 'Z learns where A\'s packets come from (its address as the mediator sees it)')
  t.ok(toZ.candidates.includes('192.168.7.2:7443'), 'and the candidates A gave')
  t.notOk(toZ.candidates.includes('127.0.0.1:7443'), 'but not loopback')
  t.ok(toA.candidates.includes('203.0.113.26:52000'), 'A learns Z\'s address as seen here')
  t.equal(w.tr.status().refused.intro, 2, 'the two bad candidates were counted')
  w.sent.length = 0
  w.tr.onMessage(A, { type: 'intro-request', v: 1, peer: R, candidates: [] })
  t.same(w.sent.map((s) => s.msg.type), ['traversal-refused'], 'a peer not connected here: refused to the asker')
})

t.test('punching: punches to every candidate, a valid punch is dialled back at its source, a forged one is refused', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(R, '198.51.100.1', 7443, hello('gateway', true))
  const token = randomBytes(16)
  w.tr.onMessage(R, { type: 'intro', v: 1, peer: Z, candidates: ['203.0.113.26:52000', '[2001:db8::26]:7443'], token: token.toString('base64') })
  t.same(new Set(w.raw.map((r) => r.to)), new Set(['203.0.113.26:52000', '2001:db8::26:7443']), 'punched at once, to every candidate')
  t.equal(w.raw[0]?.to, '2001:db8::26:7443', 'IPv6 before IPv4')
  w.raw.length = 0
  w.advance(60)
  t.equal(w.raw.length, 2, 'and again 50 ms later')
  // A punch with another token (a stranger who never got the introduction).
  w.tr.onRaw({ remote: { address: '203.0.113.66', port: 1234 }, data: encodePunch(randomBytes(16)) })
  t.equal(w.dials.length, 0, 'a forged punch dials nothing')
  t.equal(w.tr.status().refused.punch, 1, 'and is counted')
  // Z's NAT maps per destination: its punch comes from a port no one announced.
  w.tr.onRaw({ remote: { address: '203.0.113.26', port: 61111 }, data: encodePunch(token) })
  t.same(w.dials, [{ to: '203.0.113.26:61111', relayed: false }], 'the punch\'s true source is dialled (peer-reflexive)')
  w.raw.length = 0
  w.advance(60)
  t.ok(w.raw.some((r) => r.to === '203.0.113.26:61111'), 'and punched from now on')
  w.tr.onRaw({ remote: { address: '203.0.113.26', port: 61111 }, data: encodePunch(token) })
  t.equal(w.dials.length, 1, 'one dial per source')
  // An intro about someone who is not a member, and one from a peer not connected.
  w.tr.onMessage(R, { type: 'intro', v: 1, peer: key('q'), candidates: ['203.0.113.1:1'], token: token.toString('base64') })
  w.tr.onMessage(key('q'), { type: 'intro', v: 1, peer: Z, candidates: ['203.0.113.1:1'], token: token.toString('base64') })
  t.equal(w.tr.status().refused.intro, 2, 'introductions of or from non-members are refused and counted')
})

t.test('no direct path: the lower key asks the nearest relay, binds, and dials through it', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(R, '198.51.100.1', 7443, hello('gateway', true))
  const token = randomBytes(16)
  // SELF < Z: this node asks.
  w.tr.onMessage(R, { type: 'intro', v: 1, peer: Z, candidates: ['203.0.113.26:52000'], token: token.toString('base64') })
  for (let i = 0; i < 80; i++) w.advance(50)
  const req = w.sent.find((s) => s.msg.type === 'relay-request')
  t.ok(req, 'after the punching window, a relay is asked')
  t.equal(req?.peer, R, 'the relay peer')
  w.tr.onMessage(R, { type: 'relay', v: 1, peer: Z, port: 40001, token: Buffer.alloc(16, 1).toString('base64'), role: 'dial' })
  const binds = w.raw.filter((r) => r.to === '198.51.100.1:40001')
  t.ok(binds.length >= 1, 'binds are sent to the relay port, from the tunnel socket')
  // A forged answer from elsewhere does not bind.
  w.tr.onRaw({ remote: { address: '203.0.113.66', port: 40001 }, data: encodeBound(Buffer.alloc(16, 1), Buffer.alloc(8)) })
  w.advance(50)
  t.equal(w.dials.filter((d) => d.relayed).length, 0, 'a BOUND from another address is ignored')
  t.equal(w.tr.status().refused['relay-answer'], 1, 'and counted')
  w.tr.onRaw({ remote: { address: '198.51.100.1', port: 40001 }, data: encodeBound(Buffer.alloc(16, 1), Buffer.alloc(8)) })
  w.advance(50)
  t.same(w.dials.filter((d) => d.relayed), [{ to: '198.51.100.1:40001', relayed: true }], 'bound: dialled through the relay, marked relayed')
})

t.test('the higher key waits for the lower one to ask a relay', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(R, '198.51.100.1', 7443, hello('gateway', true))
  // SELF > A: A asks.
  w.tr.onMessage(R, { type: 'intro', v: 1, peer: A, candidates: ['203.0.113.5:41000'], token: randomBytes(16).toString('base64') })
  for (let i = 0; i < 80; i++) w.advance(50)
  t.notOk(w.sent.some((s) => s.msg.type === 'relay-request'), 'no relay-request from the higher key')
})

t.test('relay node: allocates for two connected members and tells each its port', async (t) => {
  const w = world({ relay: true })
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(A, '203.0.113.5', 41000)
  w.connect(Z, '203.0.113.26', 52000)
  w.tr.onMessage(A, { type: 'relay-request', v: 1, peer: Z })
  await new Promise((r) => setImmediate(r))
  const hex = (k: string) => Buffer.from(k, 'base64').toString('hex')
  t.same(w.allocations, [{ a: { key: hex(A), ip: '203.0.113.5' }, b: { key: hex(Z), ip: '203.0.113.26' } }], 'bound to the IPs their tunnels come from')
  const relays = w.sent.filter((s) => s.msg.type === 'relay').map((s) => ({ peer: s.peer, msg: s.msg as Extract<ControlMessage, { type: 'relay' }> }))
  t.same(relays.map((r) => [r.peer, r.msg.role, r.msg.port]), [
    [Z, 'accept', 40002],
    [A, 'dial', 40001],
  ])
  w.sent.length = 0
  w.tr.onMessage(A, { type: 'relay-request', v: 1, peer: R })
  await new Promise((r) => setImmediate(r))
  t.same(w.sent.map((s) => s.msg.type), ['traversal-refused'], 'toward a member not connected here: refused')
  t.equal(w.tr.status().refused.relay, 1, 'and counted')
})

t.test('a node that does not relay refuses relay requests', async (t) => {
  const w = world({ relay: false })
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(A, '203.0.113.5', 41000)
  w.connect(Z, '203.0.113.26', 52000)
  w.tr.onMessage(A, { type: 'relay-request', v: 1, peer: Z })
  await new Promise((r) => setImmediate(r))
  t.equal(w.allocations.length, 0)
  t.same(w.sent.map((s) => s.msg.type), ['traversal-refused'])
})

t.test('members not connected get introductions through relays and bootstrap nodes first', async (t) => {
  const w = world()
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(A, '203.0.113.5', 41000)
  w.connect(R, '198.51.100.1', 7443, hello('bootstrap'))
  w.advance(50)
  const reqs = w.sent.filter((s) => s.msg.type === 'intro-request')
  t.ok(reqs.some((s) => s.peer === R && (s.msg as { peer: string }).peer === Z), 'Z (not connected) is asked for through R')
  t.equal(reqs[0]?.peer, R, 'the bootstrap node first')
  const n = reqs.length
  w.advance(50)
  t.equal(w.sent.filter((s) => s.msg.type === 'intro-request').length, n, 'not asked again at once (backoff)')
})

t.test('a peer this node bonds to is left to the mesh: no introductions, no punched plain tunnel', async (t) => {
  const w = world({ uplinks: true })
  await w.tr.start(w.gen)
  t.teardown(() => w.tr.stop())
  w.connect(R, '198.51.100.1', 7443, hello('bootstrap'))
  w.advance(50)
  t.notOk(w.sent.some((s) => s.msg.type === 'intro-request'), 'no introduction asked')
  w.tr.onMessage(R, { type: 'intro', v: 1, peer: Z, candidates: ['203.0.113.26:52000'], token: randomBytes(16).toString('base64') })
  t.equal(w.raw.length, 0, 'an introduction is not punched')
})
