import t from 'tap'
import { validate, hasErrors } from '../../src/state/validate.js'
import type { ActualState, DesiredState, Route, Rule } from '../../src/state/types.js'

const route = (over: Partial<Route> = {}): Route => ({
  family: 4,
  table: 5280,
  dst: '10.80.0.0/16',
  type: 'unicast',
  dev: 'qe0',
  gateway: null,
  metric: 0,
  protocol: 113,
  scope: 'link',
  ...over,
})

const rule = (over: Partial<Rule> = {}): Rule => ({
  family: 4,
  priority: 5280,
  table: 5280,
  src: null,
  dst: null,
  fwmark: null,
  fwmask: null,
  iif: null,
  oif: null,
  invert: false,
  protocol: 113,
  ...over,
})

const desired = (over: Partial<DesiredState> = {}): DesiredState => ({
  links: [{ name: 'qe0', mtu: 1400, up: true }],
  addresses: [{ family: 4, dev: 'qe0', address: '10.80.0.5', prefixLen: 16, noPrefixRoute: true }],
  routes: [route()],
  rules: [rule()],
  sysctls: {},
  ...over,
})

const actual = (over: Partial<ActualState> = {}): ActualState => ({
  links: [{ name: 'qe0', mtu: 1500, up: false }],
  addresses: [],
  routes: [],
  rules: [],
  sysctls: {},
  foreignRoutes: [],
  ...over,
})

const codes = (d: DesiredState, a: ActualState): string[] => validate(d, a).map((i) => i.code)

t.test('a good desired state validates', async (t) => {
  t.same(validate(desired(), actual()), [])
})

t.test('the TUN must exist (the engine creates it)', async (t) => {
  t.same(codes(desired(), actual({ links: [] })), ['QE_LINK_MISSING'])
  t.ok(hasErrors(validate(desired(), actual({ links: [] }))))
})

t.test('objects without our marks are refused', async (t) => {
  t.ok(codes(desired({ routes: [route({ protocol: 4 })] }), actual()).includes('QE_NOT_OWNED'))
  t.ok(codes(desired({ rules: [rule({ priority: 100 })] }), actual()).includes('QE_NOT_OWNED'))
  t.ok(codes(desired({ links: [{ name: 'eth0', mtu: 1500, up: true }], addresses: [] }), actual({ links: [{ name: 'eth0', mtu: 1500, up: true }] })).includes('QE_NOT_OWNED'))
})

t.test('a route on an identity someone else holds is a conflict, not a silent replace', async (t) => {
  const user = route({ protocol: 4, scope: 'link' })
  t.same(codes(desired(), actual({ foreignRoutes: [user] })), ['QE_ROUTE_CONFLICT'])
  // Same prefix, other metric: a different identity, no conflict.
  t.same(codes(desired(), actual({ foreignRoutes: [route({ protocol: 4, metric: 5 })] })), [])
})

t.test('a default route under the catch-all rule would swallow the tunnel: refused', async (t) => {
  t.same(codes(desired({ routes: [route(), route({ dst: '0.0.0.0/0' })] }), actual()), ['QE_DEFAULT_ROUTE'])
  // In a table no catch-all rule looks up, it is fine.
  t.same(codes(desired({ routes: [route(), route({ dst: '0.0.0.0/0', table: 5281 })] }), actual()), [])
})

t.test('IPv6 on a link below 1280 bytes is refused', async (t) => {
  const d = desired({
    links: [{ name: 'qe0', mtu: 1200, up: true }],
    addresses: [{ family: 6, dev: 'qe0', address: 'fd00::5', prefixLen: 64, noPrefixRoute: true }],
  })
  t.same(codes(d, actual()), ['QE_MTU_TOO_SMALL'])
})

t.test('duplicates in the desired state are a bug and refused', async (t) => {
  t.ok(codes(desired({ routes: [route(), route({ dev: 'qe1' })] }), actual()).includes('QE_DUPLICATE'))
})
