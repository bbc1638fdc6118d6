/**
 * Which kernel events mean "the kernel may no longer match what we hold it
 * to". Our own applies raise thousands of events; those agree with the state
 * being applied and are ignored, so the only drift checks that run are the
 * ones something else caused (or a lost-events overflow).
 */
import type { KernelEvent } from '../system/types.js'
import type { KernelState, LinkState, Route } from '../state/types.js'
import { addressKey, routeEqual, routeKey, ruleKey } from '../state/keys.js'
import { normalizeAddress, normalizeRule, normalizeState } from '../state/normalize.js'
import { isOwnedLinkName, isOwnedRouteProtocol, isOwnedRulePriority } from '../state/marks.js'
import { isLinkLocal } from '../net/ip.js'

export class DriftFilter {
  private readonly links: Map<string, LinkState>
  private readonly routes: Map<string, Route>
  private readonly addresses: Set<string>
  private readonly rules: Set<string>
  /** Last index seen per desired link: a new index means the link was re-created (and lost its routes silently). */
  private readonly indexes = new Map<string, number>()

  constructor(state: KernelState) {
    const s = normalizeState(state)
    this.links = new Map(s.links.map((l) => [l.name, l]))
    this.routes = new Map(s.routes.map((r) => [routeKey(r), r]))
    this.addresses = new Set(s.addresses.map(addressKey))
    this.rules = new Set(s.rules.map(ruleKey))
  }

  /** Carries link indexes over from the filter of the previous state. */
  inherit(prev: DriftFilter | null): this {
    if (prev) for (const [k, v] of prev.indexes) this.indexes.set(k, v)
    return this
  }

  isDrift(ev: KernelEvent): boolean {
    switch (ev.type) {
      case 'overflow':
        return true
      case 'link': {
        const want = this.links.get(ev.link.name)
        if (want === undefined) return false
        if (ev.op === 'del') {
          this.indexes.delete(ev.link.name)
          return true
        }
        const seen = this.indexes.get(ev.link.name)
        this.indexes.set(ev.link.name, ev.link.index)
        return (seen !== undefined && seen !== ev.link.index) || ev.link.mtu !== want.mtu || ev.link.up !== want.up
      }
      case 'address': {
        const a = ev.address
        if (!isOwnedLinkName(a.dev) || !this.links.has(a.dev) || isLinkLocal(a.address)) return false
        const wanted = this.addresses.has(addressKey(normalizeAddress(a)))
        return ev.op === 'new' ? !wanted : wanted
      }
      case 'route': {
        if (!isOwnedRouteProtocol(ev.route.protocol)) return false
        const want = this.routes.get(routeKey(ev.route))
        if (ev.op === 'new') return want === undefined || !routeEqual(want, ev.route)
        return want !== undefined
      }
      case 'rule': {
        if (!isOwnedRulePriority(ev.rule.priority)) return false
        const wanted = this.rules.has(ruleKey(normalizeRule(ev.rule)))
        return ev.op === 'new' ? !wanted : wanted
      }
    }
  }
}
