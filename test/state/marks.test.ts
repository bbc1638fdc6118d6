import t from 'tap'
import { isOwnedLinkName, isOwnedRouteProtocol, isOwnedRulePriority, ROUTE_PROTOCOL, ROUTE_TABLE } from '../../src/state/marks.js'

t.test('the marks are the ones the team agreed on', async (t) => {
  t.equal(ROUTE_PROTOCOL, 113)
  t.equal(ROUTE_TABLE, 5280)
  t.ok(isOwnedRouteProtocol(113))
  t.notOk(isOwnedRouteProtocol(4))
  t.ok(isOwnedRulePriority(5280))
  t.ok(isOwnedRulePriority(5299))
  t.notOk(isOwnedRulePriority(5279))
  t.notOk(isOwnedRulePriority(5300))
})

t.test('interface marks: qe… is ours, the lab’s qel-… is not', async (t) => {
  t.ok(isOwnedLinkName('qe0'))
  t.ok(isOwnedLinkName('qe-office'))
  t.notOk(isOwnedLinkName('qel-1234-a'))
  t.notOk(isOwnedLinkName('eth0'))
})
