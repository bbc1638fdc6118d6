/**
 * The reconciler against a real kernel, each test in a fresh `qet-<hex>`
 * namespace with a TUN `qe0`; the reconciler runs inside it in a child
 * (test/reconcile/ns-driver.ts), the test checks and meddles with `ip`.
 */
import t from 'tap'
import { createNetns, isRoot, startDriver, type Driver, type Netns } from '../system/netns.js'
import { desiredFromConfig, type KernelConfig } from '../../src/state/desired.js'
import type { ApplyResult } from '../../src/reconcile/types.js'
import type { DesiredState, Route } from '../../src/state/types.js'

const config = (over: Partial<KernelConfig> = {}): KernelConfig => ({
  node: { role: 'client' },
  tun: { name: 'qe0', mtu: 1400 },
  network: { name: 'n', overlay: { ipv4: '10.80.0.0/16', ipv6: 'fd00:80::/48' }, address: { ipv4: null, ipv6: null } },
  routes: [],
  subnets: [],
  ...over,
})

function desired(learned: string[], over: Partial<KernelConfig> = {}, addr4 = '10.80.0.5'): DesiredState {
  return desiredFromConfig(config(over), {
    overlayAddresses: { ipv4: addr4, ipv6: 'fd00:80::5' },
    learnedRoutes: learned.map((prefix) => ({ prefix, peer: 'p' })),
    tunMtu: 1400,
  })
}

const A = desired(['192.168.7.0/24', '192.168.8.0/24', 'fd00:99::/48'], { routes: [{ to: '172.20.0.0/16', via: 'b', metric: 100 }] })
// B changes a bit of everything: MTU, an address, routes in and out, forwarding on.
const B = desired(['192.168.8.0/24', '192.168.9.0/24', 'fd00:98::/48'], { tun: { name: 'qe0', mtu: 1380 }, node: { role: 'gateway' } }, '10.80.0.6')

async function apply(d: Driver, state: DesiredState): Promise<ApplyResult> {
  const r = await d.call<ApplyResult>('apply', { desired: state })
  if (!r.ok) throw new Error(`driver: ${r.error?.message}`)
  return r.result
}

interface IpRoute {
  dst: string
  protocol?: string
  dev?: string
}
interface IpRule {
  priority: number
  table?: string
}
interface IpAddr {
  ifname: string
  mtu: number
  addr_info: Array<{ local: string; prefixlen: number; scope: string; noprefixroute?: boolean }>
}

// `ip route show table all` lists both families.
const ownedRoutes = (ns: Netns): string[] =>
  ns
    .ipJson<IpRoute[]>('route', 'show', 'table', 'all')
    .filter((r) => r.protocol === '113')
    .map((r) => r.dst)
    .sort()
const ownedRules = (ns: Netns): number[] => [...ns.ipJson<IpRule[]>('rule'), ...ns.ipJson<IpRule[]>('-6', 'rule')].map((r) => r.priority).filter((p) => p >= 5280 && p <= 5299)
const globalAddrs = (ns: Netns): string[] =>
  ns
    .ipJson<IpAddr[]>('addr', 'show', 'dev', 'qe0')
    .flatMap((l) => l.addr_info)
    .filter((a) => a.scope === 'global')
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort()

const wantRoutes = (s: DesiredState): string[] => s.routes.map((r) => r.dst).sort()

