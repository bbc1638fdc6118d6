/**
 * `diff(desired, actual) → Plan`: the ordered actions that turn the actual
 * kernel slice into the desired one. Both inputs are normalized first, so
 * the plan does not depend on how they were spelled or sorted.
 *
 * Order (phases; actions within a phase are independent):
 *   sysctls → link settings (up before anything routes through it)
 *   → delete rules (stop steering traffic first) → delete gateway routes
 *   → delete device routes → delete IPv6 addresses → add addresses
 *   → delete IPv4 addresses → add device routes → add gateway routes
 *     (their next hop may need a device route) → add rules (last: the
 *     table is full before traffic is steered into it).
 *
 * IPv4 addresses are replaced add-first: when a link loses its last IPv4
 * address the kernel silently flushes every IPv4 route through it (the
 * user's too). Only an address re-added under the same identity with other
 * flags must go first (the kernel would refuse the add).
 */
import type { Action, ActionBody, Address, KernelState, LinkState, Plan, Route, Rule } from './types.js'
import { addressKey, byKey, routeEqual, routeKey, ruleKey } from './keys.js'
import { normalizeState } from './normalize.js'
import { renderAction } from './render.js'

export const PHASES = {
  sysctl: 0,
  link: 1,
  ruleDel: 2,
  gatewayRouteDel: 3,
  routeDel: 4,
  addressDel: 5,
  addressAdd: 6,
  addressDelAfterAdd: 7,
  routeAdd: 8,
  gatewayRouteAdd: 9,
  ruleAdd: 10,
} as const

function phaseOf(a: ActionBody): number {
  switch (a.kind) {
    case 'sysctl':
      return PHASES.sysctl
    case 'link':
      return PHASES.link
    case 'rule':
      return a.op === 'add' ? PHASES.ruleAdd : PHASES.ruleDel
    case 'address':
      if (a.op === 'add') return PHASES.addressAdd
      return a.address.family === 4 ? PHASES.addressDelAfterAdd : PHASES.addressDel
    case 'route': {
      const gw = a.route.gateway !== null || (a.op === 'replace' && a.from.gateway !== null)
      if (a.op === 'del') return gw ? PHASES.gatewayRouteDel : PHASES.routeDel
      return gw ? PHASES.gatewayRouteAdd : PHASES.routeAdd
    }
  }
}

function action(body: ActionBody, phase = phaseOf(body)): Action {
  // Every kernel-slice change applies live; engine-level changes (later) may not.
  return { ...body, text: renderAction(body), live: true, phase }
}

/** The kernel's own identity of an address (flags aside): an add collides with a delete still pending. */
const addressSlot = (a: Address): string => `${a.dev}|${a.address}/${a.prefixLen}`

function diffLinks(desired: readonly LinkState[], actual: readonly LinkState[], out: ActionBody[]): void {
  const have = byKey(actual, (l) => l.name)
  for (const want of desired) {
    const cur = have.get(want.name)
    // A missing link is reported by `validate`; there is nothing to set on it.
    if (cur === undefined) continue
    const mtu = cur.mtu !== want.mtu ? { from: cur.mtu, to: want.mtu } : null
    const up = cur.up !== want.up ? { from: cur.up, to: want.up } : null
    if (mtu !== null || up !== null) out.push({ kind: 'link', op: 'set', name: want.name, mtu, up })
  }
}

function diffSets<T>(
  desired: readonly T[],
  actual: readonly T[],
  key: (t: T) => string,
  del: (t: T) => ActionBody,
  add: (t: T) => ActionBody,
  out: ActionBody[],
): void {
  const want = byKey(desired, key)
  const have = byKey(actual, key)
  for (const [k, t] of have) if (!want.has(k)) out.push(del(t))
  for (const [k, t] of want) if (!have.has(k)) out.push(add(t))
}

function diffRoutes(desired: readonly Route[], actual: readonly Route[], out: ActionBody[]): void {
  const want = byKey(desired, routeKey)
  const have = byKey(actual, routeKey)
  for (const [k, r] of have) if (!want.has(k)) out.push({ kind: 'route', op: 'del', route: r })
  for (const [k, r] of want) {
    const cur = have.get(k)
    if (cur === undefined) out.push({ kind: 'route', op: 'add', route: r })
    else if (!routeEqual(cur, r)) out.push({ kind: 'route', op: 'replace', route: r, from: cur })
  }
}

export function diff(desiredIn: KernelState, actualIn: KernelState): Plan {
  const desired = normalizeState(desiredIn)
  const actual = normalizeState(actualIn)
  const bodies: ActionBody[] = []

  for (const [key, to] of Object.entries(desired.sysctls)) {
    const from = actual.sysctls[key] ?? null
    if (from !== to) bodies.push({ kind: 'sysctl', op: 'set', key, from, to })
  }
  diffLinks(desired.links, actual.links, bodies)
  diffSets<Rule>(desired.rules, actual.rules, ruleKey, (rule) => ({ kind: 'rule', op: 'del', rule }), (rule) => ({ kind: 'rule', op: 'add', rule }), bodies)
  diffRoutes(desired.routes, actual.routes, bodies)
  diffSets<Address>(
    desired.addresses,
    actual.addresses,
    addressKey,
    (address) => ({ kind: 'address', op: 'del', address }),
    (address) => ({ kind: 'address', op: 'add', address }),
    bodies,
  )

  const readded = new Set(bodies.flatMap((b) => (b.kind === 'address' && b.op === 'add' ? [addressSlot(b.address)] : [])))
  const phased = bodies.map((b) =>
    b.kind === 'address' && b.op === 'del' && readded.has(addressSlot(b.address)) ? action(b, PHASES.addressDel) : action(b),
  )
  // Stable sort by phase keeps the normalized (sorted) order inside each phase.
  const actions = phased.sort((a, b) => a.phase - b.phase)
  let add = 0
  let change = 0
  let del = 0
  for (const a of actions) {
    if (a.op === 'add') add++
    else if (a.op === 'del') del++
    else change++
  }
  return { actions, summary: { add, change, del }, live: actions.every((a) => a.live) }
}

/** True when `diff` would have nothing to do. */
export function inSync(desired: KernelState, actual: KernelState): boolean {
  return diff(desired, actual).actions.length === 0
}
