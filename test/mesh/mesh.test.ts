import t from 'tap'
import { loadConfigText, type Config } from '../../src/config/index.js'
import { Mesh, type MeshEngine } from '../../src/mesh/mesh.js'
import { decodeMessage, encodeMessage } from '../../src/mesh/messages.js'
import { computeMeshRoutes, type ConnectedPeer } from '../../src/state/routes.js'
import { silentLogger } from '../../src/log.js'

const KEY_A = Buffer.alloc(32, 1).toString('base64')
const KEY_B = Buffer.alloc(32, 2).toString('base64')

function config(extra = ''): Config {
  const r = loadConfigText(`
node: { name: a }
network: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }
peers:
  - { name: me, key: "${KEY_A}" }
  - { name: b, key: "${KEY_B}", endpoints: ["10.99.0.2:7443"] }
discovery: { connect-to: [ b ] }
subnets: [ 192.168.1.0/24 ]
${extra}`, 'mesh.yaml')
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

class FakeEngine implements MeshEngine {
  dials: string[] = []
  sent: { peer: string; msg: Uint8Array }[] = []
  disconnected: string[] = []
  bonds: (string | null)[] = []
  connect(ep: { address: string; port: number }, opts?: { bond?: string }) {
    this.dials.push(`${ep.address}:${ep.port}`)
    this.bonds.push(opts?.bond ?? null)
  }
  forgotten: string[] = []
  forgetBonded(ep: { address: string; port: number }) { this.forgotten.push(`${ep.address}:${ep.port}`) }
  disconnect(peer: string) { this.disconnected.push(peer) }
  sendControl(peer: string, msg: Uint8Array) { this.sent.push({ peer, msg }) }
}

function setup(cfg = config()) {
  let now = 1000
  const engine = new FakeEngine()
  const facts: (readonly ConnectedPeer[])[] = []
  const mesh = new Mesh(
    { config: cfg, self: { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }, selfKey: KEY_A, tickMs: 3_600_000 },
    { engine, log: silentLogger, onPeers: (p) => facts.push(p), now: () => now },
  )
  return { engine, facts, mesh, advance: (ms: number) => { now += ms } }
}

const flush = () => new Promise((r) => setImmediate(r))

t.test('every admitted peer is listed, connected or not, never our own key; a failed dial is its last error', async (t) => {
  const { mesh, advance } = setup()
  mesh.start()
  t.teardown(() => mesh.stop())
  t.match(mesh.admitted(), [{ key: KEY_B, name: 'b', state: 'connecting', lastError: null, remote: null }])
  mesh.onDialFailed({ remote: { address: '10.99.0.2', port: 7443 }, reason: 'handshake-failed' })
  t.match(mesh.admitted()[0], { state: 'connecting', lastError: /10\.99\.0\.2:7443 failed: handshake-failed/ })
  advance(1000)
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'client' })
  t.match(mesh.admitted()[0], { state: 'up', since: 2000, remote: { address: '10.99.0.2', port: 7443 } })
  mesh.onPeerDown({ peer: KEY_B, reason: 'idle-timeout' })
  t.match(mesh.admitted()[0], { state: 'connecting', lastError: 'tunnel went down: idle-timeout' })
})

t.test('connect-to targets are dialled with exponential backoff until the peer is up', async (t) => {
  const { engine, mesh, advance } = setup()
  mesh.start()
  t.teardown(() => mesh.stop())
  await flush()
  t.same(engine.dials, ['10.99.0.2:7443'], 'dialled at start')
  mesh.tick(); await flush()
  t.equal(engine.dials.length, 1, 'not again before the backoff runs out')
  advance(250); mesh.tick(); await flush()
  t.equal(engine.dials.length, 2, 'again after 250 ms')
  advance(250); mesh.tick(); await flush()
  t.equal(engine.dials.length, 2, 'backoff doubled to 500 ms')
  advance(250); mesh.tick(); await flush()
  t.equal(engine.dials.length, 3)
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'client' })
  advance(60_000); mesh.tick(); await flush()
  t.equal(engine.dials.length, 3, 'no dial while the peer is up')
  mesh.onPeerDown({ peer: KEY_B, reason: 'idle-timeout' })
  mesh.tick(); await flush()
  t.equal(engine.dials.length, 4, 'redialled at once after it went down')
})

