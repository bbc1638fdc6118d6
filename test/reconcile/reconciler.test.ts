import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Reconciler } from '../../src/reconcile/reconciler.js'
import type { ReconcilerInit } from '../../src/reconcile/types.js'
import { desiredFromConfig, type KernelConfig } from '../../src/state/desired.js'
import type { DesiredState, Route } from '../../src/state/types.js'
import { NetlinkError } from '../../src/system/errors.js'
import { silentLogger } from '../../src/log.js'
import { FakeAdapter } from './fake-adapter.js'

const config = (over: Partial<KernelConfig> = {}): KernelConfig => ({
  node: { role: 'client' },
  tun: { name: 'qe0', mtu: 1400 },
  network: { name: 'n', overlay: { ipv4: '10.80.0.0/16', ipv6: 'fd00:80::/48' }, address: { ipv4: null, ipv6: null } },
  routes: [],
  subnets: [],
  ...over,
})

function desired(learned: string[] = [], over: Partial<KernelConfig> = {}): DesiredState {
  return desiredFromConfig(config(over), {
    overlayAddresses: { ipv4: '10.80.0.5', ipv6: 'fd00:80::5' },
    learnedRoutes: learned.map((prefix) => ({ prefix, peer: 'p' })),
    tunMtu: 1400,
  })
}

function setup(init: ReconcilerInit = {}): { fake: FakeAdapter; rec: Reconciler } {
  const fake = new FakeAdapter()
  fake.addLink('qe0')
  fake.addLink('eth0', 1500, true)
  fake.sysctls.set('net.ipv4.ip_forward', '0')
  fake.sysctls.set('net.ipv6.conf.all.forwarding', '0')
  fake.sysctls.set('net.ipv4.conf.qe0.promote_secondaries', '0')
  const rec = new Reconciler({ debounceMs: 10, periodicMs: 0, verifyDelayMs: 1, ...init }, { system: fake, log: silentLogger })
  return { fake, rec }
}

const userRoute: Route = { family: 4, table: 5280, dst: '10.200.0.0/24', type: 'unicast', dev: 'eth0', gateway: null, metric: 0, protocol: 4, scope: 'link' }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function until(check: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) return false
    await sleep(5)
  }
  return true
}

t.test('apply converges, verifies and commits; a second apply has nothing to do', async (t) => {
  const { fake, rec } = setup()
  const want = desired(['192.168.7.0/24'])
  const r = await rec.apply(want)
  t.equal(r.ok, true)
  t.equal(r.verify, 'ok')
  t.equal(r.failed, null)
  t.equal(r.applied, r.plan.actions.length)
  t.equal(fake.links.get('qe0')?.mtu, 1400)
  t.equal(fake.links.get('qe0')?.up, true)
  t.equal(fake.routes.size, 3)
  t.equal(fake.rules.size, 2)
  t.equal(fake.addresses.size, 2)
  t.same(rec.desired, want)
  const again = await rec.apply(want)
  t.equal(again.ok, true)
  t.equal(again.plan.actions.length, 0)
  t.equal(again.verify, 'skipped')
})

t.test('an injected fault half-way rolls back to exactly the state before, and says which action failed', async (t) => {
  const { fake, rec } = setup()
  t.equal((await rec.apply(desired(['192.168.7.0/24', '192.168.8.0/24']))).ok, true)
  fake.routes.set('user', userRoute)
  const before = fake.dump()
  // B: MTU change, one route gone, two new, plus a configured route.
  const b = desired(['192.168.8.0/24', '192.168.9.0/24', '192.168.10.0/24'], { tun: { name: 'qe0', mtu: 1380 }, routes: [{ to: '172.20.0.0/16', via: 'x', metric: 100 }] })
  const failing = new Reconciler({ failAt: 4, verifyDelayMs: 1, periodicMs: 0 }, { system: fake, log: silentLogger })
  await failing.apply(desired(['192.168.7.0/24', '192.168.8.0/24']))
  const r = await failing.apply(b)
  t.equal(r.ok, false)
  t.equal(r.rolledBack, true)
  t.same(r.rollbackFailures, [])
  t.equal(r.failed?.index, 3, 'the 4th action (index 3) failed')
  t.equal(r.failed?.error.code, 'QE_INJECTED_FAULT')
  t.equal(r.failed?.action.text, r.plan.actions[3]?.text)
  t.equal(r.applied, 3)
  t.same(fake.dump(), before, 'links, routes, addresses, rules, sysctls exactly as before')
  t.same(failing.desired, desired(['192.168.7.0/24', '192.168.8.0/24']), 'the previous desired state stays committed')
})

