import t from 'tap'
import { desiredFromConfig, FORWARDING_SYSCTLS, LEARNED_ROUTE_METRIC, type KernelConfig } from '../../src/state/desired.js'
import type { RuntimeInputs } from '../../src/state/types.js'
import { validate } from '../../src/state/validate.js'

function config(over: Partial<KernelConfig> = {}): KernelConfig {
  return {
    node: { role: 'client' },
    tun: { name: 'qe0', mtu: 1400 },
    network: { name: 'n', overlay: { ipv4: '10.80.0.0/16', ipv6: 'fd00:80::/48' }, address: { ipv4: null, ipv6: null } },
    routes: [],
    subnets: [],
    ...over,
  }
}

const runtime: RuntimeInputs = { overlayAddresses: { ipv4: '10.80.0.5', ipv6: 'fd00:80::5' }, learnedRoutes: [], tunMtu: 1380 }

t.test('the overlay: TUN up at the configured MTU, addresses with the range prefix, one route per range', async (t) => {
  const d = desiredFromConfig(config(), runtime)
  t.same(d.links, [{ name: 'qe0', mtu: 1400, up: true }])
  t.same(d.addresses, [
    { family: 4, dev: 'qe0', address: '10.80.0.5', prefixLen: 16, noPrefixRoute: true },
    { family: 6, dev: 'qe0', address: 'fd00:80::5', prefixLen: 48, noPrefixRoute: true },
  ])
  t.same(
    d.routes.map((r) => [r.dst, r.dev, r.table, r.protocol, r.metric, r.scope]),
    [
      ['10.80.0.0/16', 'qe0', 5280, 113, 0, 'link'],
      ['fd00:80::/48', 'qe0', 5280, 113, 1024, 'universe'],
    ],
  )
  t.same(
    d.rules.map((r) => [r.family, r.priority, r.table]),
    [
      [4, 5280, 5280],
      [6, 5280, 5280],
    ],
  )
  t.same(d.sysctls, { 'net.ipv4.conf.qe0.promote_secondaries': '1' }, 'an IPv4 address change never empties the link')
})

t.test('mtu auto takes the engine MTU', async (t) => {
  const d = desiredFromConfig(config({ tun: { name: 'qe7', mtu: 'auto' } }), runtime)
  t.same(d.links, [{ name: 'qe7', mtu: 1380, up: true }])
  t.ok(d.routes.every((r) => r.dev === 'qe7'))
})

t.test('configured and learned routes go into the TUN; one kernel route per prefix at the lowest metric', async (t) => {
  const d = desiredFromConfig(
    config({
      routes: [
        { to: '192.168.50.0/24', via: 'b', metric: 100 },
        { to: '192.168.50.0/24', via: 'c', metric: 300 },
        { to: 'fd00:99::/48', via: 'b', metric: 0 },
      ],
    }),
    {
      ...runtime,
      learnedRoutes: [
        { prefix: '192.168.50.0/24', peer: 'd', metric: 50 },
        { prefix: '172.16.4.9/22', peer: 'e' },
      ],
    },
  )
  const byDst = new Map(d.routes.map((r) => [r.dst, r]))
  t.equal(byDst.get('192.168.50.0/24')?.metric, 50, 'the lowest metric wins')
  t.equal(byDst.get('172.16.4.0/22')?.metric, LEARNED_ROUTE_METRIC, 'learned prefix canonicalized, default metric')
  t.equal(byDst.get('fd00:99::/48')?.metric, 1024, 'IPv6 metric 0 is spelled as the kernel stores it')
  t.equal(d.routes.filter((r) => r.dst === '192.168.50.0/24').length, 1)
})

t.test('a learned route for a subnet this node serves itself is not routed into the tunnel', async (t) => {
  const d = desiredFromConfig(config({ subnets: [{ prefix: '192.168.1.0/24', exit: false, masquerade: false, priority: 100 }] }), {
    ...runtime,
    learnedRoutes: [{ prefix: '192.168.1.0/24', peer: 'x' }],
  })
  t.notOk(d.routes.some((r) => r.dst === '192.168.1.0/24'))
})