t.test('a hello goes out on peer-up; the peer\'s hello is reported as a fact that routes follow; down withdraws it', async (t) => {
  const { engine, mesh, facts } = setup()
  const routesOf = (peers: readonly ConnectedPeer[]) => computeMeshRoutes(config(), { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }, peers)
  mesh.start()
  t.teardown(() => mesh.stop())
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'client' })
  const out = engine.sent.find((s) => s.peer === KEY_B)
  t.ok(out, 'hello sent')
  const decoded = decodeMessage(out!.msg)
  t.match(decoded, { ok: true, msg: { type: 'hello', name: 'a', overlay: { ipv4: '100.88.0.1' }, subnets: ['192.168.1.0/24'] } })
  mesh.onControl(KEY_B, encodeMessage({ type: 'hello', v: 1, name: 'b', role: 'gateway', overlay: { ipv4: '100.88.0.2', ipv6: null }, subnets: ['10.20.0.0/16'] }))
  t.same(facts.at(-1), [{ key: KEY_B, configName: 'b', hello: { overlay: { ipv4: '100.88.0.2', ipv6: null }, subnets: ['10.20.0.0/16'], role: 'gateway' } }])
  const last = routesOf(facts.at(-1)!)
  t.same(last.fib.map((e) => e.prefix), ['10.20.0.0/16', '100.88.0.2/32'])
  t.same(last.learned, [{ prefix: '10.20.0.0/16', peer: KEY_B }])
  t.equal(mesh.peers()[0]?.name, 'b')
  mesh.onPeerDown({ peer: KEY_B, reason: 'closed-by-peer' })
  t.same(facts.at(-1), [])
})

t.test('garbage control messages change nothing', async (t) => {
  const { mesh, facts } = setup()
  mesh.start()
  t.teardown(() => mesh.stop())
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'server' })
  const before = facts.length
  mesh.onControl(KEY_B, Buffer.from('{"type":"hello"'))
  mesh.onControl(KEY_B, Buffer.from([0xff, 0x00]))
  t.equal(facts.length, before)
})

t.test('reload re-sends the hello to peers still admitted; one no longer admitted leaves the list (the engine cuts it off)', async (t) => {
  const { engine, mesh } = setup()
  mesh.start()
  t.teardown(() => mesh.stop())
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'client' })
  const sentBefore = engine.sent.length
  mesh.reload(config('routes:\n  - { to: 10.50.0.0/16, via: b }\n'))
  t.equal(engine.sent.length, sentBefore + 1, 'hello re-sent')
  const noB = loadConfigText(`node: { name: a }\nnetwork: { name: n }\npeers:\n  - { name: me, key: "${KEY_A}" }\n`, 'x.yaml')
  if (!noB.ok) throw new Error('fixture')
  const sentMid = engine.sent.length
  mesh.reload(noB.config)
  t.equal(engine.sent.length, sentMid, 'no hello to a peer no longer admitted')
  t.same(mesh.admitted(), [])
  t.same(engine.disconnected, [], 'the mesh sets no tables and cuts nobody: the reconciler\'s allowed keys do')
})

