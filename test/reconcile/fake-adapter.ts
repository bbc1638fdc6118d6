/**
 * An in-memory kernel behind the `SystemAdapter` interface, for reconciler
 * unit tests (the real one is exercised by `test/e2e/`). It keeps the
 * kernel's identity rules (EEXIST on an exclusive add, ESRCH on a missing
 * delete, a delete matches the protocol), emits events like rtnetlink does,
 * and can fail chosen calls.
 */
import type { Address, KernelEvent, Link, LinkChange, Route, RouteFilter, Rule, RuleFilter, SystemAdapter, Unsubscribe } from '../../src/system/types.js'
import { NetlinkError, LinkNotFoundError, SysctlError } from '../../src/system/errors.js'
import { addressKey, routeKey, ruleKey } from '../../src/state/keys.js'
import { normalizeAddress, normalizeRoute, normalizeRule } from '../../src/state/normalize.js'

export type Method = keyof SystemAdapter

export class FakeAdapter implements SystemAdapter {
  links = new Map<string, Link>()
  routes = new Map<string, Route>()
  addresses = new Map<string, Address>()
  rules = new Map<string, Rule>()
  sysctls = new Map<string, string>()
  /** Every mutating call, in order: `addRoute 10.0.0.0/16`. */
  readonly calls: string[] = []
  /** Return an error to make a call fail (checked before the call acts). */
  failWith: ((method: Method, what: string, callNo: number) => Error | null) | null = null
  private listeners = new Set<(e: KernelEvent) => void>()
  private nextIndex = 2

  addLink(name: string, mtu = 1500, up = false): Link {
    const link = { name, index: this.nextIndex++, mtu, up }
    this.links.set(name, link)
    return link
  }

  /** A snapshot of everything, for "exactly as before" comparisons. */
  dump(): unknown {
    const sorted = <T>(m: Map<string, T>): Array<[string, T]> => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return { links: sorted(this.links), routes: sorted(this.routes), addresses: sorted(this.addresses), rules: sorted(this.rules), sysctls: sorted(this.sysctls) }
  }

  emit(e: KernelEvent): void {
    for (const l of this.listeners) l(e)
  }

  private gate(method: Method, what: string): void {
    this.calls.push(`${method} ${what}`)
    const err = this.failWith?.(method, what, this.calls.length)
    if (err) throw err
  }

  async listLinks(): Promise<Link[]> {
    return [...this.links.values()].map((l) => ({ ...l }))
  }

  async getLink(name: string): Promise<Link | null> {
    const l = this.links.get(name)
    return l ? { ...l } : null
  }

  async setLink(name: string, change: LinkChange): Promise<void> {
    this.gate('setLink', name)
    const l = this.links.get(name)
    if (!l) throw new LinkNotFoundError(name)
    const next = { ...l, ...(change.mtu !== undefined ? { mtu: change.mtu } : {}), ...(change.up !== undefined ? { up: change.up } : {}) }
    this.links.set(name, next)
    this.emit({ type: 'link', op: 'new', link: next })
  }

  async listAddresses(dev?: string): Promise<Address[]> {
    return [...this.addresses.values()].filter((a) => dev === undefined || a.dev === dev)
  }

  async addAddress(a: Address): Promise<void> {
    this.gate('addAddress', `${a.address}/${a.prefixLen}`)
    if (!this.links.has(a.dev)) throw new LinkNotFoundError(a.dev)
    const k = addressKey(normalizeAddress(a))
    if (this.addresses.has(k)) throw new NetlinkError('add address', 'EEXIST')
    this.addresses.set(k, normalizeAddress(a))
    this.emit({ type: 'address', op: 'new', address: a })
  }

  async delAddress(a: Address): Promise<void> {
    this.gate('delAddress', `${a.address}/${a.prefixLen}`)
    const k = addressKey(normalizeAddress(a))
    if (!this.addresses.delete(k)) throw new NetlinkError('del address', 'EADDRNOTAVAIL')
    this.emit({ type: 'address', op: 'del', address: a })
  }

  async listRoutes(filter: RouteFilter = {}): Promise<Route[]> {
    return [...this.routes.values()].filter(
      (r) => (filter.table === undefined || r.table === filter.table) && (filter.protocol === undefined || r.protocol === filter.protocol) && (filter.family === undefined || r.family === filter.family),
    )
  }

  async addRoute(r: Route): Promise<void> {
    this.gate('addRoute', r.dst)
    if (r.dev !== null && !this.links.has(r.dev)) throw new LinkNotFoundError(r.dev)
    const n = normalizeRoute(r)
    if (this.routes.has(routeKey(n))) throw new NetlinkError('add route', 'EEXIST')
    this.routes.set(routeKey(n), n)
    this.emit({ type: 'route', op: 'new', route: n })
  }

  async replaceRoute(r: Route): Promise<void> {
    this.gate('replaceRoute', r.dst)
    const n = normalizeRoute(r)
    this.routes.set(routeKey(n), n)
    this.emit({ type: 'route', op: 'new', route: n })
  }

  async delRoute(r: Route): Promise<void> {
    this.gate('delRoute', r.dst)
    const n = normalizeRoute(r)
    const cur = this.routes.get(routeKey(n))
    // Like the kernel: a delete that names a protocol only matches routes of that protocol.
    if (!cur || cur.protocol !== n.protocol) throw new NetlinkError('del route', 'ESRCH')
    this.routes.delete(routeKey(n))
    this.emit({ type: 'route', op: 'del', route: cur })
  }

  async listRules(filter: RuleFilter = {}): Promise<Rule[]> {
    return [...this.rules.values()].filter((r) => (filter.priorityMin === undefined || r.priority >= filter.priorityMin) && (filter.priorityMax === undefined || r.priority <= filter.priorityMax))
  }

  async addRule(r: Rule): Promise<void> {
    this.gate('addRule', String(r.priority))
    const n = normalizeRule(r)
    if (this.rules.has(ruleKey(n))) throw new NetlinkError('add rule', 'EEXIST')
    this.rules.set(ruleKey(n), n)
    this.emit({ type: 'rule', op: 'new', rule: n })
  }

  async delRule(r: Rule): Promise<void> {
    this.gate('delRule', String(r.priority))
    const n = normalizeRule(r)
    if (!this.rules.delete(ruleKey(n))) throw new NetlinkError('del rule', 'ENOENT')
    this.emit({ type: 'rule', op: 'del', rule: n })
  }

  async readSysctl(key: string): Promise<string> {
    const v = this.sysctls.get(key)
    if (v === undefined) throw new SysctlError(key, `read sysctl ${key}: ENOENT`, { errno: 'ENOENT' })
    return v
  }

  async writeSysctl(key: string, value: string): Promise<void> {
    this.gate('writeSysctl', key)
    if (!this.sysctls.has(key)) throw new SysctlError(key, `write sysctl ${key}: ENOENT`, { errno: 'ENOENT' })
    this.sysctls.set(key, value)
  }

  subscribe(listener: (event: KernelEvent) => void): Unsubscribe {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  get subscribers(): number {
    return this.listeners.size
  }

  close(): void {
    this.listeners.clear()
  }
}

/** A fake kernel with the overlay TUN and the sysctls a gateway node sets, at their defaults. */
export function nodeKernel(): FakeAdapter {
  const fake = new FakeAdapter()
  fake.addLink('qe0')
  fake.sysctls.set('net.ipv4.ip_forward', '0')
  fake.sysctls.set('net.ipv6.conf.all.forwarding', '0')
  fake.sysctls.set('net.ipv4.conf.qe0.promote_secondaries', '0')
  return fake
}
