/**
 * Semantic rules beyond the invalid corpus: warnings, what is deliberately allowed, and
 * that one problem gives one message. (Each error rule also has a fixture in
 * test/fixtures/invalid/, with its line and column.)
 */
import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import type { Diagnostic } from '../../src/config/index.js'

const BASE = 'node: { name: n1 }\nnetwork: { name: net }\n'
const KA = Buffer.alloc(32, 1).toString('base64')
const KB = Buffer.alloc(32, 2).toString('base64')
const PEERS = `peers:\n  - { name: a, key: "${KA}" }\n  - { name: b, key: "${KB}" }\n`

/** Every diagnostic but the not-implemented warnings (test/config/not-implemented.test.ts covers those). */
function diags(text: string): Diagnostic[] {
  return loadConfigText(text, 'f.yaml').diagnostics.filter((d) => d.code !== 'QE_NOT_IMPLEMENTED')
}
function codes(text: string): string[] {
  return diags(text).map((d) => `${d.severity}:${d.code}`)
}

t.test('warnings: reported, but the config still loads', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['dht without bootstrap nodes', "node: { name: n1 }\nnetwork: { name: net, ca: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }\ndiscovery: { dht: true }\n", 'dht-without-bootstrap'],
    ['aggregate with one uplink', BASE + 'interfaces: [{ name: eth0 }]\nmultipath: { mode: aggregate }\n', 'aggregate-single-uplink'],
    ['gateway settings on a client', BASE + 'gateway: { relay: true }\n', 'gateway-settings-on-client'],
    ['advertised as bootstrap without a public address', BASE + 'discovery: { advertise-as-bootstrap: true }\n', 'bootstrap-without-public-address'],
  ]
  for (const [name, text, code] of cases) {
    t.ok(loadConfigText(text, 'f.yaml').ok, `${name}: loads`)
    t.same(codes(text), [`warning:${code}`], `${name}: one warning`)
  }
})

t.test('no warning where the setting is right', async (t) => {
  t.same(codes('node: { name: n1, bootstrap-mode: true }\nnetwork: { name: net }\ndiscovery: { dht: true }\n'), [], 'a bootstrap node seeds the DHT itself')
  t.same(codes('node: { name: n1, role: gateway }\nnetwork: { name: net }\ngateway: { relay: true }\nsubnets: [{ prefix: "::/0", exit: true }]\n'), [])
  t.same(codes(BASE + 'discovery: { advertise-as-bootstrap: true, public-address: 203.0.113.9 }\n'), [])
})

t.test('allowed on purpose', async (t) => {
  t.same(codes(BASE + PEERS + 'routes:\n  - { to: 10.0.0.0/8, via: a }\n  - { to: 10.5.0.0/16, via: b }\n'), [], 'nested routes: longest prefix wins')
  t.same(codes(BASE + PEERS + 'routes:\n  - { to: 10.0.0.0/16, via: a }\n  - { to: 10.0.0.0/16, via: b, metric: 200 }\n'), [], 'the same prefix with a backup metric')
  t.same(codes('node: { name: n1, role: gateway }\nnetwork: { name: net }\nsubnets: [{ prefix: 0.0.0.0/0, exit: true }, 192.168.1.0/24]\n'), [], 'an exit may also advertise its LAN')
  t.same(codes(BASE + 'subnets: [10.0.0.0/16, 10.1.0.0/16, "fd00:1::/48"]\n'), [], 'adjacent prefixes do not overlap')
  t.same(codes(BASE + `peers: [{ name: a, key: "${KA}", groups: [ops] }]\npolicies: { rules: [{ from: group:ops, action: allow }] }\n`), [], 'a group defined by a peer\'s groups')
  t.same(codes(BASE + 'policies: { groups: { me: [n1] } }\n'), [], 'a group may name this node')
  t.same(codes(BASE + PEERS + 'discovery: { connect-to: [a, "203.0.113.4:7443", gw.example.com, "[2001:db8::1]:1"] }\n'), [])
  t.same(codes('node: { name: n1, role: gateway }\nnetwork: { name: net }\n' + PEERS + 'gateway: { forward-for: [a, 10.8.0.0/16] }\n'), [])
  t.same(codes(BASE + 'policies: { rules: [{ proto: any, ports: [53], action: allow }] }\n'), [], 'ports with proto any mean tcp and udp')
})

t.test('a default route through the mesh makes that peer the exit; exit-node must agree', async (t) => {
  for (const to of ['0.0.0.0/0', '::/0']) {
    t.same(diags(BASE + PEERS + `routes: [{ to: "${to}", via: a }]\n`), [], to)
    t.match(diags(BASE + PEERS + `exit-node: b\nroutes: [{ to: "${to}", via: a }]\n`), [{ severity: 'error', code: 'exit-conflict', path: 'routes[0].via' }], `${to} via another peer than exit-node`)
  }
  t.match(diags(BASE + 'subnets: [{ prefix: 0.0.0.0/0, exit: true }]\n'), [{ severity: 'error', code: 'exit-on-client', message: /needs node.role: gateway/ }], 'an exit on a client is an error: peers would refuse it')
  t.match(diags(BASE + 'exit-node: nobody\n'), [{ severity: 'error', code: 'unknown-peer', path: 'exit-node' }])
  t.match(diags(BASE + 'exit-node-required: true\n'), [{ severity: 'warning', code: 'exit-required-without-exit' }])
})

