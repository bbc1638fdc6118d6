import t from 'tap'
import netlink from 'netlink'
import { formatAddress, formatRoute, formatRule, parseAddress, parseRoute, parseRouteBody, parseRule, parseLink } from '../../src/system/codec.js'
import { encodeRouteBody } from '../../src/system/wire.js'
import { InvalidRecordError } from '../../src/system/errors.js'
import { InvalidAddressError } from '../../src/net/index.js'
import type { Address, Route, Rule } from '../../src/system/types.js'

const names = new Map([
  ['qe0', 7],
  ['qe1', 8],
])
const indexOf = (n: string): number => {
  const i = names.get(n)
  if (i === undefined) throw new Error(`no ${n}`)
  return i
}
const nameOf = (i: number): string => [...names].find(([, v]) => v === i)?.[0] ?? `#${i}`

const routes: Route[] = [
  { family: 4, table: 5280, dst: '10.80.0.0/16', type: 'unicast', dev: 'qe0', gateway: null, metric: 0, protocol: 113, scope: 'link' },
  { family: 4, table: 5280, dst: '10.90.0.0/16', type: 'unicast', dev: 'qe1', gateway: '10.80.0.1', metric: 100, protocol: 113, scope: 'universe' },
  { family: 4, table: 254, dst: '0.0.0.0/0', type: 'unicast', dev: 'qe0', gateway: null, metric: 5, protocol: 113, scope: 'link' },
  { family: 4, table: 5280, dst: '10.66.0.0/16', type: 'blackhole', dev: null, gateway: null, metric: 0, protocol: 113, scope: 'universe' },
  { family: 6, table: 5280, dst: 'fd00:80::/48', type: 'unicast', dev: 'qe0', gateway: null, metric: 1024, protocol: 113, scope: 'universe' },
  { family: 6, table: 70000, dst: '::/0', type: 'unicast', dev: 'qe0', gateway: 'fd00:80::1', metric: 0xfffffffe, protocol: 113, scope: 'universe' },
]

t.test('hand-framed route bodies parse back (with the netlink package) into the same record', async (t) => {
  for (const r of routes) {
    const body = encodeRouteBody(formatRoute(r, indexOf))
    t.equal(body.length % 4, 0, 'attributes are 4-byte aligned')
    const back = parseRoute(netlink.rt.parseRouteMessage(body), nameOf)
    t.same(back, r, r.dst)
  }
})

t.test('route bodies reject records that do not make sense', async (t) => {
  const r = routes[0] as Route
  t.throws(() => formatRoute({ ...r, dst: 'fd00::/48' }, indexOf), InvalidRecordError, 'family mismatch')
  t.throws(() => formatRoute({ ...r, gateway: 'fd00::1' }, indexOf), InvalidRecordError, 'gateway family')
  t.throws(() => formatRoute({ ...r, metric: -1 }, indexOf), InvalidRecordError)
  t.throws(() => formatRoute({ ...r, protocol: 300 }, indexOf), InvalidRecordError)
  t.throws(() => formatRoute({ ...r, dst: 'not-a-prefix' }, indexOf), InvalidAddressError, 'a malformed address fails in the net vocabulary')
})

t.test('addresses and rules round-trip through the package formatters and parsers', async (t) => {
  const addrs: Address[] = [
    { family: 4, dev: 'qe0', address: '10.80.0.5', prefixLen: 16, noPrefixRoute: true },
    { family: 6, dev: 'qe1', address: 'fd00:80::5', prefixLen: 48, noPrefixRoute: false },
  ]
  for (const a of addrs) {
    const { data, attrs } = formatAddress(a, indexOf)
    const out = new netlink.AttrStream()
    netlink.rt.formatAddressMessage({ kind: 'address', data, attrs }, out)
    t.same(parseAddress(netlink.rt.parseAddressMessage(Buffer.concat(out.bufs)), nameOf), a)
  }
  const rules: Rule[] = [
    { family: 4, priority: 5280, table: 5280, src: null, dst: null, fwmark: null, fwmask: null, iif: null, oif: null, invert: false, protocol: 113 },
    { family: 6, priority: 5299, table: 70000, src: 'fd00::/8', dst: 'fd01::/16', fwmark: 0x51, fwmask: 0xff, iif: 'qe0', oif: 'qe1', invert: true, protocol: 113 },
  ]
  for (const r of rules) {
    const { data, attrs } = formatRule(r)
    const out = new netlink.AttrStream()
    netlink.rt.formatRuleMessage({ kind: 'rule', data, attrs }, out)
    t.same(parseRule(netlink.rt.parseRuleMessage(Buffer.concat(out.bufs))), r)
  }
})

t.test('records the reconciler never owns parse to null', async (t) => {
  const local = encodeRouteBody({ ...formatRoute(routes[0] as Route, indexOf), type: netlink.rt.RouteType.LOCAL })
  t.equal(parseRoute(netlink.rt.parseRouteMessage(local), nameOf), null)
  const link = parseLink({ kind: 'link', data: { index: 3, flags: { up: true } }, attrs: { ifname: 'qe0', mtu: 1400 } })
  t.same(link, { name: 'qe0', index: 3, mtu: 1400, up: true })
  t.equal(parseLink({ kind: 'link', data: {}, attrs: {} }), null)
})

t.test('an unknown interface index is named #index', async (t) => {
  const r = { ...(routes[0] as Route) }
  const msg = netlink.rt.parseRouteMessage(encodeRouteBody(formatRoute(r, () => 99)))
  t.equal(parseRoute(msg, nameOf)?.dev, '#99')
})

t.test('the fast route decoder agrees with the generic parser, also on bodies it did not frame', async (t) => {
  for (const r of routes) {
    const own = encodeRouteBody(formatRoute(r, indexOf))
    t.same(parseRouteBody(own, nameOf), parseRoute(netlink.rt.parseRouteMessage(own), nameOf), `own framing ${r.dst}`)
    // The kernel adds attributes we do not read (cache info, preference, …); the package frames them here.
    const d = formatRoute(r, indexOf)
    const out = new netlink.AttrStream()
    netlink.rt.formatRouteMessage(
      {
        kind: 'route',
        data: { family: d.af, dstLen: d.dstLen, table: d.table < 256 ? d.table : 0, protocol: d.protocol, scope: d.scope, type: d.type },
        attrs: { table: d.table, priority: d.metric, pref: Buffer.from([0]), cacheInfo: { clntref: 1, expires: 0 }, ...(d.dst ? { dst: Buffer.from(d.dst) } : {}), ...(d.oif !== null ? { oif: d.oif } : {}), ...(d.gateway ? { gateway: Buffer.from(d.gateway) } : {}) },
      },
      out,
    )
    const foreign = Buffer.concat(out.bufs)
    t.same(parseRouteBody(foreign, nameOf), r, `package framing ${r.dst}`)
    t.same(parseRouteBody(foreign, nameOf), parseRoute(netlink.rt.parseRouteMessage(foreign), nameOf))
  }
  t.equal(parseRouteBody(Buffer.alloc(5), nameOf), null, 'a truncated body is not a route')
})
