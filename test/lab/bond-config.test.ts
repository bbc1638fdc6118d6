import t from 'tap'
import { stringify } from 'yaml'
import { loadConfigText } from '../../src/config/index.js'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import { nodeConfig } from '../../src/lab/nodeconfig.js'
import { DEFAULT_NETWORK } from '../../src/lab/scenario.js'
import { linkAddressing } from '../../src/lab/link.js'
import { linkIfname } from '../../src/lab/names.js'
import { bondTopology, parseUplinks } from '../../src/lab/bond-spec.js'
import { bondedClient, bondedGateway, multipathFor, singleUplinkClient, type BondLinkInfo } from '../../src/lab/bond-config.js'
import { readSchemaModes, schemaModes } from '../../src/lab/bond-schema.js'

const uplinks = parseUplinks(['25/5mbit,15ms', '50mbit,10ms', '100mbit,40ms,1%'])
const topology = bondTopology(uplinks)
const keys = new Map(['client', 'gateway'].map((n) => [n, publicKeyBase64(generateIdentity())]))
const dir = '/tmp/qel-abcd'
const client = nodeConfig({ topology, network: DEFAULT_NETWORK, keys, dir }, 'client')
const gateway = nodeConfig({ topology, network: DEFAULT_NETWORK, keys, dir }, 'gateway')
const links: BondLinkInfo[] = uplinks.map((u, i) => ({ ifname: linkIfname('abcd', i, 'a'), gatewayAddr: linkAddressing(i, true).b.ipv4, up: u.up.rate!, down: u.down.rate! }))
const modes = readSchemaModes()
const port = DEFAULT_NETWORK.port

function load(c: Record<string, unknown>, name: string) {
  const r = loadConfigText(stringify(c), `${name}.yaml`)
  if (!r.ok) throw new Error(`${name} does not load: ${JSON.stringify(r.diagnostics)}`)
  return r.config
}

t.test('bonded client: every uplink in interfaces, multipath toward the gateway, its address on every link', async (t) => {
  const cfg = load(bondedClient(client, { links, mode: 'aggregate', port, schemaModes: modes }), 'client')
  t.same(cfg.interfaces.map((u) => u.name), ['qel-abcd-l0a', 'qel-abcd-l1a', 'qel-abcd-l2a'], 'the client-side link interfaces, in order')
  t.same(cfg.interfaces.map((u) => u.bandwidth), [{ up: 25e6, down: 5e6 }, { up: 50e6, down: 50e6 }, { up: 100e6, down: 100e6 }])
  t.equal(cfg.multipath.mode, 'aggregate')
  t.equal(cfg.multipath.target, 'gateway')
  t.equal(cfg.multipath.accept, false)
  const gw = cfg.peers.find((p) => p.name === 'gateway')!
  t.same(gw.endpoints.map((e) => `${e.host}:${e.port}`), ['10.251.0.130:7443', '10.251.1.130:7443', '10.251.2.130:7443'])
  t.equal(gw.key, keys.get('gateway'))
  t.same(cfg.multipath.trafficClasses.map((c) => c.path), ['lowest-latency', 'lowest-latency'], 'interactive traffic goes on the lowest-latency path')
  t.same(cfg.multipath.trafficClasses[0]!.match.dscp, [46], 'DSCP EF')
  t.equal(cfg.multipath.trafficClasses[1]!.match.maxPacketSize, 256)
  t.equal(cfg.node.name, 'client', 'the rest of the generated config is kept')
})

t.test('bonded gateway accepts the paths and classifies its replies like the client; nothing else changes', async (t) => {
  const cfg = load(bondedGateway(gateway), 'gateway')
  t.equal(cfg.multipath.accept, true)
  t.same(cfg.interfaces, [])
  t.same(cfg.multipath.trafficClasses.map((k) => k.name), ['interactive-ef', 'interactive-small'])
  t.same(cfg.multipath.trafficClasses.map((k) => k.path), ['lowest-latency', 'lowest-latency'])
  const mp = bondedGateway({ ...gateway, multipath: { reorder: { 'max-delay': '100ms' } } })['multipath'] as Record<string, unknown>
  t.same(mp['reorder'], { 'max-delay': '100ms' }, 'its own multipath settings are kept')
  t.equal(mp['accept'], true)
})

t.test('alone on one uplink: only that link’s gateway address, no multipath', async (t) => {
  const raw = singleUplinkClient(client, links, 1, port)
  const cfg = load(raw, 'client')
  t.same(cfg.peers.find((p) => p.name === 'gateway')!.endpoints.map((e) => `${e.host}:${e.port}`), ['10.251.1.130:7443'])
  t.same(cfg.interfaces, [])
  t.notOk('multipath' in raw)
  t.throws(() => singleUplinkClient(client, links, 3, port), { code: 'QE_LAB_SPEC' })
})

t.test('failover orders the uplinks; weighted weighs them by rate', async (t) => {
  const f = load(bondedClient(client, { links, mode: 'failover', port, schemaModes: modes }), 'client')
  t.equal(f.multipath.mode, 'failover')
  t.same(f.interfaces.map((u) => [u.role, u.priority]), [['primary', 0], ['backup', 10], ['backup', 20]])
  const w = load(bondedClient(client, { links, mode: 'weighted', port, schemaModes: modes }), 'client')
  t.same(w.interfaces.map((u) => u.weight), [25, 50, 100])
  if (modes.includes('weighted')) t.equal(w.multipath.mode, 'weighted')
  else t.same([w.multipath.mode, w.multipath.scheduler], ['aggregate', 'weighted'], 'no weighted mode in the schema: aggregate with the weighted scheduler')
  const r = load(bondedClient(client, { links, mode: 'redundant', port, schemaModes: modes }), 'client')
  t.equal(r.multipath.mode, 'redundant')
})

t.test('multipath mode for a lab mode, by what the schema allows', async (t) => {
  t.same(multipathFor('weighted', ['aggregate', 'failover', 'redundant']), { mode: 'aggregate', scheduler: 'weighted' })
  t.same(multipathFor('weighted', ['aggregate', 'failover', 'redundant', 'weighted']), { mode: 'weighted' })
  t.same(multipathFor('failover', ['aggregate', 'failover', 'redundant']), { mode: 'failover' })
  t.throws(() => multipathFor('redundant', ['aggregate', 'failover']), { code: 'QE_LAB_SPEC' })
  t.same(schemaModes({ properties: { multipath: { properties: { mode: { enum: ['a', 'b'] } } } } }), ['a', 'b'])
  t.same(schemaModes({}), ['aggregate', 'failover', 'redundant'], 'an unreadable schema falls back to the known modes')
  t.ok(modes.includes('aggregate'), 'the installed schema is read')
})
