import t from 'tap'
import { loadConfigText, type Config } from '../../src/config/index.js'
import { computeMeshRoutes, hubAdvertisement, type ConnectedPeer } from '../../src/state/routes.js'
import type { HelloMessage } from '../../src/mesh/messages.js'

const KEY_B = Buffer.alloc(32, 2).toString('base64')
const KEY_C = Buffer.alloc(32, 3).toString('base64')
const KEY_X = Buffer.alloc(32, 9).toString('base64')

function config(extra = ''): Config {
  const text = `
node: { name: a }
network: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }
peers:
  - { name: b, key: "${KEY_B}" }
  - { name: c, key: "${KEY_C}" }
subnets: [ 192.168.1.0/24 ]
${extra}`
  const r = loadConfigText(text, 'test.yaml')
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

const self = { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }

function hello(name: string, ipv4: string | null, ipv6: string | null, subnets: string[] = []): HelloMessage {
  return { type: 'hello', v: 1, name, role: 'client', overlay: { ipv4, ipv6 }, subnets }
}

function gw(name: string, ipv4: string, subnets: string[]): HelloMessage {
  return { ...hello(name, ipv4, null, subnets), role: 'gateway' }
}

function peer(key: string, configName: string | null, h: HelloMessage | null): ConnectedPeer {
  return { key, configName, hello: h }
}

t.test('a peer\'s overlay addresses and subnets become FIB entries and learned routes', async (t) => {
  const r = computeMeshRoutes(config(), self, [peer(KEY_B, 'b', hello('b', '100.88.0.2', 'fd00:88::2', ['10.20.0.0/16']))])
  t.same(r.fib, [
    { prefix: '10.20.0.0/16', peer: KEY_B },
    { prefix: '100.88.0.2/32', peer: KEY_B },
    { prefix: 'fd00:88::2/128', peer: KEY_B },
  ])
  t.same(r.learned, [{ prefix: '10.20.0.0/16', peer: KEY_B }])
  t.same(r.rejected, [])
})

t.test('a peer without a hello yet routes nothing', async (t) => {
  const r = computeMeshRoutes(config(), self, [peer(KEY_B, 'b', null)])
  t.same(r.fib, [])
})

t.test('untrusted claims are refused with a reason', async (t) => {
  const cases: [HelloMessage, string][] = [
    [hello('b', '10.1.1.1', null), 'outside the overlay range'],
    [hello('b', '100.88.0.1', null), 'own address'],
    [hello('b', 'nonsense', null), 'not an IP'],
    [hello('b', null, null, ['10.0.0.5/16']), 'canonical'],
    [hello('b', null, null, ['100.88.4.0/24']), 'overlay range'],
    [hello('b', null, null, ['192.168.0.0/16']), 'subnet this node advertises'],
    [hello('b', null, null, ['0.0.0.0/0']), 'an exit is only taken from a gateway'],
  ]
  for (const [h, reason] of cases) {
    const r = computeMeshRoutes(config(), self, [peer(KEY_B, 'b', h)])
    t.same(r.fib, [], reason)
    t.equal(r.rejected.length, 1, reason)
    t.match(r.rejected[0]?.reason, reason)
  }
})

t.test('two gateways advertising one prefix with nothing to tell them apart: the lower key holds it, the other stands by, the same on every node', async (t) => {
  const hb = gw('b', '100.88.0.2', ['10.20.0.0/16'])
  const hc = gw('c', '100.88.0.3', ['10.20.0.0/16'])
  const r1 = computeMeshRoutes(config(), self, [peer(KEY_C, 'c', hc), peer(KEY_B, 'b', hb)])
  const r2 = computeMeshRoutes(config(), self, [peer(KEY_B, 'b', hb), peer(KEY_C, 'c', hc)])
  t.same(r1, r2, 'order of arrival does not matter')
  t.same(r1.fib.find((e) => e.prefix === '10.20.0.0/16')?.peer, KEY_B)
  t.same(r1.standby, [{ prefix: '10.20.0.0/16', peer: KEY_C }])
  t.same(r1.rejected, [])
})

t.test('high availability: priority, then bandwidth, then RTT (sticky), and a silent gateway loses at once', async (t) => {
  const sub = '10.20.0.0/16'
  const holder = (peers: ConnectedPeer[], prev: ReturnType<typeof computeMeshRoutes> | null = null) => computeMeshRoutes(config(), self, peers, prev).fib.find((e) => e.prefix === sub)?.peer
  const b = (extra: Partial<HelloMessage> = {}, p: Partial<ConnectedPeer> = {}): ConnectedPeer => ({ ...peer(KEY_B, 'b', { ...gw('b', '100.88.0.2', [sub]), ...extra }), ...p })
  const c = (extra: Partial<HelloMessage> = {}, p: Partial<ConnectedPeer> = {}): ConnectedPeer => ({ ...peer(KEY_C, 'c', { ...gw('c', '100.88.0.3', [sub]), ...extra }), ...p })
  t.equal(holder([b({ priorities: [20] }), c({ priorities: [10] })]), KEY_C, 'the lower priority wins over the lower key')
  t.equal(holder([b({ bandwidth: 1e8 }), c({ bandwidth: 1e9 })]), KEY_C, 'equal priority: more bandwidth wins')
  t.equal(holder([b({}, { rttMs: 30 }), c({}, { rttMs: 10 })]), KEY_C, 'then the lower RTT')
  const prevB = computeMeshRoutes(config(), self, [b({}, { rttMs: 12 }), c({}, { rttMs: 14 })])
  t.equal(holder([b({}, { rttMs: 12 }), c({}, { rttMs: 10 })], prevB), KEY_B, 'a slightly nearer gateway does not take it (no flapping)')
  t.equal(holder([b({}, { rttMs: 40 }), c({}, { rttMs: 10 })], prevB), KEY_C, 'a clearly nearer one does')
  t.equal(holder([b({ priorities: [10] }, { stale: true }), c({ priorities: [20] })]), KEY_C, 'the preferred gateway gone silent: the other takes over before the tunnel times out')
  t.equal(holder([b({ priorities: [10] }, { stale: true })]), KEY_B, 'a silent gateway with no alternative keeps the route')
})

t.test('exits: taken from the gateway exit-node names, per family; off or blocked while it is down or silent', async (t) => {
  const exitCfg = (extra = ''): Config => config(`exit-node: b\n${extra}`)
  const offer = (p: Partial<ConnectedPeer> = {}): ConnectedPeer => ({ ...peer(KEY_B, 'b', gw('b', '100.88.0.2', ['0.0.0.0/0', '::/0'])), ...p })
  const up = computeMeshRoutes(exitCfg(), self, [offer()])
  t.same(up.fib.filter((e) => e.prefix.endsWith('/0')), [{ prefix: '0.0.0.0/0', peer: KEY_B }, { prefix: '::/0', peer: KEY_B }])
  t.same(up.exit, { ipv4: { wanted: 'b', mode: 'tunnel', peer: KEY_B }, ipv6: { wanted: 'b', mode: 'tunnel', peer: KEY_B } })
  t.same(computeMeshRoutes(exitCfg(), self, []).exit?.ipv4, { wanted: 'b', mode: 'off', peer: null }, 'down: the local default route (the default)')
  t.same(computeMeshRoutes(exitCfg('exit-node-required: true\n'), self, []).exit?.ipv4, { wanted: 'b', mode: 'block', peer: null }, 'down and required: blocked')
  t.same(computeMeshRoutes(exitCfg(), self, [offer({ stale: true })]).exit?.ipv4.mode, 'off', 'silent: fall back before the idle timeout')
  const v4only = computeMeshRoutes(exitCfg('exit-node-required: true\n'), self, [peer(KEY_B, 'b', gw('b', '100.88.0.2', ['0.0.0.0/0']))])
  t.same([v4only.exit?.ipv4.mode, v4only.exit?.ipv6.mode], ['tunnel', 'block'], 'an exit without ::/0 leaves IPv6 blocked when required (nothing leaks outside)')
  const other = computeMeshRoutes(exitCfg(), self, [offer(), peer(KEY_C, 'c', gw('c', '100.88.0.3', ['0.0.0.0/0']))])
  t.same(other.rejected, [], 'an exit this node does not use is ignored, not refused')
  t.notOk(other.fib.some((e) => e.peer === KEY_C && e.prefix.endsWith('/0')))
  const client = computeMeshRoutes(exitCfg(), self, [peer(KEY_B, 'b', hello('b', '100.88.0.2', null, ['0.0.0.0/0']))])
  t.match(client.rejected, [{ peer: KEY_B, what: 'subnet 0.0.0.0/0', reason: /only taken from a gateway/ }], 'an exit offered by a non-gateway is refused')
  t.equal(client.exit?.ipv4.mode, 'off')
  const viaRoute = computeMeshRoutes(config('routes: [{ to: 0.0.0.0/0, via: b }]\n'), self, [offer()])
  t.same([viaRoute.exit?.ipv4.mode, viaRoute.exit?.ipv6.mode], ['tunnel', 'off'], 'a route to 0.0.0.0/0 via a peer makes it the IPv4 exit only')
})

t.test('hubs: a gateway routes members this node has no tunnel with; direct tunnels win; only gateways, never a default route', async (t) => {
  const hub = (via: string[], role: HelloMessage['role'] = 'gateway', p: Partial<ConnectedPeer> = {}): ConnectedPeer => ({ ...peer(KEY_B, 'b', { ...hello('b', '100.88.0.2', null), role, via }), ...p })
  const r = computeMeshRoutes(config(), self, [hub(['100.88.0.9/32', '10.50.0.0/16'])])
  t.same(r.fib, [{ prefix: '10.50.0.0/16', peer: KEY_B }, { prefix: '100.88.0.2/32', peer: KEY_B }, { prefix: '100.88.0.9/32', peer: KEY_B }])
  t.same(r.hubbed, [{ prefix: '10.50.0.0/16', peer: KEY_B }, { prefix: '100.88.0.9/32', peer: KEY_B }])
  t.same(r.learned, [{ prefix: '10.50.0.0/16', peer: KEY_B }], 'a LAN behind the hub gets a kernel route; a member address is inside the overlay route already')
  const direct = computeMeshRoutes(config(), self, [hub(['100.88.0.3/32']), peer(KEY_C, 'c', hello('c', '100.88.0.3', null))])
  t.same(direct.fib.find((e) => e.prefix === '100.88.0.3/32')?.peer, KEY_C, 'a direct tunnel beats the hub')
  t.same(direct.hubbed, [])
  const bad = computeMeshRoutes(config(), self, [hub(['0.0.0.0/0', '100.88.0.0/24', '192.168.1.0/25', '100.88.0.1/32'])])
  t.same(bad.rejected.map((x) => x.reason.split(' (')[0]), ['a default route is an exit, never a hub route', 'overlaps the overlay range', 'overlaps a subnet this node advertises'])
  t.notOk(bad.fib.some((e) => e.prefix === '100.88.0.1/32'), 'this node\'s own address is never routed through a hub')
  const client = computeMeshRoutes(config(), self, [hub(['100.88.0.9/32'], 'client')])
  t.match(client.rejected, [{ reason: /only a gateway routes for other members/ }], 'a client cannot make itself a hub')
  const certified = computeMeshRoutes(config(), self, [hub(['100.88.0.9/32', '10.50.0.0/16'], 'gateway', { limits: { overlay: ['100.88.0.2'], subnets: ['10.50.0.0/16'] } })])
  t.same(certified.hubbed?.map((e) => e.prefix), ['10.50.0.0/16'], 'a certified hub routes only within its certificate')
})

t.test('hubAdvertisement: forward-for joins members (by name or prefix) and prefixes; never the receiver\'s own; not to outsiders', async (t) => {
  const KEY_D = Buffer.alloc(32, 4).toString('base64')
  const hubCfg = loadConfigText(`
node: { name: hub, role: gateway }
network: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }
peers:
  - { name: b, key: "${KEY_B}" }
  - { name: c, key: "${KEY_C}" }
  - { name: d, key: "${KEY_D}" }
gateway: { forward-for: [b, c] }
`, 'hub.yaml')
  if (!hubCfg.ok) throw new Error(JSON.stringify(hubCfg.diagnostics))
  const peers: ConnectedPeer[] = [
    peer(KEY_B, 'b', hello('b', '100.88.0.2', null, ['10.2.0.0/16'])),
    peer(KEY_C, 'c', hello('c', '100.88.0.3', null)),
    peer(KEY_D, 'd', hello('d', '100.88.0.4', null)),
  ]
  const routes = computeMeshRoutes(hubCfg.config, { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }, peers)
  t.same(hubAdvertisement(hubCfg.config, routes, peers, KEY_B), ['100.88.0.3/32'])
  t.same(hubAdvertisement(hubCfg.config, routes, peers, KEY_C), ['10.2.0.0/16', '100.88.0.2/32'])
  t.same(hubAdvertisement(hubCfg.config, routes, peers, KEY_D), [], 'd is not joined')
  const byPrefix = { ...hubCfg.config, gateway: { ...hubCfg.config.gateway, forwardFor: [{ kind: 'cidr' as const, cidr: '100.88.0.0/30' }] } }
  t.same(hubAdvertisement(byPrefix, routes, peers, KEY_B), ['100.88.0.3/32'], 'members inside a forward-for prefix are joined')
  const notGw = { ...hubCfg.config, node: { ...hubCfg.config.node, role: 'client' as const } }
  t.same(hubAdvertisement(notGw, routes, peers, KEY_B), [], 'only a gateway is a hub')
})

t.test('configured routes override advertisements and follow the named peer', async (t) => {
  const cfg = config('routes:\n  - { to: 10.30.0.0/16, via: c }\n')
  const r = computeMeshRoutes(cfg, self, [
    peer(KEY_B, 'b', hello('b', null, null, ['10.30.0.0/16'])),
    peer(KEY_C, 'c', hello('c', null, null, [])),
  ])
  t.same(r.fib.filter((e) => e.prefix === '10.30.0.0/16'), [{ prefix: '10.30.0.0/16', peer: KEY_C }])
  const down = computeMeshRoutes(cfg, self, [])
  t.same(down.fib, [], 'no FIB entry while the peer is away (the kernel route still holds the traffic in the tunnel)')
})

t.test('an unknown key (not in peers) still routes its own overlay address', async (t) => {
  const r = computeMeshRoutes(config(), self, [peer(KEY_X, null, hello('x', '100.88.0.9', null))])
  t.same(r.fib, [{ prefix: '100.88.0.9/32', peer: KEY_X }])
})

t.test('a certified member claims only what its certificate names', async (t) => {
  const limits = { overlay: ['100.88.0.2', 'fd00:88::2'], subnets: ['10.20.0.0/16'] }
  const member = (h: HelloMessage): ConnectedPeer => ({ key: KEY_X, configName: 'x', hello: h, limits })
  const ok = computeMeshRoutes(config(), self, [member(hello('x', '100.88.0.2', 'fd00:88::2', ['10.20.0.0/16', '10.20.5.0/24']))])
  t.same(ok.fib.map((e) => e.prefix), ['10.20.0.0/16', '10.20.5.0/24', '100.88.0.2/32', 'fd00:88::2/128'], 'its own addresses, a subnet and a part of it')
  t.same(ok.rejected, [])
  const bad = computeMeshRoutes(config(), self, [member(hello('x', '100.88.0.7', 'fd00:88::2', ['10.21.0.0/16', '10.0.0.0/8']))])
  t.same(bad.fib.map((e) => e.prefix), ['fd00:88::2/128'])
  t.same(
    bad.rejected.map((r) => `${r.what}: ${r.reason}`),
    [
      'overlay address 100.88.0.7: not an address its certificate names',
      'subnet 10.21.0.0/16: not within the subnets its certificate allows',
      'subnet 10.0.0.0/8: not within the subnets its certificate allows',
    ],
    'another address, another subnet, and a wider one are refused',
  )
  const pinned = computeMeshRoutes(config(), self, [{ key: KEY_B, configName: 'b', hello: hello('b', '100.88.0.9', null, ['10.9.0.0/16']), limits: null }])
  t.same(pinned.rejected, [], 'a pinned peer is not limited by a certificate')
})
