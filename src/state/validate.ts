/**
 * `validate(desired, actual)`: what must hold before an apply touches the
 * kernel. Any `error` stops the apply with nothing changed. Pure data in,
 * issues out.
 */
import type { ActualState, KernelState, ValidationIssue } from './types.js'
import { addressKey, routeKey, ruleKey } from './keys.js'
import { normalizeActual, normalizeState } from './normalize.js'
import { renderRoute, renderRule } from './render.js'
import { isOwnedLinkName, isOwnedRouteProtocol, isOwnedRulePriority } from './marks.js'

/** IPv6 needs at least this MTU; the kernel drops a link's IPv6 addresses below it. */
const IPV6_MIN_MTU = 1280

function error(code: string, message: string): ValidationIssue {
  return { severity: 'error', code, message }
}

function duplicates<T>(items: readonly T[], key: (t: T) => string): string[] {
  const seen = new Set<string>()
  const dup: string[] = []
  for (const t of items) {
    const k = key(t)
    if (seen.has(k)) dup.push(k)
    seen.add(k)
  }
  return dup
}

export function validate(desiredIn: KernelState, actualIn: ActualState): ValidationIssue[] {
  const desired = normalizeState(desiredIn)
  const actual = normalizeActual(actualIn)
  const issues: ValidationIssue[] = []

  // Marks: we only ever write objects we can recognise as ours later.
  for (const l of desired.links) {
    if (!isOwnedLinkName(l.name)) issues.push(error('QE_NOT_OWNED', `link ${l.name} does not carry the qe prefix`))
  }
  for (const r of desired.routes) {
    if (!isOwnedRouteProtocol(r.protocol)) issues.push(error('QE_NOT_OWNED', `route ${renderRoute(r)} does not carry our protocol`))
  }
  for (const r of desired.rules) {
    if (!isOwnedRulePriority(r.priority)) issues.push(error('QE_NOT_OWNED', `rule ${renderRule(r)} is outside our priority range`))
  }
  const linkNames = new Set(desired.links.map((l) => l.name))
  for (const a of desired.addresses) {
    if (!isOwnedLinkName(a.dev)) issues.push(error('QE_NOT_OWNED', `address ${a.address} is on ${a.dev}, not a qe link`))
    else if (!linkNames.has(a.dev)) issues.push(error('QE_LINK_MISSING', `address ${a.address} is on ${a.dev}, which the desired state does not hold`))
  }

  for (const k of duplicates(desired.routes, routeKey)) issues.push(error('QE_DUPLICATE', `two desired routes share the identity ${k}`))
  for (const k of duplicates(desired.rules, ruleKey)) issues.push(error('QE_DUPLICATE', `two desired rules share the identity ${k}`))
  for (const k of duplicates(desired.addresses, addressKey)) issues.push(error('QE_DUPLICATE', `two desired addresses share the identity ${k}`))

  // Links: the engine creates them; we only hold their settings.
  const present = new Set(actual.links.map((l) => l.name))
  for (const l of desired.links) {
    if (!present.has(l.name)) issues.push(error('QE_LINK_MISSING', `interface ${l.name} does not exist (the engine creates it)`))
    const hasV6 = desired.addresses.some((a) => a.dev === l.name && a.family === 6)
    if (hasV6 && l.mtu < IPV6_MIN_MTU) {
      issues.push(error('QE_MTU_TOO_SMALL', `${l.name} carries IPv6 but its MTU ${l.mtu} is below ${IPV6_MIN_MTU}`))
    }
  }
  for (const r of desired.routes) {
    if (r.dev !== null && !linkNames.has(r.dev) && !present.has(r.dev)) {
      issues.push(error('QE_LINK_MISSING', `route ${renderRoute(r)} uses ${r.dev}, which does not exist`))
    }
  }

  // A default route in a table our catch-all rule looks up would capture the
  // tunnel's own UDP packets: the network goes down. Exits need fwmark rules.
  const catchAll = new Set(desired.rules.filter((r) => r.src === null && r.dst === null && r.fwmark === null && r.iif === null && !r.invert).map((r) => `${r.family}|${r.table}`))
  for (const r of desired.routes) {
    if (r.dst.endsWith('/0') && catchAll.has(`${r.family}|${r.table}`)) {
      issues.push(error('QE_DEFAULT_ROUTE', `route ${renderRoute(r)} would route the tunnel's own traffic into the tunnel: a default route belongs in the exit table, looked up only for packets without the tunnel's socket mark`))
    }
  }

  // Never replace a route someone else put on an identity we want.
  const foreign = new Map(actual.foreignRoutes.map((r) => [routeKey(r), r]))
  for (const r of desired.routes) {
    const f = foreign.get(routeKey(r))
    if (f !== undefined) {
      issues.push(error('QE_ROUTE_CONFLICT', `route ${renderRoute(r)} collides with a route we do not own: ${renderRoute(f)}`))
    }
  }
  return issues
}

export function hasErrors(issues: readonly ValidationIssue[]): boolean {
  return issues.some((i) => i.severity === 'error')
}