t.test('a kernel error mid-apply rolls back too; the error kind is reported', async (t) => {
  const { fake, rec } = setup()
  await rec.apply(desired())
  const before = fake.dump()
  let adds = 0
  fake.failWith = (m) => (m === 'addRoute' && ++adds === 2 ? new NetlinkError('add route', 'EINVAL') : null)
  const r = await rec.apply(desired(['192.168.1.0/24', '192.168.2.0/24', '192.168.3.0/24']))
  t.equal(r.ok, false)
  t.equal(r.error?.code, 'QE_NETLINK')
  t.equal(r.error?.retryable, false)
  t.equal(r.failed?.action.kind, 'route')
  t.equal(r.rolledBack, true)
  fake.failWith = null
  t.same(fake.dump(), before)
})

t.test('retryable errors are retried with backoff; others are not', async (t) => {
  const { fake, rec } = setup({ actionAttempts: 3 })
  let busy = 0
  fake.failWith = (m) => (m === 'addRule' && busy++ < 2 ? new NetlinkError('add rule', 'EBUSY') : null)
  const r = await rec.apply(desired())
  t.equal(r.ok, true, 'EBUSY twice, then success')
  t.equal(fake.calls.filter((c) => c.startsWith('addRule')).length, 4, 'two rules, one of them tried three times')

  const second = setup({ actionAttempts: 3 })
  second.fake.failWith = (m) => (m === 'addRule' ? new NetlinkError('add rule', 'EINVAL') : null)
  const r2 = await second.rec.apply(desired())
  t.equal(r2.ok, false)
  // Both rules of the phase were already in flight; neither is tried again.
  t.equal(second.fake.calls.filter((c) => c.startsWith('addRule')).length, 2, 'EINVAL: each rule tried once')
})

t.test('only marked objects are touched: the user route, rules and addresses stay', async (t) => {
  const { fake, rec } = setup()
  fake.routes.set('user', userRoute)
  fake.rules.set('user-rule', { family: 4, priority: 100, table: 5280, src: null, dst: null, fwmark: null, fwmask: null, iif: null, oif: null, invert: false, protocol: 4 })
  fake.addresses.set('eth0', { family: 4, dev: 'eth0', address: '192.0.2.1', prefixLen: 24, noPrefixRoute: false })
  await rec.apply(desired(['192.168.7.0/24']))
  await rec.apply(desired([]))
  const c = await rec.cleanup()
  t.equal(c.ok, true)
  t.same(fake.routes.get('user'), userRoute)
  t.ok(fake.rules.has('user-rule'))
  t.ok(fake.addresses.has('eth0'))
  t.equal([...fake.routes.values()].filter((r) => r.protocol === 113).length, 0)
  t.equal(fake.addresses.size, 1)
  t.equal(fake.rules.size, 1)
})

t.test('a route the user holds on an identity we want: refused before anything changes', async (t) => {
  const { fake, rec } = setup()
  fake.routes.set('user', { ...userRoute, dst: '192.168.7.0/24', metric: 200 })
  const r = await rec.apply(desired(['192.168.7.0/24']))
  t.equal(r.ok, false)
  t.equal(r.error?.code, 'QE_PLAN_INVALID')
  t.ok(r.issues.some((i) => i.code === 'QE_ROUTE_CONFLICT'))
  t.same(fake.calls, [], 'nothing was written')
})