t.test('gateway.ingress: addresses, duplicates, members, families', async (t) => {
  const GW = 'node: { name: n1, role: gateway }\nnetwork: { name: net }\n' + PEERS
  t.same(diags(GW + 'gateway: { ingress: [{ listen: "0.0.0.0:32400", to: "a:32400" }, { listen: "[::]:443", to: "[fd00::5]:443", proto: tcp }] }\n'), [])
  t.match(diags(GW + 'gateway: { ingress: [{ listen: "0.0.0.0:80", to: "a:80" }, { listen: "0.0.0.0:80", to: "b:80" }] }\n'), [{ code: 'ingress-duplicate', path: 'gateway.ingress[1].listen' }])
  t.match(diags(GW + 'gateway: { ingress: [{ listen: "public.example:80", to: "a:80" }] }\n'), [{ code: 'bad-ip', path: 'gateway.ingress[0].listen' }])
  t.match(diags(GW + 'gateway: { ingress: [{ listen: "0.0.0.0:80", to: "ghost:80" }] }\n'), [{ code: 'unknown-peer', path: 'gateway.ingress[0].to' }])
  t.match(diags(GW + 'gateway: { ingress: [{ listen: "0.0.0.0:80", to: "[fd00::5]:80" }] }\n'), [{ code: 'ingress-family' }])
  t.match(diags(BASE + PEERS + 'gateway: { ingress: [{ listen: "0.0.0.0:80", to: "a:80" }] }\n'), [{ severity: 'warning', code: 'ingress-on-client' }])
  t.match(diags(BASE + 'subnets: [{ prefix: 10.1.0.0/24, masquerade: true }]\n'), [{ severity: 'warning', code: 'masquerade-on-client', path: 'subnets[0].masquerade' }])
})

t.test('one problem, one message', async (t) => {
  // The schema and the rules both look at a bad prefix; only one speaks.
  t.same(codes(BASE + 'subnets: [10.0.0.0]\n'), ['error:bad-cidr'])
  t.same(codes(BASE + 'interfaces: [{ name: eth0, bandwidth: { up: 25MBps } }]\n'), ['error:bad-unit'])
  t.same(codes(BASE + `peers: [{ name: a, key: "nope" }]\n`), ['error:bad-key'])
})

t.test('conflicts name the other place', async (t) => {
  const d = diags(BASE + 'subnets:\n  - 10.0.0.0/16\n  - 10.0.0.0/16\n')
  t.match(d, [{ code: 'subnet-overlap', line: 5, col: 5, message: 'subnet 10.0.0.0/16 is advertised twice (also at line 4)' }])
})

t.test('the IPv6 overlay and addresses', async (t) => {
  t.same(codes(BASE.replace('{ name: net }', '{ name: net, overlay: { ipv6: "fd00:1::/48" }, address: { ipv6: "fd00:1::9", ipv4: 100.88.0.9 } }')), [])
  t.same(codes(BASE.replace('{ name: net }', '{ name: net, overlay: { ipv6: "fd00:1::/48" }, address: { ipv6: "fd00:2::9" } }')), ['error:address-outside-overlay'])
  t.same(codes(BASE.replace('{ name: net }', '{ name: net, overlay: { ipv6: "fd00:1::/48" } }') + 'subnets: ["fd00:1:0:2::/64"]\n'), ['error:overlay-overlap'])
  t.same(codes(BASE.replace('{ name: net }', '{ name: net, overlay: { ipv6: "fd00:1::/48" } }') + 'subnets: ["fd00:1:2::/64"]\n'), [], 'next to the overlay is fine')
  t.same(codes(BASE.replace('{ name: net }', '{ name: net, address: { ipv4: "fd00::1" } }')), ['error:bad-ip'])
})

t.test('discovery needs a CA, and a port of its own', async (t) => {
  t.same(codes(BASE + 'discovery: { lan: true }\n'), ['error:discovery-without-ca'], 'LAN discovery without network.ca')
  t.same(codes(BASE + 'discovery: { dht: true, bootstrap: [192.0.2.1:7444] }\n'), ['error:discovery-without-ca'], 'the DHT without network.ca')
  t.same(codes(BASE + 'listen: { port: 9000 }\ndiscovery: { port: 9000 }\n'), ['error:discovery-port-clash'])
  t.same(codes(BASE + 'listen: { port: 9000 }\ndiscovery: { port: 9001 }\n'), [])
})
