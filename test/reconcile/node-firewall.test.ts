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

t.test('the first apply reads what an earlier run left: equal is adopted, different is replaced, unwanted is removed', async (t) => {
  const exit = desired(config(EXIT)).firewall
  const left = memoryFirewallPort()
  left.current = exit
  const a = setup(left)
  const r = await a.node.apply(desired(config(EXIT)))
  t.equal(r.ok, true)
  t.same(left.applied, [], 'an equal table is adopted, nft is not run')
  t.same(r.firewall.actions, [])

  const stale = memoryFirewallPort()
  stale.current = exit
  const b = setup(stale)
  const r2 = await b.node.apply(desired(config('')))
  t.equal(r2.ok, true)
  t.equal(stale.current, null, 'a table the config no longer asks for is removed')
  t.match(r2.firewall.actions, [{ op: 'del', text: /^- firewall table quicether-qe0 left by an earlier run \(qe:[0-9a-f]+\)$/ }])
})

t.test('an engine that refuses its tables: the firewall goes back to exactly the table before', async (t) => {
  const { node, port, tables } = setup()
  await node.attachEngine(tables)
  t.equal((await node.apply(desired(config(EXIT)))).ok, true)
  const before = port.current?.hash
  tables.refuseNext = new Error('refused')
  const r = await node.apply(desired(config(EXIT + INGRESS + 'multipath: { accept: true }\n')))
  t.equal(r.ok, false)
  t.equal(r.engine.rolledBack, true)
  t.equal(port.current?.hash, before, 'the exit table is back, without the ingress')
  t.equal(port.applied.length, 3, 'applied, changed, restored')
})

t.test('a firewall that nft refuses leaves the engine untouched and the old table in place', async (t) => {
  const port = memoryFirewallPort({ failOn: (s) => s.inputs.ingress.length > 0 })
  const { node, tables } = setup(port)
  await node.attachEngine(tables)
  t.equal((await node.apply(desired(config(EXIT)))).ok, true)
  const before = port.current?.hash
  const version = tables.readTables()?.version
  const r = await node.apply(desired(config(EXIT + INGRESS + 'multipath: { accept: true }\n')))
  t.equal(r.ok, false)
  t.equal(r.firewall.ok, false)
  t.same(r.engine.actions, [], 'the engine step was not tried')
  t.equal(tables.readTables()?.version, version)
  t.equal(port.current?.hash, before)
})

t.test('cleanup after a first apply that failed before the firewall: a table an earlier run left is removed', async (t) => {
  const port = memoryFirewallPort({ listening: [{ proto: 'tcp', family: 4, address: '0.0.0.0', port: 8443 }] })
  port.current = desired(config(EXIT)).firewall
  const { node } = setup(port)
  t.equal((await node.apply(desired(config(INGRESS)))).ok, false, 'refused: port in use')
  t.same(port.applied, [])
  await node.cleanup()
  t.equal(port.current, null)
})

t.test('cleanup on a node whose table is known to be absent runs no nft', async (t) => {
  const port = memoryFirewallPort()
  let reads = 0
  const readHash = port.readHash.bind(port)
  port.readHash = async (table: string) => (reads++, readHash(table))
  const { node } = setup(port)
  await node.apply(desired(config('')))
  const before = reads
  await node.cleanup()
  t.equal(reads, before)
  t.same(port.applied, [])
})

t.test('repairFirewall: nothing to do reports true without running nft; a failing nft reports false', async (t) => {
  let fail = false
  const port = memoryFirewallPort({ failOn: () => fail })
  const { node } = setup(port)
  await node.apply(desired(config(EXIT)))
  t.equal(await node.repairFirewall(), true)
  t.equal(port.applied.length, 1)
  port.current = null
  fail = true
  t.equal(await node.repairFirewall(), false)
  fail = false
  t.equal(await node.repairFirewall(), true)
  t.equal((port.current as { hash: string } | null)?.hash, desired(config(EXIT)).firewall.hash)
})

t.test('plan shows the firewall lines; a new ingress target is one change', async (t) => {
  const { node } = setup()
  const first = await node.plan(desired(config(INGRESS)))
  t.same(first.firewall.map((a) => a.text), ['+ firewall ingress tcp 0.0.0.0:8443 → 100.88.0.2:443 (masqueraded)', '+ firewall mss clamp on qe0'])
  await node.apply(desired(config(INGRESS)))
  const moved = await node.plan(desired(config('gateway: { ingress: [{ listen: "0.0.0.0:8443", to: "b:8443" }] }\n')))
  t.same(moved.firewall, [{ op: 'change', text: '~ firewall ingress tcp 0.0.0.0:8443 → 100.88.0.2:8443 (masqueraded) (was → 100.88.0.2:443 (masqueraded))' }])
})