t.test('with uplinks, the multipath target is dialled bonded in the configured mode', async (t) => {
  const cases: [string, string | null][] = [
    ['multipath: { mode: aggregate, target: b }', 'aggregate'],
    ['multipath: { mode: aggregate, scheduler: weighted, target: b }', 'weighted'],
    ['multipath: { mode: failover }', 'failover'],
    ['multipath: { mode: redundant, target: somebody-else }', null],
  ]
  for (const [mp, want] of cases) {
    const extra = mp.includes('somebody-else') ? `${mp}\npeers:\n  - { name: me, key: "${KEY_A}" }\n  - { name: b, key: "${KEY_B}", endpoints: ["10.99.0.2:7443"] }\n  - { name: somebody-else, key: "${Buffer.alloc(32, 7).toString('base64')}" }` : mp
    const cfg = mp.includes('somebody-else')
      ? loadConfigText(`node: { name: a }\nnetwork: { name: n }\ninterfaces: [ { name: eth0 }, { name: wwan0 } ]\ndiscovery: { connect-to: [ b ] }\n${extra}\n`, 'x.yaml')
      : loadConfigText(`node: { name: a }\nnetwork: { name: n }\ninterfaces: [ { name: eth0 }, { name: wwan0 } ]\ndiscovery: { connect-to: [ b ] }\npeers:\n  - { name: b, key: "${KEY_B}", endpoints: ["10.99.0.2:7443"] }\n${extra}\n`, 'x.yaml')
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.diagnostics))
    const { engine, mesh } = setup(cfg.config)
    mesh.start()
    await flush()
    mesh.stop()
    t.same(engine.bonds, [want], mp)
  }
  const plain = setup()
  plain.mesh.start()
  await flush()
  plain.mesh.stop()
  t.same(plain.engine.bonds, [null], 'no uplinks: a plain dial')
})

t.test('a bonded peer: every endpoint goes to the engine once, up or not (the engine keeps each dialled per uplink)', async (t) => {
  const cfg = loadConfigText(
    `node: { name: a }\nnetwork: { name: n }\ninterfaces: [ { name: eth0 }, { name: wwan0 } ]\ndiscovery: { connect-to: [ b ] }\nmultipath: { mode: aggregate, target: b }\npeers:\n  - { name: b, key: "${KEY_B}", endpoints: ["10.99.0.2:7443", "10.98.0.2:7443"] }\n`,
    'x.yaml',
  )
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.diagnostics))
  const { engine, mesh, advance } = setup(cfg.config)
  mesh.start()
  t.teardown(() => mesh.stop())
  await flush()
  t.same(engine.dials, ['10.99.0.2:7443', '10.98.0.2:7443'], 'both endpoints at once')
  t.same(engine.bonds, ['aggregate', 'aggregate'])
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'client' })
  for (let i = 0; i < 5; i++) {
    advance(5_000)
    mesh.tick()
    await flush()
  }
  t.equal(engine.dials.length, 2, 'not dialled again: the engine redials its paths itself')
  mesh.onPeerDown({ peer: KEY_B, reason: 'idle-timeout' })
  advance(5_000)
  mesh.tick()
  await flush()
  t.equal(engine.dials.length, 2, 'nor after the peer went down')
})

t.test('a bonded endpoint that leaves the config is forgotten by the engine; the others stay', async (t) => {
  const text = (endpoints: string, mp = 'multipath: { mode: aggregate, target: b }') =>
    `node: { name: a }\nnetwork: { name: n }\ninterfaces: [ { name: eth0 }, { name: wwan0 } ]\ndiscovery: { connect-to: [ b ] }\n${mp}\npeers:\n  - { name: b, key: "${KEY_B}", endpoints: [${endpoints}] }\n`
  const load = (s: string) => {
    const r = loadConfigText(s, 'x.yaml')
    if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
    return r.config
  }
  const { engine, mesh } = setup(load(text('"10.99.0.2:7443", "10.98.0.2:7443"')))
  mesh.start()
  t.teardown(() => mesh.stop())
  await flush()
  t.same(engine.dials, ['10.99.0.2:7443', '10.98.0.2:7443'])
  mesh.reload(load(text('"10.99.0.2:7443"')))
  t.same(engine.forgotten, ['10.98.0.2:7443'], 'the removed endpoint is forgotten')
  mesh.tick()
  await flush()
  t.same(engine.dials, ['10.99.0.2:7443', '10.98.0.2:7443'], 'the kept one is not dialled again')
  mesh.reload(load(text('"10.99.0.2:7443", "10.98.0.2:7443"')))
  mesh.tick()
  await flush()
  t.same(engine.dials.slice(2), ['10.98.0.2:7443'], 'put back: handed to the engine again')
  mesh.reload(load(text('"10.99.0.2:7443", "10.98.0.2:7443"', 'multipath: { mode: failover, target: b }')))
  mesh.tick()
  await flush()
  t.same(engine.forgotten, ['10.98.0.2:7443'], 'a mode change forgets nothing...')
  t.same(engine.bonds.slice(3), ['failover', 'failover'], '...and hands both endpoints over with the new mode')
  mesh.reload(load(text('"10.99.0.2:7443", "10.98.0.2:7443"', 'multipath: { mode: aggregate, target: somebody-else }').replace('peers:\n', `peers:\n  - { name: somebody-else, key: "${Buffer.alloc(32, 7).toString('base64')}" }\n`)))
  t.same(engine.forgotten.slice(1).sort(), ['10.98.0.2:7443', '10.99.0.2:7443'], 'no longer the bond target: both forgotten')
})

