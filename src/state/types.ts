/**
 * Desired and actual state of the kernel slice QuicEther owns, and the plan
 * that turns one into the other. Pure data: no netlink, JSON in and out, so
 * `diff` is tested with fixture files (`test/fixtures/state/`).
 *
 * Desired and actual share one shape (`KernelState`), which is what makes a
 * rollback simple: a checkpoint (an `ActualState`) is itself a valid desired
 * state, and `diff(checkpoint, now)` is the plan that restores it.
 */
import type { Address, Route, Rule } from '../net/types.js'

export type { Address, Route, Rule, Family } from '../net/types.js'

/** The settings we hold a link to. We never create or delete links (the engine does). */
export interface LinkState {
  readonly name: string
  readonly mtu: number
  readonly up: boolean
}

/**
 * Records are kept sorted (see `normalizeState`) so that equal states are
 * equal JSON. `sysctls` maps dotted keys to values (`'net.ipv4.ip_forward': '1'`).
 */
export interface KernelState {
  readonly links: readonly LinkState[]
  readonly addresses: readonly Address[]
  readonly routes: readonly Route[]
  readonly rules: readonly Rule[]
  readonly sysctls: Readonly<Record<string, string>>
}

/**
 * What the kernel slice should be. Only marked objects: routes carry the
 * QuicEther protocol, rules a priority in our range, links a `qe` name.
 */
export type DesiredState = KernelState

/**
 * What `observe()` read back: only our objects (routes of our protocol, rules
 * in our priority range, `qe` links and their non-link-local addresses) and
 * the current value of each sysctl the desired state names.
 */
export interface ActualState extends KernelState {
  /**
   * Routes of another protocol that sit on an identity a desired route wants
   * (same family, table, dst, metric): we must not replace them, so
   * `validate` refuses the plan instead. Filled only for desired identities.
   */
  readonly foreignRoutes: readonly Route[]
}

/** Runtime inputs the daemon supplies next to the config. */
export interface RuntimeInputs {
  /** This node's overlay addresses (plain IPs), from the config or derived from its key. */
  readonly overlayAddresses: { readonly ipv4: string | null; readonly ipv6: string | null }
  /** Subnets peers advertised (learned at runtime); routed into the TUN. */
  readonly learnedRoutes: readonly LearnedRoute[]
  /** The TUN MTU chosen by the engine (used when the config says `mtu: auto`). */
  readonly tunMtu: number
  /**
   * This node's internet traffic, per family: `tunnel` through the exit,
   * `block` (the exit is required and down), `off` (the node's own default
   * route). Absent: off.
   */
  readonly exit?: { readonly ipv4: ExitMode; readonly ipv6: ExitMode }
}

export type ExitMode = 'off' | 'tunnel' | 'block'

export interface LearnedRoute {
  /** CIDR (canonicalized by `desiredFromConfig`). */
  readonly prefix: string
  /** Peer that advertised it (for people; the kernel route only points at the TUN). */
  readonly peer: string
  /** Default LEARNED_ROUTE_METRIC. */
  readonly metric?: number
}

/** One idempotent step of a plan. */
export type ActionBody =
  | { readonly kind: 'sysctl'; readonly op: 'set'; readonly key: string; readonly from: string | null; readonly to: string }
  | {
      readonly kind: 'link'
      readonly op: 'set'
      readonly name: string
      readonly mtu: { readonly from: number; readonly to: number } | null
      readonly up: { readonly from: boolean; readonly to: boolean } | null
    }
  | { readonly kind: 'address'; readonly op: 'add' | 'del'; readonly address: Address }
  | { readonly kind: 'route'; readonly op: 'add' | 'del'; readonly route: Route }
  | { readonly kind: 'route'; readonly op: 'replace'; readonly route: Route; readonly from: Route }
  | { readonly kind: 'rule'; readonly op: 'add' | 'del'; readonly rule: Rule }

export type Action = ActionBody & {
  /** People's rendering: `+ route 10.0.0.0/16 dev qe0 table 5280 proto quicether`. */
  readonly text: string
  /** True when it applies without restarting anything (all kernel actions are live). */
  readonly live: boolean
  /**
   * Actions of one phase are independent and may run concurrently; phases
   * run in increasing order (see `PHASES` in `src/state/plan.ts`).
   */
  readonly phase: number
}

export interface PlanSummary {
  readonly add: number
  readonly change: number
  readonly del: number
}

/** An ordered list of actions; empty when desired and actual agree. */
export interface Plan {
  readonly actions: readonly Action[]
  readonly summary: PlanSummary
  /** Every action applies live (no restart needed). */
  readonly live: boolean
}

export type IssueSeverity = 'error' | 'warning'

/** Something `validate` found; an `error` stops the apply before it touches anything. */
export interface ValidationIssue {
  readonly severity: IssueSeverity
  /** Stable, e.g. `QE_LINK_MISSING`, `QE_ROUTE_CONFLICT`, `QE_DEFAULT_ROUTE`. */
  readonly code: string
  readonly message: string
}