t.test('start after a crash: what is still desired is adopted, the rest removed, nothing duplicated', async (t) => {
  const { fake } = setup()
  const first = new Reconciler({ verifyDelayMs: 1, periodicMs: 0 }, { system: fake, log: silentLogger })
  await first.apply(desired(['192.168.7.0/24', '192.168.8.0/24']))
  // The process dies; a new one starts with a config that dropped one route.
  const second = new Reconciler({ verifyDelayMs: 1, periodicMs: 0 }, { system: fake, log: silentLogger })
  fake.calls.length = 0
  const r = await second.apply(desired(['192.168.8.0/24']))
  t.equal(r.ok, true)
  t.same(
    r.plan.actions.map((a) => a.text),
    ['- route 192.168.7.0/24 dev qe0 table 5280 proto quicether metric 200'],
  )
  t.same(fake.calls, ['delRoute 192.168.7.0/24'])
})

t.test('drift: a deleted owned route comes back on its event; our own events cause no repair run', async (t) => {
  const { fake, rec } = setup({ debounceMs: 5 })
  await rec.start()
  t.teardown(() => rec.stop())
  await rec.apply(desired(['192.168.7.0/24']))
  await sleep(30)
  t.equal(rec.lastResult?.trigger, 'desired', 'the apply raised events, none of them counted as drift')
  const gone = [...fake.routes.entries()].find(([, r]) => r.dst === '192.168.7.0/24')
  t.ok(gone)
  if (!gone) return
  fake.routes.delete(gone[0])
  fake.emit({ type: 'route', op: 'del', route: gone[1] })
  t.ok(await until(() => fake.routes.has(gone[0])), 'restored')
  t.equal(rec.lastResult?.trigger, 'drift')
  t.equal(rec.lastResult?.ok, true)
  // A route someone adds with our protocol is not desired: it goes.
  const stray: Route = { ...gone[1], dst: '10.99.0.0/16' }
  await fake.replaceRoute(stray)
  t.ok(await until(() => ![...fake.routes.values()].some((r) => r.dst === '10.99.0.0/16')), 'stray marked route removed')
  // An MTU someone changed is set back.
  await fake.setLink('qe0', { mtu: 1500 })
  t.ok(await until(() => fake.links.get('qe0')?.mtu === 1400), 'mtu restored')
})

t.test('drift without events: the periodic check repairs it', async (t) => {
  const { fake, rec } = setup({ periodicMs: 20 })
  await rec.start()
  t.teardown(() => rec.stop())
  await rec.apply(desired(['192.168.7.0/24']))
  const k = [...fake.routes.entries()].find(([, r]) => r.dst === '192.168.7.0/24')?.[0] ?? ''
  fake.routes.delete(k) // silently, as the kernel does for IPv4 routes when a link goes down
  t.ok(await until(() => fake.routes.has(k)), 'restored by the periodic check')
  t.equal(rec.lastResult?.trigger, 'periodic')
})

