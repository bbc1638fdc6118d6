/**
 * The reconciler's public face. The daemon builds a `DesiredState` (with
 * `desiredFromConfig` from `src/state/desired.ts`), hands it to
 * `Reconciler.apply()`, and gets an `ApplyResult` back; drift repair runs by
 * itself between applies once `start()` was called.
 *
 *   observe() → diff(desired, actual) → validate → apply → verify → commit
 *                                                     └─ on failure: roll back to the checkpoint
 */
import type { Logger } from '../log.js'
import type { SystemAdapter } from '../system/types.js'
import type { Action, ActualState, DesiredState, Plan, ValidationIssue } from '../state/types.js'

export interface ReconcilerInit {
  /** Quiet time after the last kernel event before a drift check (ms). Default 100. */
  readonly debounceMs?: number
  /** Slow periodic drift check (ms); 0 turns it off. Default 30,000. */
  readonly periodicMs?: number
  /** Read-backs `verify` makes before it declares a mismatch. Default 5. */
  readonly verifyAttempts?: number
  /** Pause between read-backs (ms), doubled each time. Default 20. */
  readonly verifyDelayMs?: number
  /** Actions of one phase in flight at once. Default 256. */
  readonly window?: number
  /** Attempts per action when its error is `retryable`. Default 3. */
  readonly actionAttempts?: number
  /**
   * Fault injection for tests: the n-th action (1-based, counted within each
   * forward apply, never during a rollback) fails with `InjectedFaultError`
   * instead of reaching the kernel. `null`/absent: off.
   */
  readonly failAt?: number | null
}

export interface ReconcilerComponents {
  readonly system: SystemAdapter
  /** A child logger; each apply logs one line (plan summary and result). */
  readonly log: Logger
  /** Told of every finished apply, repair and cleanup (metrics count and time them). */
  readonly onResult?: (result: ApplyResult) => void
}

/** What started an apply. */
export type ApplyTrigger = 'desired' | 'drift' | 'periodic' | 'cleanup'

export interface ErrorInfo {
  readonly code: string
  readonly message: string
  readonly retryable: boolean
}

export interface ActionFailure {
  /** 0-based position in `plan.actions`. */
  readonly index: number
  readonly action: Action
  readonly error: ErrorInfo
}

export interface ApplyResult {
  /** Desired state reached and verified (or nothing to do). */
  readonly ok: boolean
  readonly trigger: ApplyTrigger
  readonly plan: Plan
  /** Validation issues; any `error` means nothing was applied. */
  readonly issues: readonly ValidationIssue[]
  /** Actions that succeeded before the end or the failure. */
  readonly applied: number
  /** The action that failed and why (`null` if none failed). */
  readonly failed: ActionFailure | null
  /** `skipped` when nothing was applied. `mismatch`: the read-back never matched (this fails the apply). */
  readonly verify: 'ok' | 'mismatch' | 'skipped'
  /** What the read-back still differed in, rendered (empty unless `mismatch`). */
  readonly verifyDiff: readonly string[]
  /** The checkpoint was restored and read back equal (after a failure). */
  readonly rolledBack: boolean
  /** Restore steps that failed during the rollback (empty when `rolledBack`). */
  readonly rollbackFailures: readonly ActionFailure[]
  /** The rollback could not even read the kernel (empty when `rolledBack`). */
  readonly rollbackError: ErrorInfo | null
  /** Any other failure (observe failed, validation error…); `null` when ok. */
  readonly error: ErrorInfo | null
  readonly startedAt: string
  readonly durationMs: number
}

/**
 * The reconciler of the kernel slice. Constructors wire, `start()` acts.
 * All operations are serialized: an apply never interleaves with another
 * apply, a drift repair or a cleanup.
 */
export interface ReconcilerApi {
  /**
   * Subscribes to kernel events and starts the periodic check. Applies
   * nothing by itself. Neither the event socket nor the timers keep the
   * process alive (the daemon's other handles do).
   */
  start(): Promise<void>
  /** Stops watching. Leaves the kernel as it is (use `cleanup()` for a clean stop). */
  stop(): Promise<void>
  /**
   * Makes `desired` the truth: observe, diff, validate, apply, verify; commit
   * on success (drift repair then holds the kernel to it), roll back to the
   * checkpoint on failure (the previous desired state stays committed).
   * At a start after a crash, this adopts what the last run left: equal
   * objects stay, objects no longer desired go.
   */
  apply(desired: DesiredState): Promise<ApplyResult>
  /** Dry run: the plan `apply(desired)` would run now. */
  plan(desired: DesiredState): Promise<{ plan: Plan; issues: ValidationIssue[]; actual: ActualState }>
  /** Reads our slice of the kernel (for `status`, and as the `observe` step). */
  observe(desired?: DesiredState | null): Promise<ActualState>
  /**
   * Removes every object we own (routes, rules, the addresses of the links we
   * managed); restores sysctls we changed. Forgets `desired`.
   */
  cleanup(): Promise<ApplyResult>
  /** The committed desired state (`null` before the first successful apply / after cleanup). */
  readonly desired: DesiredState | null
  /** The last apply of any trigger. */
  readonly lastResult: ApplyResult | null
}
