import t from 'tap'
import { readFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { loadConfigText } from '../../src/config/index.js'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import { mergeConfig, nodeConfig, nthHost, overlayAddresses, peerEndpoints } from '../../src/lab/nodeconfig.js'
import { parseScenario } from '../../src/lab/scenario.js'

const scenario = parseScenario(readFileSync(new URL('../../examples/lab/two-sites.yaml', import.meta.url), 'utf8'))
const keys = new Map(['office', 'home', 'laptop'].map((n) => [n, publicKeyBase64(generateIdentity())]))

t.test('overlay host n of a range', async (t) => {
  t.equal(nthHost('10.252.0.0/24', 1), '10.252.0.1')
  t.equal(nthHost('10.252.0.77/24', 2), '10.252.0.2', 'host bits of the range are ignored')
  t.equal(nthHost('fdc5:1ab:ff::/64', 10), 'fdc5:1ab:ff::a')
  t.throws(() => nthHost('10.0.0.0/30', 4), { code: 'QE_LAB_SPEC' })
  const ov = overlayAddresses(scenario.topology, scenario.network)
  t.same(ov.get('home'), { ipv4: '10.252.0.2', ipv6: 'fdc5:1ab:ff::2' })
})

t.test('the a end dials the b end; the inside of a NAT is not reachable from outside', async (t) => {
  t.same(peerEndpoints(scenario.topology, 'home', 'office', 7443), { endpoints: ['10.251.0.130:7443'], dial: true })
  t.same(peerEndpoints(scenario.topology, 'office', 'home', 7443), { endpoints: [], dial: false })
  t.same(peerEndpoints(scenario.topology, 'office', 'server', 7443), { endpoints: ['10.251.2.2:7443'], dial: true })
  t.same(peerEndpoints(scenario.topology, 'home', 'laptop', 7443), { endpoints: [], dial: false }, 'no shared link')
})

t.test('a generated config passes the config loader, with peers, keys and connect-to wired', async (t) => {
  for (const name of ['office', 'home', 'laptop']) {
    const c = nodeConfig({ topology: scenario.topology, network: scenario.network, keys, dir: '/tmp/qel-abcd' }, name)
    const r = loadConfigText(stringify(c), `${name}.yaml`)
    t.ok(r.ok, `${name}: ${JSON.stringify(r.ok ? '' : r)}`)
    if (!r.ok) continue
    const cfg = r.config
    t.equal(cfg.node.name, name)
    t.equal(cfg.node.identity, `/tmp/qel-abcd/${name}/identity.key`)
    t.equal(cfg.control.socket, `/tmp/qel-abcd/${name}/control.sock`, 'daemons on one host never share a control socket')
    t.equal(cfg.tun.name, 'qe0')
    t.equal(cfg.discovery.dht, false)
    t.equal(cfg.discovery.lan, false)
    t.same(cfg.peers.map((p) => p.name).sort(), ['home', 'laptop', 'office'].filter((n) => n !== name).sort(), 'every other daemon, not the plain host')
    for (const p of cfg.peers) t.equal(p.key, keys.get(p.name))
  }
  const home = nodeConfig({ topology: scenario.topology, network: scenario.network, keys, dir: '/tmp/qel-abcd' }, 'home')
  t.same((home['discovery'] as Record<string, unknown>)['connect-to'], ['office'])
  t.same((home['logging'] as Record<string, unknown>)['level'], 'debug', "the scenario's config: is merged over")
  const office = nodeConfig({ topology: scenario.topology, network: scenario.network, keys, dir: '/tmp/qel-abcd' }, 'office')
  t.same((office['discovery'] as Record<string, unknown>)['connect-to'], [], 'office dials nobody: home and laptop are behind NAT')
})

t.test('merging: objects key by key, lists and values replace', async (t) => {
  t.same(mergeConfig({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, e: 2 }), { a: { b: 1, c: [3] }, d: 1, e: 2 })
})
