/**
 * Identities and orderings of kernel records. Two records with the same key
 * are "the same object" to the kernel (an add of one collides with the
 * other); two records that are also `equal` need no change.
 */
import type { Address, Route, Rule } from './types.js'
import type { LinkState } from './types.js'
import { ipToBytes } from '../net/ip.js'

/** Kernel route identity: `(family, table, dst, metric)`. */
export function routeKey(r: Route): string {
  return `${r.family}|${r.table}|${r.dst}|${r.metric}`
}

/** Address identity on its link (a changed prefix length is a different address). */
export function addressKey(a: Address): string {
  return `${a.dev}|${a.address}/${a.prefixLen}|${a.noPrefixRoute ? 'npr' : ''}`
}

/** Rule identity: every selector and the table; the protocol is informational. */
export function ruleKey(r: Rule): string {
  return [r.family, r.priority, r.table, r.src, r.dst, r.fwmark, r.fwmask, r.iif, r.oif, r.invert, r.suppressPrefixLen ?? null].join('|')
}

export function routeEqual(a: Route, b: Route): boolean {
  return (
    routeKey(a) === routeKey(b) &&
    a.type === b.type &&
    a.dev === b.dev &&
    a.gateway === b.gateway &&
    a.protocol === b.protocol &&
    a.scope === b.scope
  )
}

export function linkEqual(a: LinkState, b: LinkState): boolean {
  return a.name === b.name && a.mtu === b.mtu && a.up === b.up
}

// ---- orderings (deterministic plans and fixtures) ----

const sortKeyCache = new Map<string, string>()

/** Sortable form of a CIDR: family, address bytes as hex, prefix length. */
function cidrSortKey(cidr: string): string {
  let k = sortKeyCache.get(cidr)
  if (k !== undefined) return k
  const slash = cidr.indexOf('/')
  const addr = slash < 0 ? cidr : cidr.slice(0, slash)
  const len = slash < 0 ? '' : cidr.slice(slash + 1)
  const bytes = ipToBytes(addr)
  k = `${bytes.length === 4 ? 4 : 6}:${bytes.toString('hex').padEnd(32, '0')}/${len.padStart(3, '0')}`
  if (sortKeyCache.size > 100_000) sortKeyCache.clear()
  sortKeyCache.set(cidr, k)
  return k
}

function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function compareRoutes(a: Route, b: Route): number {
  return cmp(a.family, b.family) || cmp(a.table, b.table) || cmp(cidrSortKey(a.dst), cidrSortKey(b.dst)) || cmp(a.metric, b.metric)
}

export function compareAddresses(a: Address, b: Address): number {
  return (
    cmp(a.family, b.family) ||
    cmp(a.dev, b.dev) ||
    cmp(cidrSortKey(a.address), cidrSortKey(b.address)) ||
    cmp(a.prefixLen, b.prefixLen) ||
    cmp(Number(a.noPrefixRoute), Number(b.noPrefixRoute))
  )
}

export function compareRules(a: Rule, b: Rule): number {
  return cmp(a.family, b.family) || cmp(a.priority, b.priority) || cmp(ruleKey(a), ruleKey(b))
}

export function compareLinks(a: LinkState, b: LinkState): number {
  return cmp(a.name, b.name)
}

/** Items by identity (`key`), in their order; the kernel holds one item per identity, so the last of a repeat stands. */
export function byKey<T>(items: readonly T[], key: (t: T) => string): Map<string, T> {
  const m = new Map<string, T>()
  for (const t of items) m.set(key(t), t)
  return m
}
