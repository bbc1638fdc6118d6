/**
 * Canonical form of a state: canonical address text, CIDRs with host bits
 * cleared, the kernel's spelling of defaults (IPv6 metric 0 → 1024, a
 * fwmark's implicit full mask), and every list sorted. Equal states are then
 * equal JSON, and plans come out in a stable order.
 */
import type { ActualState, Address, KernelState, Route, Rule } from './types.js'
import { compareAddresses, compareLinks, compareRoutes, compareRules } from './keys.js'
import { canonicalCidr, canonicalIp } from '../net/ip.js'

/** The metric the kernel stores for an IPv6 route added with metric 0. */
export const IP6_DEFAULT_METRIC = 1024

export function kernelMetric(family: 4 | 6, metric: number): number {
  return family === 6 && metric === 0 ? IP6_DEFAULT_METRIC : metric
}

export function normalizeRoute(r: Route): Route {
  return {
    family: r.family,
    table: r.table,
    dst: canonicalCidr(r.dst),
    type: r.type,
    dev: r.dev ?? null,
    gateway: r.gateway == null ? null : canonicalIp(r.gateway),
    metric: kernelMetric(r.family, r.metric),
    protocol: r.protocol,
    // The kernel reports every IPv6 route with scope universe.
    scope: r.family === 6 ? 'universe' : r.scope,
  }
}

export function normalizeAddress(a: Address): Address {
  return { family: a.family, dev: a.dev, address: canonicalIp(a.address), prefixLen: a.prefixLen, noPrefixRoute: a.noPrefixRoute }
}

export function normalizeRule(r: Rule): Rule {
  const fwmark = r.fwmark ?? null
  return {
    family: r.family,
    priority: r.priority,
    table: r.table,
    src: r.src == null ? null : canonicalCidr(r.src),
    dst: r.dst == null ? null : canonicalCidr(r.dst),
    fwmark,
    fwmask: fwmark === null ? null : (r.fwmask ?? 0xffffffff),
    iif: r.iif ?? null,
    oif: r.oif ?? null,
    invert: r.invert === true,
    ...(r.suppressPrefixLen != null ? { suppressPrefixLen: r.suppressPrefixLen } : {}),
    protocol: r.protocol,
  }
}

function sortedRecord(rec: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k of Object.keys(rec).sort()) out[k] = String(rec[k])
  return out
}

/** States this module produced: already canonical, returned as they are (diffs of 10,000 routes normalize a lot). */
const canonical = new WeakSet<object>()

function mark<T extends object>(s: T): T {
  canonical.add(s)
  return s
}

export function normalizeState(s: KernelState): KernelState {
  if (canonical.has(s)) return s
  return mark({
    links: s.links.map((l) => ({ name: l.name, mtu: l.mtu, up: l.up })).sort(compareLinks),
    addresses: s.addresses.map(normalizeAddress).sort(compareAddresses),
    routes: s.routes.map(normalizeRoute).sort(compareRoutes),
    rules: s.rules.map(normalizeRule).sort(compareRules),
    sysctls: sortedRecord(s.sysctls),
  })
}

export function normalizeActual(s: ActualState): ActualState {
  if (canonical.has(s)) return s
  return mark({ ...normalizeState(s), foreignRoutes: s.foreignRoutes.map(normalizeRoute).sort(compareRoutes) })
}

/** The empty state: what `cleanup()` converges to. */
export const EMPTY_STATE: KernelState = Object.freeze({ links: [], addresses: [], routes: [], rules: [], sysctls: {} })