if (!isRoot()) {
  t.plan(0, 'needs root')
} else {
  t.test('apply makes the kernel match; applying again has nothing to do', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    const r = await apply(d, A)
    t.equal(r.ok, true, r.error?.message ?? 'ok')
    t.equal(r.verify, 'ok')
    t.same(ownedRoutes(ns), wantRoutes(A))
    t.same(ownedRules(ns), [5280, 5280])
    t.same(globalAddrs(ns), ['10.80.0.5/16', 'fd00:80::5/48'])
    t.match(ns.ip('link', 'show', 'qe0'), /mtu 1400/)
    t.match(ns.ip('route', 'show', 'table', '5280'), /172\.20\.0\.0\/16 dev qe0 proto 113 scope link metric 100/)
    const again = await apply(d, A)
    t.equal(again.plan.actions.length, 0)
  })

  t.test('user routes in our table and a user rule survive applies and cleanup', async (t) => {
    const ns = createNetns(t)
    // Not through qe0: a link that loses its last IPv4 address loses every IPv4 route through it (kernel).
    ns.ip('route', 'add', 'blackhole', '10.200.0.0/24', 'table', '5280', 'proto', 'static')
    ns.ip('route', 'add', 'blackhole', '192.168.7.0/24', 'table', '5280', 'proto', 'static', 'metric', '50')
    ns.ip('-6', 'route', 'add', 'unreachable', 'fd00:200::/48', 'table', '5280', 'proto', 'static')
    ns.ip('rule', 'add', 'priority', '100', 'lookup', '5280')
    const d = await startDriver(t, ns)
    t.equal((await apply(d, A)).ok, true)
    t.equal((await apply(d, B)).ok, true)
    const c = (await d.call<ApplyResult>('cleanup')).result
    t.equal(c.ok, true)
    const left = ns.ip('route', 'show', 'table', '5280')
    t.match(left, /blackhole 10\.200\.0\.0\/24 proto static/)
    t.match(left, /blackhole 192\.168\.7\.0\/24 proto static metric 50/, 'same prefix as one of ours, another metric')
    t.match(ns.ip('-6', 'route', 'show', 'table', '5280'), /unreachable fd00:200::\/48 dev lo proto static/)
    t.match(ns.ip('rule'), /100:\s+from all lookup 5280/)
  })

  t.test('an apply that fails half-way leaves `ip route/rule/addr` exactly as before', async (t) => {
    const ns = createNetns(t)
    ns.ip('link', 'set', 'qe0', 'up')
    ns.ip('route', 'add', '10.200.0.0/24', 'dev', 'qe0', 'table', '5280', 'proto', 'static')
    const d = await startDriver(t, ns)
    await apply(d, A)
    const before = ns.snapshot()
    const plan = (await d.call<{ plan: { actions: unknown[] } }>('plan', { desired: B })).result.plan
    t.ok(plan.actions.length >= 10, `B changes ${plan.actions.length} things`)
    for (const failAt of [2, Math.ceil(plan.actions.length / 2), plan.actions.length]) {
      await d.call('init', { init: { failAt, verifyDelayMs: 5 } })
      const r = await apply(d, B)
      t.equal(r.ok, false)
      t.equal(r.failed?.index, failAt - 1, `action ${failAt} reported as the one that failed`)
      t.equal(r.failed?.error.code, 'QE_INJECTED_FAULT')
      t.equal(r.rolledBack, true)
      t.same(r.rollbackFailures, [])
      t.same(ns.snapshot(), before, `after a fault at action ${failAt} of ${plan.actions.length}`)
    }
  })

  t.test('a real kernel refusal half-way rolls back too', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await apply(d, A)
    const before = ns.snapshot()
    // A gateway that is not on any link: the kernel refuses the route (after the device routes went in).
    const bad: Route = { family: 4, table: 5280, dst: '10.123.0.0/16', type: 'unicast', dev: 'qe0', gateway: '203.0.113.1', metric: 0, protocol: 113, scope: 'universe' }
    const r = await apply(d, { ...B, routes: [...B.routes, bad] })
    t.equal(r.ok, false)
    t.equal(r.failed?.error.code, 'QE_NETLINK')
    t.match(r.failed?.action.text, /10\.123\.0\.0\/16 via 203\.0\.113\.1/)
    t.equal(r.rolledBack, true)
    t.same(ns.snapshot(), before)
  })

  t.test('drift: owned route, address, rule and MTU changed by hand come back; the user route stays', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await d.call('start')
    await apply(d, A)
    ns.ip('route', 'add', 'blackhole', '10.200.0.0/24', 'table', '5280', 'proto', 'static')
    const repairs: Array<[string, number]> = []
    const restored = async (what: string, check: () => boolean): Promise<boolean> => {
      const t0 = Date.now()
      for (;;) {
        if (check()) {
          repairs.push([what, Date.now() - t0])
          return true
        }
        // Generous bound: the machine is shared; the figure is printed below.
        if (Date.now() - t0 > 10_000) return false
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    ns.ip('route', 'del', '192.168.7.0/24', 'table', '5280')
    t.ok(await restored('route', () => ownedRoutes(ns).includes('192.168.7.0/24')), 'deleted owned route restored')
    ns.ip('-6', 'route', 'del', 'fd00:99::/48', 'table', '5280')
    t.ok(await restored('ipv6 route', () => ownedRoutes(ns).includes('fd00:99::/48')), 'deleted IPv6 route restored')
    ns.ip('addr', 'del', '10.80.0.5/16', 'dev', 'qe0')
    t.ok(await restored('address', () => globalAddrs(ns).includes('10.80.0.5/16')), 'address restored')
    ns.ip('rule', 'del', 'priority', '5280')
    t.ok(await restored('rule', () => ownedRules(ns).length === 2), 'rule restored')
    ns.ip('link', 'set', 'qe0', 'mtu', '1500')
    t.ok(await restored('mtu', () => /mtu 1400/.test(ns.ip('link', 'show', 'qe0'))), 'MTU restored')
    t.match(ns.ip('route', 'show', 'table', '5280'), /blackhole 10\.200\.0\.0\/24 proto static/, 'user route untouched')
    // Last: a link set down loses every IPv4 route through it, the user's too (kernel behaviour).
    ns.ip('link', 'set', 'qe0', 'down')
    t.ok(
      await restored('link up and its IPv4 routes', () => /[<,]UP[,>]/.test(ns.ip('link', 'show', 'qe0')) && ownedRoutes(ns).join() === wantRoutes(A).join()),
      'link set down (the kernel drops its IPv4 routes silently): up again, routes back',
    )
    ns.ip('route', 'add', '10.99.0.0/16', 'dev', 'qe0', 'table', '5280', 'proto', '113')
    t.ok(await restored('stray', () => !ownedRoutes(ns).includes('10.99.0.0/16')), 'a marked route nobody wants goes')
    t.comment(`repair latency (ms): ${repairs.map(([w, ms]) => `${w} ${ms}`).join(', ')}`)
  })

  t.test('cleanup leaves nothing of ours', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await apply(d, B)
    t.ok(ownedRoutes(ns).length > 0)
    const c = (await d.call<ApplyResult>('cleanup')).result
    t.equal(c.ok, true)
    t.same(ownedRoutes(ns), [])
    t.same(ownedRules(ns), [])
    t.same(globalAddrs(ns), [])
    t.equal(ns.ip('netns', 'exec', ns.name, 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '0', 'forwarding restored')
  })

  t.test('cleanup after the TUN is gone (the engine stops first): rules go, no error', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await apply(d, B)
    ns.ip('link', 'del', 'qe0')
    const c = (await d.call<ApplyResult>('cleanup')).result
    t.equal(c.ok, true, c.error?.message ?? 'ok')
    t.same(ownedRoutes(ns), [])
    t.same(ownedRules(ns), [])
  })

  t.test('kill -9 and restart: what is left is adopted, nothing duplicated, the stale goes', async (t) => {
    const ns = createNetns(t)
    const first = await startDriver(t, ns)
    await apply(first, A)
    await first.kill()
    const second = await startDriver(t, ns)
    const same = await apply(second, A)
    t.equal(same.ok, true)
    t.equal(same.plan.actions.length, 0, 'the same desired state: nothing to do')
    t.same(ownedRoutes(ns), wantRoutes(A), 'no duplicates')
    const fewer = desired(['192.168.8.0/24'])
    const r = await apply(second, fewer)
    t.equal(r.ok, true)
    t.same(ownedRoutes(ns), wantRoutes(fewer), 'leftovers that are no longer desired were removed')
  })

  t.test('a desired state that does not validate changes nothing', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await apply(d, A)
    const before = ns.snapshot()
    const r = await apply(d, desired(['0.0.0.0/0', '192.168.50.0/24']))
    t.equal(r.ok, false)
    t.equal(r.error?.code, 'QE_PLAN_INVALID')
    t.ok(r.issues.some((i) => i.code === 'QE_DEFAULT_ROUTE'))
    t.equal(r.applied, 0)
    t.same(ns.snapshot(), before)
  })
}