t.test('events during a large apply are muted and resumed', async (t) => {
  const { fake, rec } = setup()
  await rec.start()
  t.teardown(() => rec.stop())
  let peak = 0
  const orig = fake.addRoute.bind(fake)
  fake.addRoute = async (r) => {
    peak = Math.max(peak, fake.subscribers)
    return orig(r)
  }
  const many = Array.from({ length: 100 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`)
  t.equal((await rec.apply(desired(many))).ok, true)
  t.equal(peak, 0, 'no subscriber while the plan ran')
  t.equal(fake.subscribers, 1, 'subscribed again afterwards')
})

t.test('a write the kernel does not keep fails verification and is rolled back', async (t) => {
  const { fake, rec } = setup({ verifyAttempts: 2 })
  await rec.apply(desired())
  const before = fake.dump()
  fake.setLink = async (name) => {
    fake.calls.push(`setLink ${name}`) // acked, but nothing changes
  }
  const r = await rec.apply(desired([], { tun: { name: 'qe0', mtu: 1300 } }))
  t.equal(r.ok, false)
  t.equal(r.verify, 'mismatch')
  t.equal(r.error?.code, 'QE_VERIFY_MISMATCH')
  t.same(r.verifyDiff, ['~ link qe0 mtu 1400 → 1300'])
  t.same(fake.dump(), before)
})

t.test('sysctls: forwarding on for a gateway, back to the original when no longer wanted and on cleanup', async (t) => {
  const { fake, rec } = setup()
  await rec.apply(desired([], { node: { role: 'gateway' } }))
  t.equal(fake.sysctls.get('net.ipv4.ip_forward'), '1')
  await rec.apply(desired([]))
  t.equal(fake.sysctls.get('net.ipv4.ip_forward'), '0', 'restored when the role changed')
  await rec.apply(desired([], { node: { role: 'gateway' } }))
  await rec.cleanup()
  t.equal(fake.sysctls.get('net.ipv4.ip_forward'), '0', 'restored by cleanup')
  t.equal(fake.sysctls.get('net.ipv6.conf.all.forwarding'), '0')
  t.equal(rec.desired, null)
})

t.test('a missing TUN is a validation error; nothing is written', async (t) => {
  const { fake, rec } = setup()
  fake.links.delete('qe0')
  const r = await rec.apply(desired())
  t.equal(r.ok, false)
  t.ok(r.issues.some((i) => i.code === 'QE_LINK_MISSING'))
  t.same(fake.calls, [])
})

t.test('each apply logs one line with the plan summary and the result', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l))
      cb()
    },
  })
  const fake = new FakeAdapter()
  fake.addLink('qe0')
  fake.sysctls.set('net.ipv4.conf.qe0.promote_secondaries', '0')
  const rec = new Reconciler({ verifyDelayMs: 1, periodicMs: 0 }, { system: fake, log: pino({ level: 'info' }, sink) })
  await rec.apply(desired(['192.168.7.0/24']))
  t.equal(lines.length, 1)
  t.equal(lines[0]?.plan, '+7 ~2 -0')
  t.equal(lines[0]?.trigger, 'desired')
  t.match(String(lines[0]?.msg), /ok$/)
  const failing = new Reconciler({ failAt: 1, verifyDelayMs: 1, periodicMs: 0 }, { system: fake, log: pino({ level: 'info' }, sink) })
  await failing.apply(desired(['192.168.9.0/24']))
  t.equal(lines.length, 2)
  t.equal(lines[1]?.code, 'QE_INJECTED_FAULT')
  t.match(String(lines[1]?.msg), /rolled back/)
})

t.test('applies are serialized', async (t) => {
  const { fake, rec } = setup()
  const results = await Promise.all([rec.apply(desired(['192.168.1.0/24'])), rec.apply(desired(['192.168.2.0/24']))])
  t.ok(results.every((r) => r.ok))
  t.same(
    [...fake.routes.values()].filter((r) => r.dst.startsWith('192.168.')).map((r) => r.dst),
    ['192.168.2.0/24'],
  )
})

t.test("another qe link (a second daemon's TUN) and lab links are not ours: their addresses stay", async (t) => {
  const { fake, rec } = setup()
  fake.addLink('qe1', 1400, true)
  fake.addLink('qel-x-a', 1500, true)
  fake.addresses.set('qe1', { family: 4, dev: 'qe1', address: '10.81.0.5', prefixLen: 16, noPrefixRoute: true })
  fake.addresses.set('lab', { family: 4, dev: 'qel-x-a', address: '10.82.0.1', prefixLen: 24, noPrefixRoute: false })
  t.equal((await rec.apply(desired())).ok, true)
  t.equal((await rec.cleanup()).ok, true)
  t.ok(fake.addresses.has('qe1'))
  t.ok(fake.addresses.has('lab'))
  t.equal(fake.addresses.size, 2, 'the addresses on qe0 went')
})

t.test('cleanup after the engine removed the TUN: rules go, nothing fails on the vanished link', async (t) => {
  const { fake, rec } = setup()
  t.equal((await rec.apply(desired(['192.168.7.0/24']))).ok, true)
  // The engine stops first: its TUN goes, and the kernel takes the link's routes and addresses with it.
  fake.links.delete('qe0')
  fake.sysctls.delete('net.ipv4.conf.qe0.promote_secondaries')
  for (const [k, r] of fake.routes) if (r.dev === 'qe0') fake.routes.delete(k)
  fake.addresses.clear()
  const c = await rec.cleanup()
  t.equal(c.ok, true, c.error?.message ?? 'ok')
  t.equal(fake.rules.size, 0)
})
