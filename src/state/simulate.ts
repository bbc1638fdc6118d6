/**
 * A pure model of the kernel slice: `simulate(state, plan)` applies a plan
 * the way the kernel would (by identity) and returns the new state. Tests
 * use it to check that a plan converges (`diff(desired, simulate(actual,
 * diff(desired, actual)))` is empty); a dry run can show the state after.
 */
import type { Action, KernelState, LinkState, Plan } from './types.js'
import { addressKey, routeKey, ruleKey } from './keys.js'
import { normalizeState } from './normalize.js'

export function simulateAction(state: KernelState, a: Action): KernelState {
  switch (a.kind) {
    case 'sysctl':
      return { ...state, sysctls: { ...state.sysctls, [a.key]: a.to } }
    case 'link':
      return {
        ...state,
        links: state.links.map(
          (l): LinkState => (l.name !== a.name ? l : { name: l.name, mtu: a.mtu?.to ?? l.mtu, up: a.up?.to ?? l.up }),
        ),
      }
    case 'address': {
      const k = addressKey(a.address)
      const rest = state.addresses.filter((x) => addressKey(x) !== k)
      return { ...state, addresses: a.op === 'add' ? [...rest, a.address] : rest }
    }
    case 'route': {
      const k = routeKey(a.route)
      const rest = state.routes.filter((x) => routeKey(x) !== k)
      return { ...state, routes: a.op === 'del' ? rest : [...rest, a.route] }
    }
    case 'rule': {
      const k = ruleKey(a.rule)
      const rest = state.rules.filter((x) => ruleKey(x) !== k)
      return { ...state, rules: a.op === 'add' ? [...rest, a.rule] : rest }
    }
  }
}

export function simulate(state: KernelState, plan: Plan): KernelState {
  return normalizeState(plan.actions.reduce(simulateAction, normalizeState(state)))
}
