/**
 * A pure model of the kernel slice: `simulate(state, plan)` applies a plan
 * the way the kernel would (by identity) and returns the new state. Tests
 * use it to check that a plan converges (`diff(desired, simulate(actual,
 * diff(desired, actual)))` is empty); a dry run can show the state after.
 */
import type { KernelState, LinkState, Plan } from './types.js'
import { addressKey, byKey, routeKey, ruleKey } from './keys.js'
import { normalizeState } from './normalize.js'

/**
 * Each action replaces (or, deleting, removes) the item of its identity. Linear in the state and
 * the plan: by filtering the whole list per action, 10,000 routes took 11 s.
 */
export function simulate(state: KernelState, plan: Plan): KernelState {
  const s = normalizeState(state)
  const addresses = byKey(s.addresses, addressKey)
  const routes = byKey(s.routes, routeKey)
  const rules = byKey(s.rules, ruleKey)
  let links: readonly LinkState[] = s.links
  let sysctls = s.sysctls
  const put = <T>(m: Map<string, T>, k: string, x: T | null): void => void (x === null ? m.delete(k) : m.set(k, x))
  for (const a of plan.actions) {
    switch (a.kind) {
      case 'sysctl':
        sysctls = { ...sysctls, [a.key]: a.to }
        break
      case 'link':
        links = links.map((l): LinkState => (l.name !== a.name ? l : { name: l.name, mtu: a.mtu?.to ?? l.mtu, up: a.up?.to ?? l.up }))
        break
      case 'address':
        put(addresses, addressKey(a.address), a.op === 'add' ? a.address : null)
        break
      case 'route':
        put(routes, routeKey(a.route), a.op === 'del' ? null : a.route)
        break
      case 'rule':
        put(rules, ruleKey(a.rule), a.op === 'add' ? a.rule : null)
        break
    }
  }
  return normalizeState({ ...s, links, sysctls, addresses: [...addresses.values()], routes: [...routes.values()], rules: [...rules.values()] })
}
