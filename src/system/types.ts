/**
 * The kernel as QuicEther sees it: plain, JSON-friendly records and the one
 * interface (`SystemAdapter`) through which the product changes the machine.
 *
 * Conventions for every record here:
 * - addresses are canonical strings (`10.0.0.1`, `fd00::1`, RFC 5952 for v6);
 *   prefixes are canonical CIDR with host bits cleared (`10.0.0.0/16`);
 * - "absent" is `null`, never `undefined`, so records compare and serialize
 *   the same way whether they were read from the kernel or built from config;
 * - interfaces are named (`dev: 'qe0'`); the adapter resolves names to
 *   indexes, so records stay meaningful across a link being re-created.
 */

import type { Address, Family, Route, Rule } from '../net/types.js'

/** The records are the network vocabulary's (`src/net/types.ts`); the adapter reads and writes them. */
export type { Address, Family, Route, RouteScope, RouteType, Rule } from '../net/types.js'

/** An interface, as read back. */
export interface Link {
  readonly name: string
  readonly index: number
  readonly mtu: number
  /** Administratively up (IFF_UP). */
  readonly up: boolean
}

/** The settable part of a link; absent fields are left as they are. */
export interface LinkChange {
  readonly mtu?: number
  readonly up?: boolean
}

export interface RouteFilter {
  readonly family?: Family
  readonly table?: number
  readonly protocol?: number
}

export interface RuleFilter {
  readonly family?: Family
  /** Inclusive priority range. */
  readonly priorityMin?: number
  readonly priorityMax?: number
}

/**
 * A change the kernel announced on an rtnetlink multicast group. `overflow`
 * means events were lost (ENOBUFS on the event socket): re-read everything.
 * For a link that no longer exists, `dev` fields may hold `#<ifindex>`.
 */
export type KernelEvent =
  | { readonly type: 'link'; readonly op: 'new' | 'del'; readonly link: Link }
  | { readonly type: 'address'; readonly op: 'new' | 'del'; readonly address: Address }
  | { readonly type: 'route'; readonly op: 'new' | 'del'; readonly route: Route }
  | { readonly type: 'rule'; readonly op: 'new' | 'del'; readonly rule: Rule }
  | { readonly type: 'overflow' }

export type Unsubscribe = () => void

/**
 * The only product code that changes the kernel (the native engine aside).
 *
 * Every method may be called concurrently: requests are pipelined on one
 * netlink socket with a bounded number in flight, so a caller that wants
 * throughput fires many calls and awaits them together. Mutations reject
 * with a `SystemError` (see `src/system/errors.ts`) whose `retryable` is
 * true only for transient errno values (EBUSY, EAGAIN, ENOBUFS, EINTR…).
 *
 * The adapter works in the network namespace the process was started in.
 * It applies no ownership policy: callers pass marked records.
 */
export interface SystemAdapter {
  listLinks(): Promise<Link[]>
  /** `null` when no link has that name. */
  getLink(name: string): Promise<Link | null>
  setLink(name: string, change: LinkChange): Promise<void>

  /** Addresses of every link, or of `dev` only. Includes link-local ones. */
  listAddresses(dev?: string): Promise<Address[]>
  addAddress(address: Address): Promise<void>
  delAddress(address: Address): Promise<void>

  /** One dump, filtered here (the kernel ignores dump filters without strict checking). */
  listRoutes(filter?: RouteFilter): Promise<Route[]>
  /** Exclusive create: fails with EEXIST if any route holds the same identity. */
  addRoute(route: Route): Promise<void>
  /** Create or replace the route with the same identity. */
  replaceRoute(route: Route): Promise<void>
  delRoute(route: Route): Promise<void>

  listRules(filter?: RuleFilter): Promise<Rule[]>
  /** Exclusive create: fails with EEXIST for an identical rule. */
  addRule(rule: Rule): Promise<void>
  delRule(rule: Rule): Promise<void>

  /** `key` is dotted (`net.ipv4.ip_forward`); the value is trimmed. */
  readSysctl(key: string): Promise<string>
  writeSysctl(key: string, value: string): Promise<void>

  /**
   * Joins the link, address, route and rule multicast groups (IPv4 and IPv6)
   * on a socket of its own. The listener runs on the event loop; it must not
   * throw. Call the returned function to leave.
   */
  subscribe(listener: (event: KernelEvent) => void): Unsubscribe

  /** Closes the sockets; pending requests reject. */
  close(): void
}
