/**
 * The network vocabulary every layer shares: address families, parsed
 * addresses and prefixes, and the kernel's address, route and rule records.
 * A leaf: nothing here imports the rest of QuicEther, so config, state,
 * system and mesh can all speak it without depending on each other.
 *
 * Conventions for the kernel records (`Address`, `Route`, `Rule`):
 * - addresses are canonical strings (`10.0.0.1`, `fd00::1`, RFC 5952 for v6);
 *   prefixes are canonical CIDR with host bits cleared (`10.0.0.0/16`);
 * - "absent" is `null`, never `undefined`, so records compare and serialize
 *   the same way whether they were read from the kernel or built from config;
 * - interfaces are named (`dev: 'qe0'`); the kernel adapter resolves names to
 *   indexes, so records stay meaningful across a link being re-created.
 */

/** IPv4 or IPv6, as the kernel numbers them (and as `ip -4` / `ip -6` do). */
export type Family = 4 | 6

/** One IP address, parsed. */
export interface IpAddress {
  readonly family: Family
  /** Canonical text: `10.0.0.1`, `fd00::1` (RFC 5952). */
  readonly text: string
  /** The address as an integer, for sorting and containment. */
  readonly n: bigint
}

/** A CIDR prefix, parsed, with its host bits cleared. */
export interface Prefix {
  readonly family: Family
  /** Network address, canonical text. */
  readonly network: string
  readonly prefixLen: number
  /** `network/prefixLen`: `10.0.0.0/16`, `fd00:1::/48`. */
  readonly cidr: string
  /** First and last address as integers (for sorting and containment). */
  readonly first: bigint
  readonly last: bigint
}

/** An interface address (`ip addr`). */
export interface Address {
  readonly family: Family
  readonly dev: string
  readonly address: string
  readonly prefixLen: number
  /**
   * Added with IFA_F_NOPREFIXROUTE: the kernel installs no prefix route in
   * `main` for it, so the only route to the overlay range is our marked one.
   */
  readonly noPrefixRoute: boolean
}

export type RouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw'
export type RouteScope = 'universe' | 'link' | 'host'

/**
 * A route. Its kernel identity (what `add` collides with and `del` selects)
 * is `(family, table, dst, metric)`; see `routeKey` in `src/state/keys.ts`.
 */
export interface Route {
  readonly family: Family
  readonly table: number
  /** Canonical CIDR; a default route is `0.0.0.0/0` / `::/0`. */
  readonly dst: string
  readonly type: RouteType
  readonly dev: string | null
  readonly gateway: string | null
  /** RTA_PRIORITY. For IPv6 the kernel turns 0 into 1024; records hold the kernel's value. */
  readonly metric: number
  readonly protocol: number
  readonly scope: RouteScope
}

/** A policy-routing rule (`ip rule`). Identity: every field but `protocol`. */
export interface Rule {
  readonly family: Family
  readonly priority: number
  /** Table to look up (action `to_tbl`). */
  readonly table: number
  readonly src: string | null
  readonly dst: string | null
  readonly fwmark: number | null
  readonly fwmask: number | null
  readonly iif: string | null
  readonly oif: string | null
  /** `ip rule add not ...` */
  readonly invert: boolean
  /**
   * `suppress_prefixlength N`: a route found with a prefix length ≤ N is ignored
   * and the lookup goes on (`lookup main suppress_prefixlength 0`: every route of
   * main but its default). Absent or null: none.
   */
  readonly suppressPrefixLen?: number | null
  /** Rule originator (FRA_PROTOCOL); QuicEther writes its own route protocol. Informational only. */
  readonly protocol: number
}
