/**
 * The lab's contracts: a topology as plain data (what to build) and the
 * handles of what was built. Units follow the config's convention: rates in
 * bits/s, delays in milliseconds, loss as a fraction in [0, 1).
 */

/** NAT on a link's router: `a` is inside, `b` outside. */
export type NatKind = 'none' | 'cone' | 'symmetric'

/** What one direction of a link does to packets. Zero/null means "nothing". */
export interface DirectionSpec {
  /** bits/s; null = unlimited. */
  readonly rate: number | null
  /** One-way delay in ms (fractional allowed); 0 = none. */
  readonly delay: number
  /**
   * Extra one-way delay in ms wandering over time in [0, jitter] without
   * reordering (native/lab/jitter.h); 0 = none.
   */
  readonly jitter: number
  /** Fraction of packets dropped at random, 0 ≤ loss < 1. */
  readonly loss: number
}

export interface LinkSpec {
  /** A label for output ("dsl", "uplink-2"); unique in the topology. */
  readonly name: string
  readonly a: string
  readonly b: string
  /** Packets from a to b ("up" for a client on side a). */
  readonly aToB: DirectionSpec
  readonly bToA: DirectionSpec
  /** Bottleneck queue of a rate-limited direction, in ms at its rate; null = the lab's default. */
  readonly queue: number | null
  readonly nat: NatKind
}

export interface NodeSpec {
  readonly name: string
  /** Run a quicether daemon in this node. */
  readonly daemon: boolean
  /**
   * Config (kebab-case, as in a config file) merged over the config the lab
   * generates for this node; null = the generated config as is.
   */
  readonly config: Readonly<Record<string, unknown>> | null
}

export interface TopologySpec {
  readonly nodes: readonly NodeSpec[]
  readonly links: readonly LinkSpec[]
}

/** An address on one end of a link: the IP and its prefix length. */
export interface IfAddr {
  readonly ipv4: string
  readonly prefix4: number
  readonly ipv6: string
  readonly prefix6: number
}

/** Where a link's pieces live once built. */
export interface LinkHandle {
  readonly index: number
  readonly spec: LinkSpec
  /** The router namespace, or null for a plain veth pair. */
  readonly router: string | null
  /** Interface names in a's and b's namespaces. */
  readonly ifA: string
  readonly ifB: string
  readonly addrA: IfAddr
  readonly addrB: IfAddr
}

export interface NodeHandle {
  readonly name: string
  readonly netns: string
}

export const NO_EFFECT: DirectionSpec = Object.freeze({ rate: null, delay: 0, jitter: 0, loss: 0 })
