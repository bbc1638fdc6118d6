import t from 'tap'
import { renderAction, renderPlan, renderRoute, renderRule, summarizePlan, planToJson } from '../../src/state/render.js'
import { diff } from '../../src/state/diff.js'
import type { Route, Rule } from '../../src/state/types.js'

const r: Route = { family: 4, table: 5280, dst: '10.0.0.0/16', type: 'unicast', dev: 'qe0', gateway: null, metric: 0, protocol: 113, scope: 'link' }

t.test('routes render like `ip route`, with our protocol by name', async (t) => {
  t.equal(renderAction({ kind: 'route', op: 'add', route: r }), '+ route 10.0.0.0/16 dev qe0 table 5280 proto quicether')
  t.equal(renderRoute({ ...r, gateway: '10.0.0.1', metric: 7 }), '10.0.0.0/16 via 10.0.0.1 dev qe0 table 5280 proto quicether metric 7')
  t.equal(renderRoute({ ...r, type: 'blackhole', dev: null, protocol: 4 }), 'blackhole 10.0.0.0/16 table 5280 proto 4')
  t.equal(renderAction({ kind: 'route', op: 'del', route: r }), '- route 10.0.0.0/16 dev qe0 table 5280 proto quicether')
  t.equal(
    renderAction({ kind: 'route', op: 'replace', route: r, from: { ...r, dev: 'qe1', gateway: '10.0.0.9', scope: 'universe' } }),
    '~ route 10.0.0.0/16 dev qe0 table 5280 proto quicether (dev qe1 → qe0, via 10.0.0.9 → -, scope universe → link)',
  )
})

t.test('rules render like `ip rule`', async (t) => {
  const rule: Rule = { family: 6, priority: 5281, table: 5280, src: 'fd00::/8', dst: 'fd01::/16', fwmark: 0x51, fwmask: 0xff, iif: 'qe0', oif: null, invert: true, protocol: 113 }
  t.equal(renderRule(rule), 'ipv6 5281: not from fd00::/8 to fd01::/16 fwmark 0x51/0xff iif qe0 lookup 5280')
  t.equal(renderAction({ kind: 'rule', op: 'add', rule: { ...rule, src: null, dst: null, fwmark: null, fwmask: null, iif: null, invert: false } }), '+ rule ipv6 5281: from all lookup 5280')
})

t.test('links, addresses and sysctls', async (t) => {
  t.equal(renderAction({ kind: 'link', op: 'set', name: 'qe0', mtu: { from: 1400, to: 1380 }, up: null }), '~ link qe0 mtu 1400 → 1380')
  t.equal(renderAction({ kind: 'link', op: 'set', name: 'qe0', mtu: null, up: { from: false, to: true } }), '~ link qe0 down → up')
  t.equal(renderAction({ kind: 'address', op: 'add', address: { family: 6, dev: 'qe0', address: 'fd00::5', prefixLen: 48, noPrefixRoute: false } }), '+ address fd00::5/48 dev qe0')
  t.equal(renderAction({ kind: 'sysctl', op: 'set', key: 'net.ipv4.ip_forward', from: null, to: '1' }), '~ sysctl net.ipv4.ip_forward (unset) → 1')
})

t.test('plans render to text with a summary, and to JSON', async (t) => {
  const empty = { links: [], addresses: [], routes: [], rules: [], sysctls: {} }
  const plan = diff({ ...empty, routes: [r] }, { ...empty })
  t.equal(renderPlan(plan), '+ route 10.0.0.0/16 dev qe0 table 5280 proto quicether\nPlan: 1 to add, 0 to change, 0 to delete, all live.\n')
  t.equal(summarizePlan(plan), '+1 ~0 -0')
  const json = JSON.parse(JSON.stringify(planToJson(plan)))
  t.same(json.summary, { add: 1, change: 0, del: 0 })
  t.equal(json.live, true)
  t.equal(json.actions[0].text, '+ route 10.0.0.0/16 dev qe0 table 5280 proto quicether')
  t.equal(json.actions[0].route.dst, '10.0.0.0/16')
  t.match(renderPlan(diff(empty, empty)), /^No changes/)
})
