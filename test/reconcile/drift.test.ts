import t from 'tap'
import { DriftFilter } from '../../src/reconcile/drift.js'
import type { KernelState, Route } from '../../src/state/types.js'

const r: Route = { family: 4, table: 5280, dst: '10.80.0.0/16', type: 'unicast', dev: 'qe0', gateway: null, metric: 0, protocol: 113, scope: 'link' }
const want: KernelState = {
  links: [{ name: 'qe0', mtu: 1400, up: true }],
  addresses: [{ family: 4, dev: 'qe0', address: '10.80.0.5', prefixLen: 16, noPrefixRoute: true }],
  routes: [r],
  rules: [{ family: 4, priority: 5280, table: 5280, src: null, dst: null, fwmark: null, fwmask: null, iif: null, oif: null, invert: false, protocol: 113 }],
  sysctls: {},
}

t.test('events that agree with the state are not drift', async (t) => {
  const f = new DriftFilter(want)
  t.notOk(f.isDrift({ type: 'route', op: 'new', route: r }))
  t.notOk(f.isDrift({ type: 'address', op: 'new', address: { family: 4, dev: 'qe0', address: '10.80.0.5', prefixLen: 16, noPrefixRoute: true } }))
  t.notOk(f.isDrift({ type: 'link', op: 'new', link: { name: 'qe0', index: 4, mtu: 1400, up: true } }))
  t.notOk(f.isDrift({ type: 'rule', op: 'new', rule: want.rules[0]! }))
})

t.test('events about objects that are not ours are ignored', async (t) => {
  const f = new DriftFilter(want)
  t.notOk(f.isDrift({ type: 'route', op: 'del', route: { ...r, protocol: 4 } }), 'user route in our table')
  t.notOk(f.isDrift({ type: 'rule', op: 'del', rule: { ...want.rules[0]!, priority: 100 } }))
  t.notOk(f.isDrift({ type: 'address', op: 'new', address: { family: 4, dev: 'eth0', address: '192.0.2.1', prefixLen: 24, noPrefixRoute: false } }))
  t.notOk(f.isDrift({ type: 'address', op: 'new', address: { family: 6, dev: 'qe0', address: 'fe80::1', prefixLen: 64, noPrefixRoute: false } }), 'link-local')
  t.notOk(f.isDrift({ type: 'link', op: 'del', link: { name: 'eth0', index: 2, mtu: 1500, up: true } }))
})

t.test('events that take the kernel away from the state are drift', async (t) => {
  const f = new DriftFilter(want)
  t.ok(f.isDrift({ type: 'route', op: 'del', route: r }), 'owned route deleted')
  t.ok(f.isDrift({ type: 'route', op: 'new', route: { ...r, dst: '10.99.0.0/16' } }), 'stray marked route')
  t.ok(f.isDrift({ type: 'route', op: 'new', route: { ...r, dev: 'qe1' } }), 'owned route changed')
  t.ok(f.isDrift({ type: 'link', op: 'new', link: { name: 'qe0', index: 4, mtu: 1500, up: true } }), 'mtu changed')
  t.ok(f.isDrift({ type: 'link', op: 'new', link: { name: 'qe0', index: 4, mtu: 1400, up: false } }), 'set down')
  t.ok(f.isDrift({ type: 'rule', op: 'del', rule: want.rules[0]! }))
  t.ok(f.isDrift({ type: 'address', op: 'del', address: want.addresses[0]! }))
  t.ok(f.isDrift({ type: 'overflow' }))
})

t.test('a link re-created under the same name (new index) is drift: its routes went silently', async (t) => {
  const f = new DriftFilter(want)
  t.notOk(f.isDrift({ type: 'link', op: 'new', link: { name: 'qe0', index: 4, mtu: 1400, up: true } }))
  t.ok(f.isDrift({ type: 'link', op: 'new', link: { name: 'qe0', index: 9, mtu: 1400, up: true } }))
  const next = new DriftFilter(want).inherit(f)
  t.notOk(next.isDrift({ type: 'link', op: 'new', link: { name: 'qe0', index: 9, mtu: 1400, up: true } }), 'the index carries over')
})
