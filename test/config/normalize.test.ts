import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import type { Config } from '../../src/config/index.js'
import { defaultOverlayIpv6, dscpValue } from '../../src/config/defaults.js'

function load(text: string): Config {
  const r = loadConfigText(text, 'f.yaml')
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

t.test('a minimal file gets every default', async (t) => {
  const c = load('node: { name: n1 }\nnetwork: { name: acme }\n')
  t.same(c, {
    node: { name: 'n1', role: 'client', stateDir: '/var/lib/quicether', identity: '/var/lib/quicether/identity.key', bootstrapMode: false },
    network: {
      name: 'acme',
      overlay: { ipv4: '100.88.0.0/16', ipv6: defaultOverlayIpv6('acme') },
      address: { ipv4: null, ipv6: null },
      ca: null,
      certificate: '/var/lib/quicether/node.crt',
      secret: '/var/lib/quicether/network.secret',
      revocations: '/var/lib/quicether/revoked.json',
      caDir: null,
    },
    tun: { name: 'qe0', mtu: 'auto' },
    listen: { address: '::', port: 7443 },
    peers: [],
    discovery: { dht: false, bootstrap: [], connectTo: [], lan: false, publicAddress: null, advertiseAsBootstrap: false, port: 7444 },
    interfaces: [],
    multipath: { mode: 'failover', scheduler: 'min-rtt', target: null, accept: false, reorder: { maxDelay: 150, maxBytes: 4 * 1024 * 1024 }, trafficClasses: [] },
    subnets: [],
    routes: [],
    exit: { node: null, required: false },
    gateway: { forwardFor: [], ingress: [], advertiseBandwidth: null, relay: false },
    policies: { enforced: false, default: 'deny', groups: {}, rules: [], tests: [] },
    audit: { path: null, key: '/var/lib/quicether/audit.key', durability: 'fsync', rotate: { sizeBytes: 10 * 1024 * 1024, everyMs: null, keep: 10 } },
    metrics: { listen: null },
    ui: { listen: null },
    logging: { level: 'warn', destination: 'stderr' },
    auth: { require2fa: false, session: 12 * 3_600_000 },
    control: { socket: '/run/quicether/control.sock' },
  })
})

t.test('the identity follows the state directory unless set', async (t) => {
  t.equal(load('node: { name: n1, state-dir: /srv/qe }\nnetwork: { name: x }\n').node.identity, '/srv/qe/identity.key')
  t.equal(load('node: { name: n1, identity: /etc/qe.key }\nnetwork: { name: x }\n').node.identity, '/etc/qe.key')
})

t.test('the IPv6 overlay is a ULA /48 derived from the network name', async (t) => {
  const a = defaultOverlayIpv6('acme')
  t.match(a, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48$/)
  t.equal(defaultOverlayIpv6('acme'), a, 'deterministic')
  t.not(defaultOverlayIpv6('acme2'), a, 'differs by name')
})

t.test('the config is deeply frozen', async (t) => {
  const c = load('node: { name: n1 }\nnetwork: { name: x }\nsubnets: [10.0.0.0/8]\n')
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.node) && Object.isFrozen(c.subnets) && Object.isFrozen(c.subnets[0]))
  t.throws(() => {
    ;(c.node as { name: string }).name = 'x'
  }, TypeError)
})

t.test('units, prefixes and references are normalized', async (t) => {
  const key = Buffer.alloc(32, 2).toString('base64')
  const c = load(`
node: { name: n1, role: gateway }
network: { name: x, overlay: { ipv6: "FD00:0:0:1::/64" }, address: { ipv6: "fd00::1:0:0:0:5" } }
peers: [{ name: gw, key: "${key}", endpoints: ["[2001:DB8::1]:99", gw.example.com] }]
discovery: { connect-to: [gw, "198.51.100.1:7000", other.example.com] }
interfaces: [{ name: eth0, bandwidth: { up: 1.5Gbit, down: 100mbit } }]
multipath:
  reorder: { max-delay: 1s500ms, max-bytes: 64KiB }
  traffic-classes: [{ name: rt, match: { dscp: [EF, AF41, CS1, 10], ports: [22, "1000-2000"], max-packet-size: 200 }, path: eth0 }]
subnets: ["10.0.0.0/24", { prefix: "0.0.0.0/0", exit: true }]
gateway: { forward-for: [gw, 192.168.0.0/16], advertise-bandwidth: 1Gbps }
policies:
  rules:
    - { from: group:g, to: 10.0.0.5, action: allow }
    - { from: 10.1.0.0/16, to: "fd00::1", proto: udp, ports: [53], action: deny }
    - { from: peer:gw, action: allow }
  groups: { g: [gw, n1] }
metrics: { listen: "127.0.0.1:9586" }
`)
  t.equal(c.network.overlay.ipv6, 'fd00:0:0:1::/64')
  t.equal(c.network.address.ipv6, 'fd00:0:0:1::5')
  t.same(c.peers[0]!.endpoints, [{ host: '2001:db8::1', port: 99 }, { host: 'gw.example.com', port: 7443 }])
  t.same(c.discovery.connectTo, [
    { kind: 'peer', peer: 'gw' },
    { kind: 'endpoint', endpoint: { host: '198.51.100.1', port: 7000 } },
    { kind: 'endpoint', endpoint: { host: 'other.example.com', port: 7443 } },
  ])
  t.same(c.interfaces[0]!.bandwidth, { up: 1_500_000_000, down: 100_000_000 })
  t.same(c.multipath.reorder, { maxDelay: 1_500, maxBytes: 65_536 })
  t.same(c.multipath.trafficClasses[0]!.match, { dscp: [46, 34, 8, 10], ports: [{ from: 22, to: 22 }, { from: 1000, to: 2000 }], maxPacketSize: 200 })
  t.same(c.subnets, [{ prefix: '10.0.0.0/24', exit: false, masquerade: false, priority: 100 }, { prefix: '0.0.0.0/0', exit: true, masquerade: false, priority: 100 }])
  t.same(c.gateway.forwardFor, [{ kind: 'peer', peer: 'gw' }, { kind: 'cidr', cidr: '192.168.0.0/16' }])
  t.equal(c.gateway.advertiseBandwidth, 1_000_000_000)
  t.same(c.policies.rules[0], { name: null, from: { kind: 'group', group: 'g' }, to: { kind: 'cidr', cidr: '10.0.0.5/32' }, proto: 'any', ports: [], action: 'allow' })
  t.same(c.policies.rules[1]!.from, { kind: 'cidr', cidr: '10.1.0.0/16' })
  t.same(c.policies.rules[1]!.to, { kind: 'cidr', cidr: 'fd00::1/128' })
  t.same(c.policies.rules[2]!.to, { kind: 'any' })
  t.same(c.metrics.listen, { host: '127.0.0.1', port: 9586 })
})

t.test('DSCP names', async (t) => {
  t.equal(dscpValue('EF'), 46)
  t.equal(dscpValue('af11'), 10)
  t.equal(dscpValue('CS7'), 56)
  t.equal(dscpValue('VA'), 44)
  t.equal(dscpValue(12), 12)
})

t.test('auth.session is a duration in ms, 12 h unless set', async (t) => {
  t.equal(load('node: { name: n1 }\nnetwork: { name: x }\nauth: { session: 30m }\n').auth.session, 30 * 60_000)
  t.equal(load('node: { name: n1 }\nnetwork: { name: x }\n').auth.session, 12 * 3_600_000)
})