t.test('every admitted peer with an endpoint is dialled, connect-to or not; one that learns endpoints later too', async (t) => {
  const KEY_C = Buffer.alloc(32, 3).toString('base64')
  const first = loadConfigText(`
node: { name: a }
network: { name: n }
peers:
  - { name: b, key: "${KEY_B}", endpoints: ["10.99.0.2:7443"] }
  - { name: c, key: "${KEY_C}" }
`, 'm.yaml')
  if (!first.ok) throw new Error('fixture')
  const { engine, mesh } = setup(first.config)
  mesh.start()
  t.teardown(() => mesh.stop())
  await flush()
  t.same(engine.dials, ['10.99.0.2:7443'], 'b has an endpoint and is dialled; c has none')
  t.match(mesh.admitted(), [{ name: 'b', state: 'connecting' }, { name: 'c', state: 'waiting' }])
  const learned = loadConfigText(`
node: { name: a }
network: { name: n }
peers:
  - { name: b, key: "${KEY_B}", endpoints: ["10.99.0.2:7443"] }
  - { name: c, key: "${KEY_C}", endpoints: ["10.99.0.3:7443"] }
`, 'm.yaml')
  if (!learned.ok) throw new Error('fixture')
  const sentBefore = engine.sent.length
  mesh.setPeers(learned.config)
  mesh.tick()
  await flush()
  t.ok(engine.dials.includes('10.99.0.3:7443'), 'c is dialled once its endpoint is known')
  t.equal(engine.sent.length, sentBefore, 'a membership change sends no hello')
})

t.test('records, revocations and certificates go to onMessage; junk does not', async (t) => {
  const got: string[] = []
  const engine = new FakeEngine()
  const mesh = new Mesh(
    { config: config(), self: { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }, selfKey: KEY_A, tickMs: 3_600_000 },
    { engine, log: silentLogger, onPeers: () => undefined, onMessage: (peer, msg) => got.push(`${peer === KEY_B ? 'b' : '?'}:${msg.type}`) },
  )
  mesh.start()
  t.teardown(() => mesh.stop())
  mesh.onPeerUp({ peer: KEY_B, remote: { address: '10.99.0.2', port: 7443 }, role: 'client' })
  mesh.onControl(KEY_B, encodeMessage({ type: 'records', v: 1, items: [] }))
  mesh.onControl(KEY_B, encodeMessage({ type: 'revocations', v: 1, list: { seq: 1 } }))
  mesh.onControl(KEY_B, encodeMessage({ type: 'cert', v: 1, cert: { key: 'x' } }))
  mesh.onControl(KEY_B, Buffer.from(JSON.stringify({ type: 'records', v: 1, items: [{ k: 'not base64!' }] })))
  t.same(got, ['b:records', 'b:revocations', 'b:cert'])
})
