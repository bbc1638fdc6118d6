/**
 * People's rendering of records, actions and plans, close to `ip` output:
 *   + route 10.0.0.0/16 dev qe0 table 5280 proto quicether
 *   - rule ipv4 5280: from all lookup 5280
 *   ~ link qe0 mtu 1400 → 1380
 */
import type { ActionBody, Address, Plan, Route, Rule } from './types.js'
import { ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME } from './marks.js'

export function renderProtocol(protocol: number): string {
  return protocol === ROUTE_PROTOCOL ? ROUTE_PROTOCOL_NAME : String(protocol)
}

export function renderRoute(r: Route): string {
  const parts: string[] = []
  if (r.type !== 'unicast') parts.push(r.type)
  parts.push(r.dst)
  if (r.gateway !== null) parts.push(`via ${r.gateway}`)
  if (r.dev !== null) parts.push(`dev ${r.dev}`)
  parts.push(`table ${r.table}`, `proto ${renderProtocol(r.protocol)}`)
  if (r.metric !== 0) parts.push(`metric ${r.metric}`)
  return parts.join(' ')
}

export function renderAddress(a: Address): string {
  return `${a.address}/${a.prefixLen} dev ${a.dev}${a.noPrefixRoute ? ' noprefixroute' : ''}`
}

export function renderRule(r: Rule): string {
  const parts = [`ipv${r.family}`, `${r.priority}:`]
  if (r.invert) parts.push('not')
  parts.push(`from ${r.src ?? 'all'}`)
  if (r.dst !== null) parts.push(`to ${r.dst}`)
  if (r.fwmark !== null) {
    const mask = r.fwmask !== null && r.fwmask !== 0xffffffff ? `/0x${r.fwmask.toString(16)}` : ''
    parts.push(`fwmark 0x${r.fwmark.toString(16)}${mask}`)
  }
  if (r.iif !== null) parts.push(`iif ${r.iif}`)
  if (r.oif !== null) parts.push(`oif ${r.oif}`)
  parts.push(`lookup ${r.table}`)
  if (r.suppressPrefixLen != null) parts.push(`suppress_prefixlength ${r.suppressPrefixLen}`)
  return parts.join(' ')
}

/** What changed between two routes with the same identity. */
function routeChanges(from: Route, to: Route): string {
  const changes: string[] = []
  if (from.type !== to.type) changes.push(`type ${from.type} → ${to.type}`)
  if (from.dev !== to.dev) changes.push(`dev ${from.dev ?? '-'} → ${to.dev ?? '-'}`)
  if (from.gateway !== to.gateway) changes.push(`via ${from.gateway ?? '-'} → ${to.gateway ?? '-'}`)
  if (from.protocol !== to.protocol) changes.push(`proto ${renderProtocol(from.protocol)} → ${renderProtocol(to.protocol)}`)
  if (from.scope !== to.scope) changes.push(`scope ${from.scope} → ${to.scope}`)
  return changes.join(', ')
}

export function renderAction(a: ActionBody): string {
  switch (a.kind) {
    case 'sysctl':
      return `~ sysctl ${a.key} ${a.from ?? '(unset)'} → ${a.to}`
    case 'link': {
      const changes: string[] = []
      if (a.mtu !== null) changes.push(`mtu ${a.mtu.from} → ${a.mtu.to}`)
      if (a.up !== null) changes.push(`${a.up.from ? 'up' : 'down'} → ${a.up.to ? 'up' : 'down'}`)
      return `~ link ${a.name} ${changes.join(', ')}`
    }
    case 'address':
      return `${a.op === 'add' ? '+' : '-'} address ${renderAddress(a.address)}`
    case 'route':
      if (a.op === 'replace') return `~ route ${renderRoute(a.route)} (${routeChanges(a.from, a.route)})`
      return `${a.op === 'add' ? '+' : '-'} route ${renderRoute(a.route)}`
    case 'rule':
      return `${a.op === 'add' ? '+' : '-'} rule ${renderRule(a.rule)}`
  }
}

/** The plan as text: one line per action, then a summary line. */
export function renderPlan(plan: Plan): string {
  if (plan.actions.length === 0) return 'No changes: the kernel matches the desired state.\n'
  const lines = plan.actions.map((a) => (a.live ? a.text : `${a.text}  [needs restart]`))
  const { add, change, del } = plan.summary
  lines.push(`Plan: ${add} to add, ${change} to change, ${del} to delete${plan.live ? ', all live' : ''}.`)
  return `${lines.join('\n')}\n`
}

/** One line for logs: `+3 ~1 -2`. */
export function summarizePlan(plan: Plan): string {
  const { add, change, del } = plan.summary
  return `+${add} ~${change} -${del}`
}

/** The plan as JSON-ready data (the `Plan` object is plain data already; this pins the shape). */
export function planToJson(plan: Plan): { summary: Plan['summary']; live: boolean; actions: Plan['actions'] } {
  return { summary: plan.summary, live: plan.live, actions: plan.actions }
}
