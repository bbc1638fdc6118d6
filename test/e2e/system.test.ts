/**
 * The netlink adapter against a real kernel, inside a fresh namespace per
 * test (`qet-<hex>` with a TUN `qe0`). The adapter runs in a child started
 * with `ip netns exec` (test/reconcile/ns-driver.ts); the test checks with `ip`.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createNetns, isRoot, startDriver } from '../system/netns.js'
import type { Address, KernelEvent, Link, Route, Rule } from '../../src/system/types.js'

if (!isRoot()) {
  t.plan(0, 'needs root')
} else {
  const v4: Route = { family: 4, table: 5280, dst: '10.80.0.0/16', type: 'unicast', dev: 'qe0', gateway: null, metric: 0, protocol: 113, scope: 'link' }
  const v6: Route = { family: 6, table: 5280, dst: 'fd00:80::/48', type: 'unicast', dev: 'qe0', gateway: null, metric: 1024, protocol: 113, scope: 'universe' }
  const rule4: Rule = { family: 4, priority: 5280, table: 5280, src: null, dst: null, fwmark: null, fwmask: null, iif: null, oif: null, invert: false, protocol: 113 }

  interface IpRoute {
    dst: string
    dev?: string
    protocol?: string
    metric?: number
    table?: string
    gateway?: string
  }

  t.test('routes: add, list and delete, IPv4 and IPv6, with our marks', async (t) => {
    const ns = createNetns(t)
    ns.ip('link', 'set', 'qe0', 'up')
    const d = await startDriver(t, ns)
    await d.adapter('addRoute', v4)
    await d.adapter('addRoute', v6)
    const gw: Route = { ...v4, dst: '10.90.0.0/16', gateway: '10.80.0.1', metric: 100, scope: 'universe' }
    ns.ip('addr', 'add', '10.80.0.5/16', 'dev', 'qe0')
    await d.adapter('addRoute', gw)

    const ip4 = ns.ipJson<IpRoute[]>('route', 'show', 'table', '5280')
    const ip6 = ns.ipJson<IpRoute[]>('-6', 'route', 'show', 'table', '5280')
    t.same(
      ip4.map((r) => [r.dst, r.dev, r.protocol, r.gateway ?? null, r.metric ?? 0]),
      [
        ['10.80.0.0/16', 'qe0', '113', null, 0],
        ['10.90.0.0/16', 'qe0', '113', '10.80.0.1', 100],
      ],
    )
    t.same(
      ip6.map((r) => [r.dst, r.dev, r.protocol, r.metric]),
      [['fd00:80::/48', 'qe0', '113', 1024]],
    )
    const listed = await d.adapter<Route[]>('listRoutes', { protocol: 113 })
    t.same(
      listed.sort((a, b) => a.dst.localeCompare(b.dst)),
      [v4, gw, v6],
      'read back exactly as written',
    )
    await d.adapter('delRoute', gw)
    await d.adapter('delRoute', v4)
    await d.adapter('delRoute', v6)
    t.same(ns.ipJson('route', 'show', 'table', '5280'), [])
    t.same(ns.ipJson('-6', 'route', 'show', 'table', '5280'), [])
  })

  t.test('a user route on the same identity in our table: our add does not clobber it, our delete does not remove it', async (t) => {
    const ns = createNetns(t)
    ns.ip('link', 'set', 'qe0', 'up')
    ns.ip('route', 'add', '10.80.0.0/16', 'dev', 'qe0', 'table', '5280', 'proto', 'static')
    const d = await startDriver(t, ns)
    const add = await d.adapter('addRoute', v4).catch((e: { code?: string; message?: string; retryable?: boolean }) => e)
    t.match(add, { code: 'QE_NETLINK', message: /EEXIST/, retryable: false })
    const del = await d.adapter('delRoute', v4).catch((e: { code?: string; message?: string }) => e)
    t.match(del, { code: 'QE_NETLINK', message: /ESRCH/ }, 'a delete that names our protocol skips the user route')
    const left = ns.ipJson<IpRoute[]>('route', 'show', 'table', '5280')
    t.same(
      left.map((r) => [r.dst, r.protocol]),
      [['10.80.0.0/16', 'static']],
    )
    t.same(await d.adapter('listRoutes', { protocol: 113 }), [])
  })

  t.test('addresses: noprefixroute leaves no kernel route in main', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    const a4: Address = { family: 4, dev: 'qe0', address: '10.80.0.5', prefixLen: 16, noPrefixRoute: true }
    const a6: Address = { family: 6, dev: 'qe0', address: 'fd00:80::5', prefixLen: 48, noPrefixRoute: true }
    await d.adapter('setLink', 'qe0', { up: true })
    await d.adapter('addAddress', a4)
    await d.adapter('addAddress', a6)
    const listed = await d.adapter<Address[]>('listAddresses', 'qe0')
    t.same(
      listed.filter((a) => !a.address.startsWith('fe80')),
      [a4, a6],
    )
    t.notOk(ns.ip('route', 'show', 'table', 'main').includes('10.80.0.0/16'), 'no prefix route in main')
    t.notOk(ns.ip('-6', 'route', 'show', 'table', 'main').includes('fd00:80::/48'))
    const dup = await d.adapter('addAddress', a4).catch((e: { message?: string }) => e)
    t.match(dup, { message: /EEXIST/ })
    await d.adapter('delAddress', a4)
    await d.adapter('delAddress', a6)
    t.notOk(ns.ip('addr', 'show', 'dev', 'qe0').includes('10.80.0.5'))
  })

  t.test('rules in our priority range: add, list, delete; the kernel defaults are not listed or touched', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    const rule6: Rule = { ...rule4, family: 6, priority: 5281, src: 'fd00:80::/48', fwmark: 0x51, fwmask: 0xff }
    await d.adapter('addRule', rule4)
    await d.adapter('addRule', rule6)
    t.same(await d.adapter('listRules', { priorityMin: 5280, priorityMax: 5299 }), [rule4, rule6])
    t.match(ns.ip('rule'), /5280:\s+from all lookup 5280 proto 113/)
    await d.adapter('delRule', rule4)
    await d.adapter('delRule', rule6)
    t.same(await d.adapter('listRules', { priorityMin: 5280, priorityMax: 5299 }), [])
    t.match(ns.ip('rule'), /32766:\s+from all lookup main/)
    t.match(ns.ip('-6', 'rule'), /32766:\s+from all lookup main/)
  })

  t.test('links: set MTU and state; an unknown name is a LinkNotFoundError', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await d.adapter('setLink', 'qe0', { mtu: 1380, up: true })
    const l = await d.adapter<Link>('getLink', 'qe0')
    t.match(l, { name: 'qe0', mtu: 1380, up: true })
    t.match(ns.ip('link', 'show', 'qe0'), /mtu 1380/)
    await d.adapter('setLink', 'qe0', { up: false })
    t.equal((await d.adapter<Link>('getLink', 'qe0')).up, false)
    t.equal(await d.adapter('getLink', 'qe9'), null)
    const err = await d.adapter('setLink', 'qe9', { up: true }).catch((e: { code?: string }) => e)
    t.match(err, { code: 'QE_LINK_NOT_FOUND' })
  })

  t.test('sysctls are per namespace: writing inside leaves the host alone', async (t) => {
    const host = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    const inside = await d.adapter<string>('readSysctl', 'net.ipv4.ip_forward')
    const flipped = inside === '1' ? '0' : '1'
    await d.adapter('writeSysctl', 'net.ipv4.ip_forward', flipped)
    t.equal(await d.adapter('readSysctl', 'net.ipv4.ip_forward'), flipped)
    t.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), host, 'host value unchanged')
  })

  t.test('events: route, address, link and rule changes are announced', async (t) => {
    const ns = createNetns(t)
    const d = await startDriver(t, ns)
    await d.call('watch')
    ns.ip('link', 'set', 'qe0', 'up', 'mtu', '1400')
    ns.ip('route', 'add', '10.80.0.0/16', 'dev', 'qe0', 'table', '5280', 'proto', '113')
    ns.ip('addr', 'add', '10.80.0.5/16', 'dev', 'qe0', 'noprefixroute')
    ns.ip('rule', 'add', 'priority', '5280', 'lookup', '5280')
    ns.ip('route', 'del', '10.80.0.0/16', 'dev', 'qe0', 'table', '5280')
    const seen: KernelEvent[] = []
    // Events arrive asynchronously: collect until the last change shows up (or 5 s pass).
    for (let i = 0; i < 250 && !seen.some((e) => e.type === 'route' && e.op === 'del'); i++) {
      seen.push(...(await d.call<KernelEvent[]>('events')).result)
      await new Promise((r) => setTimeout(r, 20))
    }
    const has = (pred: (e: KernelEvent) => boolean): boolean => seen.some(pred)
    t.ok(has((e) => e.type === 'link' && e.link.name === 'qe0' && e.link.mtu === 1400), 'link')
    t.ok(has((e) => e.type === 'route' && e.op === 'new' && e.route.dst === '10.80.0.0/16' && e.route.protocol === 113 && e.route.table === 5280), 'route new')
    t.ok(has((e) => e.type === 'route' && e.op === 'del' && e.route.dst === '10.80.0.0/16'), 'route del')
    t.ok(has((e) => e.type === 'address' && e.address.address === '10.80.0.5' && e.address.noPrefixRoute), 'address')
    t.ok(has((e) => e.type === 'rule' && e.rule.priority === 5280), 'rule')
  })

  t.test('10,000 routes go in pipelined and come back in one dump', async (t) => {
    const ns = createNetns(t)
    ns.ip('link', 'set', 'qe0', 'up')
    const d = await startDriver(t, ns)
    const r = await d.call<{ ok: boolean; applied: number }>('apply', {
      desired: {
        links: [{ name: 'qe0', mtu: 1500, up: true }],
        addresses: [],
        routes: Array.from({ length: 10_000 }, (_, i): Route => ({ ...v4, dst: `10.${100 + (i >> 8)}.${i & 255}.0/24` })),
        rules: [],
        sysctls: {},
      },
    })
    t.equal(r.result.ok, true)
    t.equal(r.result.applied, 10_000)
    const back = await d.adapter<Route[]>('listRoutes', { protocol: 113, table: 5280 })
    t.equal(back.length, 10_000)
    t.equal(ns.ip('route', 'show', 'table', '5280').trim().split('\n').length, 10_000, '`ip` agrees')
  })
}
