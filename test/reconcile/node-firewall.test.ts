/**
 * The firewall slice in the node transaction: applied after the kernel and
 * before the engine, verified by its hash, rolled back with the others,
 * refused before anything changes when an ingress port is taken, repaired,
 * and removed at cleanup.
 */
import t from 'tap'
import { loadConfigText, type Config } from '../../src/config/index.js'
import { silentLogger } from '../../src/log.js'
import { NodeReconciler } from '../../src/reconcile/node.js'
import { Reconciler } from '../../src/reconcile/reconciler.js'
import { desiredNode, type NodeState } from '../../src/state/node.js'
import { memoryFirewallPort } from '../../src/system/nftables.js'
import { nodeKernel } from './fake-adapter.js'
import { FakeTables } from './fake-engine.js'

const key = (n: number) => Buffer.alloc(32, n).toString('base64')

function config(extra: string): Config {
  const r = loadConfigText(
    `node: { name: a, role: gateway }\nnetwork: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }\ntun: { mtu: 1400 }\npeers:\n  - { name: b, key: "${key(2)}" }\n${extra}`,
    'node.yaml',
  )
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

const EXIT = 'subnets: [{ prefix: 0.0.0.0/0, exit: true }, { prefix: 192.168.7.0/24, masquerade: true }]\n'
const INGRESS = 'gateway: { ingress: [{ listen: "0.0.0.0:8443", to: "b:443" }] }\n'

function desired(cfg: Config): NodeState {
  return desiredNode(cfg, { selfKey: key(1), self: { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }, tunMtu: 1400, peers: [], memberAddress: () => ({ ipv4: '100.88.0.2', ipv6: null }) }).state
}

function setup(port = memoryFirewallPort()) {
  const fake = nodeKernel()
  const kernel = new Reconciler({ periodicMs: 0, verifyDelayMs: 1 }, { system: fake, log: silentLogger })
  const node = new NodeReconciler({ engineVerifyDelayMs: 1, engineVerifyAttempts: 20 }, { kernel, log: silentLogger, firewall: port })
  return { fake, node, port, tables: new FakeTables() }
}

t.test('an exit gateway gets its table; the same state again sends nothing; cleanup deletes it', async (t) => {
  const { node, port } = setup()
  const r = await node.apply(desired(config(EXIT)))
  t.equal(r.ok, true)
  t.same(r.firewall?.actions.map((a) => a.text), ['+ firewall nat masquerade qe0 → any other interface (exit, ipv4)', '+ firewall nat masquerade qe0 → 192.168.7.0/24', '+ firewall mss clamp on qe0'])
  t.equal(port.applied.length, 1)
  const again = await node.apply(desired(config(EXIT)))
  t.same(again.firewall?.actions, [])
  t.equal(port.applied.length, 1, 'equal state: nft is not run again')
  await node.cleanup()
  t.equal(port.current, null, 'cleanup removed the table')
})

t.test('a node with nothing to masquerade or forward never runs nft', async (t) => {
  const { node, port } = setup()
  t.equal((await node.apply(desired(config('')))).ok, true)
  t.same(port.applied, [])
})

t.test('an ingress port in use: refused before anything is touched', async (t) => {
  const { fake, node, port } = setup(memoryFirewallPort({ listening: [{ proto: 'tcp', family: 6, address: '::', port: 8443 }] }))
  const routesBefore = fake.routes.size
  const r = await node.apply(desired(config(INGRESS)))
  t.equal(r.ok, false)
  t.match(r.firewall?.error?.message, /QE_INGRESS_PORT_IN_USE: ingress tcp 0\.0\.0\.0:8443: port 8443 is in use/)
  t.equal(fake.routes.size, routesBefore, 'the kernel was not touched')
  t.same(port.applied, [], 'nor the firewall')
  const plan = await node.plan(desired(config(INGRESS)))
  t.match(plan.issues, [{ code: 'QE_INGRESS_PORT_IN_USE', severity: 'error' }], 'plan shows it too')
})

t.test('ingress toward a member that does not exit through us is masqueraded', async (t) => {
  const { node, port } = setup()
  t.equal((await node.apply(desired(config(INGRESS)))).ok, true)
  t.match(port.current?.inputs.ingress, [{ proto: 'tcp', family: 4, listenAddress: null, listenPort: 8443, toAddress: '100.88.0.2', toPort: 443, masquerade: true }])
})

t.test('a firewall that nft refuses: the kernel goes back to its previous state', async (t) => {
  const { fake, node } = setup(memoryFirewallPort({ failOn: (s) => s.inputs.masquerade.length > 0 }))
  t.equal((await node.apply(desired(config('')))).ok, true)
  const routes = JSON.stringify([...fake.routes.values()])
  const r = await node.apply(desired(config(EXIT + 'routes: [{ to: 10.9.0.0/16, via: b }]\n')))
  t.equal(r.ok, false)
  t.match(r.firewall?.error?.message, /injected failure/)
  t.equal(JSON.stringify([...fake.routes.values()]), routes, 'the new route was taken back')
})

t.test('an engine that refuses its tables: the firewall goes back too', async (t) => {
  const { node, port, tables } = setup()
  await node.attachEngine(tables)
  t.equal((await node.apply(desired(config('')))).ok, true)
  tables.refuseNext = new Error('refused')
  const r = await node.apply(desired(config(EXIT + 'multipath: { accept: true }\n')))
  t.equal(r.ok, false)
  t.ok(port.current === null || port.current.empty, 'the exit table was removed again')
})

t.test('repairFirewall puts back a table someone deleted', async (t) => {
  const { node, port } = setup()
  await node.apply(desired(config(EXIT)))
  const want = port.current
  port.current = null
  await node.repairFirewall()
  t.equal((port.current as { hash: string } | null)?.hash, want?.hash)
})
