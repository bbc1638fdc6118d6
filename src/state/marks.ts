/**
 * The marks that make a kernel object QuicEther's own (DESIGN.md, "Owning
 * what we touch"). The reconciler reads, changes and deletes only objects
 * that carry one of them; everything else on the machine is the user's.
 */

/** Route protocol number written on every route we install (`proto quicether`). */
export const ROUTE_PROTOCOL = 113

/** Name `ip route` shows for {@link ROUTE_PROTOCOL} when rt_protos lists it. */
export const ROUTE_PROTOCOL_NAME = 'quicether'

/** Our routing table. */
export const ROUTE_TABLE = 5280

/** The table of the exit's default routes (looked up by the exit rule only). */
export const EXIT_TABLE = 5281

/**
 * SO_MARK on the tunnel's own UDP sockets: the exit rule skips marked
 * packets, so the tunnel never carries itself (every uplink's socket too).
 */
export const SOCKET_MARK = 0x5280

/** Rule priorities: the overlay table, main without its default, then the exit table. */
export const RULE_PRIORITY_MAIN_SUPPRESS = 5281
export const RULE_PRIORITY_EXIT = 5282

/** Inclusive range of rule priorities that belong to us. */
export const RULE_PRIORITY_MIN = 5280
export const RULE_PRIORITY_MAX = 5299

/** Every interface we create or manage starts with this. */
export const LINK_PREFIX = 'qe'

/** …but the lab's interfaces (`qel-…`) are the lab's, never the daemon's. */
export const LAB_LINK_PREFIX = 'qel-'

export function isOwnedRouteProtocol(protocol: number): boolean {
  return protocol === ROUTE_PROTOCOL
}

export function isOwnedRulePriority(priority: number): boolean {
  return priority >= RULE_PRIORITY_MIN && priority <= RULE_PRIORITY_MAX
}

/**
 * Carries our interface mark. A necessary condition only: the reconciler also
 * requires the link to be one its desired state names (another daemon's TUN
 * carries the same prefix).
 */
export function isOwnedLinkName(name: string): boolean {
  return name.startsWith(LINK_PREFIX) && !name.startsWith(LAB_LINK_PREFIX)
}