t.test('gateways turn IP forwarding on', async (t) => {
  const d = desiredFromConfig(config({ node: { role: 'gateway' } }), runtime)
  t.same(d.sysctls, { ...FORWARDING_SYSCTLS, 'net.ipv4.conf.qe0.promote_secondaries': '1' })
})

t.test('no overlay address yet: no address, the range route is still there', async (t) => {
  const d = desiredFromConfig(config(), { ...runtime, overlayAddresses: { ipv4: null, ipv6: null } })
  t.same(d.addresses, [])
  t.equal(d.routes.length, 2)
})

t.test('the desired state carries our marks (validate finds no ownership issue)', async (t) => {
  const d = desiredFromConfig(config({ routes: [{ to: '10.9.0.0/16', via: 'b', metric: 100 }] }), runtime)
  const issues = validate(d, { ...d, foreignRoutes: [] })
  t.same(issues, [])
})

t.test('the result is canonical: building it twice gives equal JSON', async (t) => {
  const a = desiredFromConfig(config(), { ...runtime, learnedRoutes: [{ prefix: '10.1.0.0/16', peer: 'a' }, { prefix: '10.0.0.0/16', peer: 'b' }] })
  const b = desiredFromConfig(config(), { ...runtime, learnedRoutes: [{ prefix: '10.0.0.0/16', peer: 'b' }, { prefix: '10.1.0.0/16', peer: 'a' }] })
  t.equal(JSON.stringify(a), JSON.stringify(b))
})

t.test('an exit: its default route in table 5281, main without its default first, and everything unmarked sent there', async (t) => {
  const d = desiredFromConfig(config(), { ...runtime, exit: { ipv4: 'tunnel', ipv6: 'block' } })
  t.same(
    d.routes.filter((r) => r.table === 5281).map((r) => [r.family, r.dst, r.type, r.dev]),
    [
      [4, '0.0.0.0/0', 'unicast', 'qe0'],
      [6, '::/0', 'unreachable', null],
    ],
    'through the tunnel for IPv4; IPv6 unreachable while a required exit is down',
  )
  const rules = d.rules.map((r) => [r.family, r.priority, r.table, r.suppressPrefixLen ?? null, r.fwmark, r.invert])
  t.same(rules, [
    [4, 5280, 5280, null, null, false],
    [4, 5281, 254, 0, null, false],
    [4, 5282, 5281, null, 0x5280, true],
    [6, 5280, 5280, null, null, false],
    [6, 5281, 254, 0, null, false],
    [6, 5282, 5281, null, 0x5280, true],
  ], 'overlay table; main but its default (LAN, link-local stay local); then the exit table for packets without the tunnel socket\'s mark')
  t.notOk(d.routes.some((r) => r.table === 5280 && r.dst.endsWith('/0')), 'no default route in the table every packet looks up')
  const actual = { links: [{ name: 'qe0', mtu: 1400, up: true }], addresses: [], routes: [], rules: [], sysctls: {}, foreignRoutes: [] }
  t.same(validate(d, actual), [], 'the planner takes it')
  const off = desiredFromConfig(config({ routes: [{ to: '0.0.0.0/0', via: 'gw', metric: 100 }] }), { ...runtime, exit: { ipv4: 'off', ipv6: 'off' } })
  t.notOk(off.routes.some((r) => r.dst === '0.0.0.0/0'), 'a fallen-back exit leaves the machine\'s own default route alone')
  t.same(off.rules.map((r) => r.priority), [5280, 5280])
})

t.test('a hub turns off ICMP redirects (members behind one TUN keep going through it)', async (t) => {
  const hub = desiredFromConfig(config({ node: { role: 'gateway' }, gateway: { forwardFor: [{ kind: 'peer', peer: 'a' }] } }), runtime)
  t.equal(hub.sysctls['net.ipv4.conf.all.send_redirects'], '0')
  t.equal(hub.sysctls['net.ipv4.conf.qe0.send_redirects'], '0')
  const gw = desiredFromConfig(config({ node: { role: 'gateway' } }), runtime)
  t.equal(gw.sysctls['net.ipv4.conf.all.send_redirects'], undefined, 'a plain gateway leaves them')
})
