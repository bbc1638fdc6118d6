import t from 'tap'
import { loadConfigText, type Config } from '../../src/config/index.js'
import { silentLogger } from '../../src/log.js'
import { NodeReconciler } from '../../src/reconcile/node.js'
import { Reconciler } from '../../src/reconcile/reconciler.js'
import { desiredNode, type NodeState } from '../../src/state/node.js'
import type { ConnectedPeer } from '../../src/state/routes.js'
import { NetlinkError } from '../../src/system/errors.js'
import { nodeKernel } from './fake-adapter.js'
import { FakeTables } from './fake-engine.js'

const key = (n: number) => Buffer.alloc(32, n).toString('base64')
const SELF = key(1)
const SELF_ADDR = { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }

function config(peers: [string, number][], extra = ''): Config {
  const r = loadConfigText(
    `node: { name: a, role: gateway }\nnetwork: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }\ntun: { mtu: 1400 }\n` +
      `peers:\n${peers.map(([n, k]) => `  - { name: ${n}, key: "${key(k)}" }`).join('\n')}\n${extra}`,
    'node.yaml',
  )
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

function desired(cfg: Config, peers: ConnectedPeer[] = []): NodeState {
  return desiredNode(cfg, { selfKey: SELF, self: SELF_ADDR, tunMtu: 1400, peers }).state
}

function setup() {
  const fake = nodeKernel()
  const kernel = new Reconciler({ periodicMs: 0, verifyDelayMs: 1 }, { system: fake, log: silentLogger })
  const node = new NodeReconciler({ engineVerifyDelayMs: 1, engineVerifyAttempts: 20 }, { kernel, log: silentLogger })
  const tables = new FakeTables()
  return { fake, kernel, node, tables }
}

const helloB: ConnectedPeer = { key: key(2), configName: 'b', hello: { overlay: { ipv4: '100.88.0.2', ipv6: null }, subnets: ['10.20.0.0/16'] } }

t.test('one apply writes the kernel and the engine, verified by reading the engine back; again is a no-op', async (t) => {
  const { fake, node, tables } = setup()
  await node.attachEngine(tables)
  const want = desired(config([['b', 2]]), [helloB])
  const r = await node.apply(want)
  t.equal(r.ok, true)
  t.ok(r.kernel.plan.actions.length > 0)
  t.same(r.engine.actions.map((a) => a.text), [`+ engine peer ${key(2).slice(0, 8)}…`, `+ engine route 10.20.0.0/16 → ${key(2).slice(0, 8)}…`, `+ engine route 100.88.0.2/32 → ${key(2).slice(0, 8)}…`])
  t.equal(r.engine.version, 1)
  t.same(tables.applied?.allowedPeers, [key(2)])
  t.same(tables.applied?.routes.map((x) => x.prefix), ['10.20.0.0/16', '100.88.0.2/32'])
  t.ok([...fake.routes.values()].some((x) => x.dst === '10.20.0.0/16'), 'the learned subnet is routed into the TUN')
  const again = await node.apply(want)
  t.equal(again.ok, true)
  t.same(again.engine.actions, [])
  t.same(tables.sets, [1], 'equal tables are not sent again')
})

t.test('plan names a peer the new config adds, in the engine slice; nothing is applied', async (t) => {
  const { node, tables } = setup()
  await node.attachEngine(tables)
  await node.apply(desired(config([['b', 2]])))
  const p = await node.plan(desired(config([['b', 2], ['newbie', 7]])), (k) => (k === key(7) ? 'newbie' : 'b'))
  t.same(p.engine.map((a) => a.text), ['+ engine peer newbie'])
  t.same(tables.sets, [1], 'plan sends nothing')
})

for (const [name, arm] of [
  ['the engine refuses the tables', (x: FakeTables) => (x.refuseNext = new Error('bad uplink'))],
  ['the engine reads back other tables', (x: FakeTables) => (x.corruptNext = true)],
  ['the engine never applies them', (x: FakeTables) => (x.stuck = true)],
] as const) {
  t.test(`an engine failure (${name}) leaves both kernel and engine as they were`, async (t) => {
    const { fake, node, tables } = setup()
    await node.attachEngine(tables)
    const before = desired(config([['b', 2]]), [helloB])
    t.equal((await node.apply(before)).ok, true)
    const kernelBefore = fake.dump()
    const engineBefore = JSON.stringify(tables.applied)

    arm(tables)
    const after = desired(config([['b', 2], ['c', 3]], 'routes: [ { to: 10.99.0.0/16, via: c } ]'), [helloB])
    const r = await node.apply(after)
    t.equal(r.ok, false)
    t.equal(r.kernel.ok, true, 'the kernel step itself had succeeded')
    t.equal(r.engine.ok, false)
    t.ok(r.engine.error, 'the engine error is reported')
    if (name !== 'the engine never applies them') {
      t.equal(r.engine.rolledBack, true)
      t.same(JSON.parse(JSON.stringify(tables.applied)).allowedPeers, JSON.parse(engineBefore).allowedPeers, 'engine: the same allowed keys')
      t.same(JSON.parse(JSON.stringify(tables.applied)).routes, JSON.parse(engineBefore).routes, 'engine: the same FIB')
    } else {
      t.equal(r.engine.rolledBack, false, 'a stuck engine cannot be said to be rolled back')
    }
    t.same(fake.dump(), kernelBefore, 'kernel: exactly as before (the 10.99.0.0/16 route came and went)')
    t.same(node.kernel.desired, before.kernel, 'the previous kernel state is still the committed one')
  })
}

t.test('a kernel failure leaves the engine untouched (the kernel rolls itself back)', async (t) => {
  const { fake, node, tables } = setup()
  await node.attachEngine(tables)
  t.equal((await node.apply(desired(config([['b', 2]])))).ok, true)
  const kernelBefore = fake.dump()
  fake.failWith = (method) => (method === 'addRoute' ? new NetlinkError('add route (injected)', 'EPERM') : null)
  const r = await node.apply(desired(config([['b', 2], ['c', 3]], 'routes: [ { to: 10.99.0.0/16, via: c } ]')))
  t.equal(r.ok, false)
  t.equal(r.kernel.ok, false)
  t.same(r.engine.actions, [], 'the engine step never ran')
  t.same(tables.sets, [1])
  t.same(tables.applied?.allowedPeers, [key(2)])
  t.same(fake.dump(), kernelBefore)
})

t.test('a new engine (restart) gets every table again; none attached means kernel only', async (t) => {
  const { node, tables } = setup()
  await node.attachEngine(null)
  const want = desired(config([['b', 2]]))
  const r = await node.apply(want)
  t.equal(r.ok, true)
  t.equal(r.engine.version, null)
  await node.attachEngine(tables)
  const r2 = await node.apply(want)
  t.same(r2.engine.actions.map((a) => a.op), ['add'])
  t.same(tables.applied?.allowedPeers, [key(2)])
  const fresh = new FakeTables()
  await node.attachEngine(fresh)
  await node.apply(want)
  t.same(fresh.applied?.allowedPeers, [key(2)], 'the fresh engine got its tables')
  t.equal(fresh.applied?.version, 1)
})

t.test('an engine that cannot be read (stopping) fails the apply cleanly: a result, not a rejection; the kernel goes back', async (t) => {
  const { fake, node, tables } = setup()
  await node.attachEngine(tables)
  t.equal((await node.apply(desired(config([['b', 2]])))).ok, true)
  const kernelBefore = fake.dump()
  tables.readFails = new Error('engine stopping')
  tables.refuseNext = new Error('engine stopping')
  const r = await node.apply(desired(config([['b', 2], ['c', 3]], 'routes: [ { to: 10.99.0.0/16, via: c } ]')))
  t.equal(r.ok, false)
  t.match(r.engine.error, { message: 'engine stopping' })
  t.same(fake.dump(), kernelBefore)
})

t.test('a failed first set rolls back to the tables the engine ran before it (not only to a committed state)', async (t) => {
  const { node } = setup()
  const tables = new FakeTables()
  const before = desired(config([['b', 2]]))
  tables.applied = { ...before.engine, version: 5 } // an engine that already runs tables (adopted)
  await node.attachEngine(tables)
  tables.corruptNext = true
  const r = await node.apply(desired(config([['b', 2], ['c', 3]]), [helloB]))
  t.equal(r.ok, false)
  t.equal(r.engine.rolledBack, true)
  t.same(tables.applied?.allowedPeers, [key(2)], 'back to the adopted tables')
  t.same(tables.sets, [6, 7], 'the failed set, then the restore')
})

t.test('a kernel restore that fails once is tried again; one that keeps failing is reported, not hidden', async (t) => {
  for (const failures of [1, 99]) {
    const { fake, node, tables } = setup()
    await node.attachEngine(tables)
    t.equal((await node.apply(desired(config([['b', 2]])))).ok, true)
    const kernelBefore = fake.dump()
    tables.refuseNext = new Error('refused')
    let left = failures
    // The forward apply only adds (the route to 10.99.0.0/16); the restore deletes it, and fails `failures` times.
    fake.failWith = (method) => (method === 'delRoute' && left-- > 0 ? new Error('injected: netlink busy') : null)
    const r = await node.apply(desired(config([['b', 2], ['c', 3]], 'routes: [ { to: 10.99.0.0/16, via: c } ]')))
    t.ok(fake.calls.some((c) => c.startsWith('addRoute')), 'the forward apply added the route')
    t.equal(r.ok, false, `${failures} failure(s)`)
    if (failures === 1) {
      t.equal(r.engine.rolledBack, true, 'restored on the second try')
      t.same(fake.dump(), kernelBefore)
    } else {
      t.equal(r.engine.rolledBack, false, 'a kernel that cannot be restored is ROLLBACK INCOMPLETE')
    }
  }
})
