/**
 * The reconciler of the kernel slice: a level-based loop whose steps are
 * named functions over plain data.
 *
 *   observe → diff → validate → (checkpoint) apply → verify → commit
 *                                   └─ failure: roll back to the checkpoint
 *
 * The checkpoint is the observed state itself; rolling back is
 * `diff(checkpoint, now)` applied best-effort until it is empty, so a
 * failure anywhere restores exactly the objects we own, as they were.
 *
 * Drift repair: kernel events (filtered by `DriftFilter`, debounced) and a
 * slow periodic check re-run the loop against the committed state. Between
 * events nothing runs: no polling beyond the periodic check.
 */
import type { Logger } from '../log.js'
import type { KernelEvent, SystemAdapter, Unsubscribe } from '../system/types.js'
import type { Action, ActualState, DesiredState, KernelState, Plan, ValidationIssue } from '../state/types.js'
import type { ActionFailure, ApplyResult, ApplyTrigger, ErrorInfo, ReconcilerApi, ReconcilerComponents, ReconcilerInit } from './types.js'
import { diff } from '../state/diff.js'
import { validate, hasErrors } from '../state/validate.js'
import { EMPTY_STATE, normalizeState } from '../state/normalize.js'
import { summarizePlan } from '../state/render.js'
import { observe } from './observe.js'
import { executePlan, errorInfo } from './execute.js'
import { verify } from './verify.js'
import { DriftFilter } from './drift.js'
import { PlanInvalidError, VerifyMismatchError } from './errors.js'

/** Rounds of "observe, diff against the checkpoint, apply" a rollback makes. */
const ROLLBACK_ROUNDS = 3
/**
 * Plans at least this long run with kernel events muted: their own thousands
 * of events would only cost CPU, and the verify read-back that follows sees
 * anything else that changed meanwhile.
 */
const MUTE_EVENTS_FROM = 64
/** A burst of events delays a drift check at most this many debounce periods. */
const MAX_DEBOUNCE_PERIODS = 10

interface Settings {
  debounceMs: number
  periodicMs: number
  verifyAttempts: number
  verifyDelayMs: number
  window: number
  actionAttempts: number
  failAt: number | null
}

function settings(init: ReconcilerInit): Settings {
  return {
    debounceMs: init.debounceMs ?? 100,
    periodicMs: init.periodicMs ?? 30_000,
    verifyAttempts: init.verifyAttempts ?? 5,
    verifyDelayMs: init.verifyDelayMs ?? 20,
    window: init.window ?? 256,
    actionAttempts: init.actionAttempts ?? 3,
    failAt: init.failAt ?? null,
  }
}

type Rollback = Pick<ApplyResult, 'rolledBack' | 'rollbackFailures' | 'rollbackError'>

const EMPTY_PLAN: Plan = { actions: [], summary: { add: 0, change: 0, del: 0 }, live: true }

export class Reconciler implements ReconcilerApi {
  private readonly system: SystemAdapter
  private readonly log: Logger
  private readonly onResult: ((r: ApplyResult) => void) | undefined
  private readonly cfg: Settings
  private committed: KernelState | null = null
  /** The state an apply in progress is heading to (its own events are not drift). */
  private target: KernelState | null = null
  private targetFilter: { state: KernelState; filter: DriftFilter } | null = null
  private filter: DriftFilter | null = null
  private last: ApplyResult | null = null
  private queue: Promise<unknown> = Promise.resolve()
  private unsubscribe: Unsubscribe | null = null
  private periodicTimer: NodeJS.Timeout | null = null
  private debounceTimer: NodeJS.Timeout | null = null
  private firstEventAt = 0
  private repairQueued = false
  private running = false
  /** Links any desired state handed to us named: ours until a cleanup (whose desired state names none). */
  private readonly managedLinks = new Set<string>()
  /** Values sysctls had before we first changed them: restored when no longer desired, and by cleanup. */
  private readonly sysctlOriginals = new Map<string, string>()

  constructor(init: ReconcilerInit, components: ReconcilerComponents) {
    this.system = components.system
    this.log = components.log
    this.onResult = components.onResult
    this.cfg = settings(init)
  }

  get desired(): DesiredState | null {
    return this.committed
  }

  get lastResult(): ApplyResult | null {
    return this.last
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.listen()
    if (this.cfg.periodicMs > 0) {
      this.periodicTimer = setInterval(() => void this.repair('periodic'), this.cfg.periodicMs)
      this.periodicTimer.unref()
    }
  }

  async stop(): Promise<void> {
    this.running = false
    this.unsubscribe?.()
    this.unsubscribe = null
    if (this.periodicTimer) clearInterval(this.periodicTimer)
    if (this.debounceTimer) clearTimeout(this.debounceTimer)
    this.periodicTimer = null
    this.debounceTimer = null
    await this.queue.catch(() => undefined)
  }

  apply(desired: DesiredState): Promise<ApplyResult> {
    return this.serial(() => this.run('desired', normalizeState(desired)))
  }

  async plan(desired: DesiredState): Promise<{ plan: Plan; issues: ValidationIssue[]; actual: ActualState }> {
    const want = this.withSysctlRestores(normalizeState(desired))
    const actual = await observe(this.system, want, this.managedLinks)
    return { plan: diff(want, actual), issues: validate(want, actual), actual }
  }

  observe(desired: DesiredState | null = this.committed): Promise<ActualState> {
    return observe(this.system, desired, this.managedLinks)
  }

  cleanup(): Promise<ApplyResult> {
    return this.serial(async () => {
      const want: KernelState = { ...EMPTY_STATE, sysctls: Object.fromEntries(this.sysctlOriginals) }
      const result = await this.run('cleanup', want)
      if (result.ok) {
        this.committed = null
        this.filter = null
        this.sysctlOriginals.clear()
        this.managedLinks.clear()
      }
      return result
    })
  }

  // ---- the loop ----

  private listen(): void {
    if (this.running && this.unsubscribe === null) this.unsubscribe = this.system.subscribe((ev) => this.onEvent(ev))
  }

  private mute(): void {
    this.unsubscribe?.()
    this.unsubscribe = null
  }

  /** Runs a plan; large ones with events muted (events resume before the caller reads back). */
  private async execute(plan: Plan, opts: { failAt: number | null; continueOnError: boolean; onApplied?: (a: Action) => void }) {
    const muted = plan.actions.length >= MUTE_EVENTS_FROM && this.unsubscribe !== null
    if (muted) this.mute()
    try {
      return await executePlan(this.system, plan, { window: this.cfg.window, attempts: this.cfg.actionAttempts, ...opts })
    } finally {
      if (muted) this.listen()
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }

  /** Adds, for each sysctl we changed and no longer want, its original value. */
  private withSysctlRestores(desired: KernelState): KernelState {
    if (this.sysctlOriginals.size === 0) return desired
    const sysctls: Record<string, string> = { ...desired.sysctls }
    for (const [k, v] of this.sysctlOriginals) if (!(k in sysctls)) sysctls[k] = v
    return { ...desired, sysctls }
  }

  private recordApplied = (a: Action): void => {
    if (a.kind === 'sysctl' && a.from !== null && !this.sysctlOriginals.has(a.key)) this.sysctlOriginals.set(a.key, a.from)
  }

  private async run(trigger: ApplyTrigger, requested: KernelState): Promise<ApplyResult> {
    const startedAt = new Date()
    const t0 = performance.now()
    // Forward applies are transactions; repairs and cleanup are best-effort towards a known-good state.
    const transactional = trigger === 'desired'
    let desired = this.withSysctlRestores(requested)
    let plan = EMPTY_PLAN
    let issues: ValidationIssue[] = []
    const done = (r: Omit<ApplyResult, 'trigger' | 'plan' | 'issues' | 'startedAt' | 'durationMs'>): ApplyResult =>
      this.finish({ ...r, trigger, plan, issues, startedAt: startedAt.toISOString(), durationMs: Math.round(performance.now() - t0) })
    const base = { applied: 0, failed: null, verify: 'skipped', verifyDiff: [], rolledBack: false, rollbackFailures: [], rollbackError: null, error: null } as const

    for (const l of desired.links) this.managedLinks.add(l.name)
    let actual: ActualState
    try {
      actual = await observe(this.system, desired, this.managedLinks)
    } catch (err) {
      return done({ ...base, ok: false, error: errorInfo(err) })
    }
    if (trigger === 'cleanup') {
      // A sysctl that no longer exists (the key of a TUN the engine already removed) has nothing to restore.
      const sysctls = Object.fromEntries(Object.entries(desired.sysctls).filter(([k]) => k in actual.sysctls))
      desired = { ...desired, sysctls }
    }
    plan = diff(desired, actual)
    // Nothing to do needs no validation (the cheap path of every periodic check).
    issues = trigger === 'cleanup' || plan.actions.length === 0 ? [] : validate(desired, actual)
    if (hasErrors(issues)) {
      const msg = issues.filter((i) => i.severity === 'error').map((i) => i.message).join('; ')
      return done({ ...base, ok: false, error: errorInfo(new PlanInvalidError(msg)) })
    }
    if (plan.actions.length === 0) {
      if (trigger !== 'cleanup') this.commit(requested)
      return done({ ...base, ok: true })
    }

    this.target = desired
    try {
      const outcome = await this.execute(plan, {
        failAt: transactional ? this.cfg.failAt : null,
        continueOnError: !transactional,
        onApplied: this.recordApplied,
      })
      const failed = outcome.failures[0] ?? null
      if (failed !== null && transactional) {
        const rb = await this.rollback(actual)
        return done({ ...base, ...rb, ok: false, applied: outcome.applied, failed, error: failed.error })
      }
      const v = await verify(this.system, desired, this.cfg.verifyAttempts, this.cfg.verifyDelayMs, this.managedLinks)
      const verifyDiff = v.remaining.actions.map((a) => a.text)
      if (!v.ok) {
        const error: ErrorInfo = errorInfo(new VerifyMismatchError(`after apply the kernel still differs: ${verifyDiff.slice(0, 5).join('; ')}`))
        if (transactional) {
          const rb = await this.rollback(actual)
          return done({ ...base, ...rb, ok: false, applied: outcome.applied, verify: 'mismatch', verifyDiff, error })
        }
        return done({ ...base, ok: false, applied: outcome.applied, failed, verify: 'mismatch', verifyDiff, error: failed?.error ?? error })
      }
      if (trigger !== 'cleanup') this.commit(requested)
      return done({ ...base, ok: failed === null, applied: outcome.applied, failed, verify: 'ok', error: failed?.error ?? null })
    } finally {
      this.target = null
    }
  }

  /** Restores the checkpoint: diff against it and apply, until nothing differs (or rounds run out). */
  private async rollback(checkpoint: ActualState): Promise<Rollback> {
    let failures: ActionFailure[] = []
    let error: ErrorInfo | null = null
    this.target = checkpoint
    for (let round = 1; round <= ROLLBACK_ROUNDS; round++) {
      let now: ActualState
      try {
        now = await observe(this.system, checkpoint, this.managedLinks)
      } catch (err) {
        error = errorInfo(err)
        continue
      }
      error = null
      const p = diff(checkpoint, now)
      if (p.actions.length === 0) return { rolledBack: true, rollbackFailures: [], rollbackError: null }
      const out = await this.execute(p, { failAt: null, continueOnError: true })
      failures = [...out.failures]
    }
    return { rolledBack: false, rollbackFailures: failures, rollbackError: error }
  }

  private commit(desired: KernelState): void {
    const state = normalizeState(desired)
    this.committed = state
    this.filter = new DriftFilter(state).inherit(this.filter)
    // Originals of sysctls this state no longer names were just restored (and verified).
    for (const k of [...this.sysctlOriginals.keys()]) if (!(k in state.sysctls)) this.sysctlOriginals.delete(k)
  }

  private finish(result: ApplyResult): ApplyResult {
    this.last = result
    const fields = {
      trigger: result.trigger,
      plan: summarizePlan(result.plan),
      applied: result.applied,
      ms: result.durationMs,
      ...(result.plan.actions.length > 0 && result.plan.actions.length <= 20 ? { actions: result.plan.actions.map((a) => a.text) } : {}),
      ...(result.failed ? { failedAction: result.failed.action.text, failedIndex: result.failed.index } : {}),
      ...(result.error ? { code: result.error.code, error: result.error.message } : {}),
      ...(result.failed || result.verify === 'mismatch' ? { rolledBack: result.rolledBack, rollbackFailures: result.rollbackFailures.map((f) => f.action.text) } : {}),
    }
    const outcome = result.ok ? 'ok' : result.rolledBack ? 'failed, rolled back' : result.failed && result.trigger === 'desired' ? 'failed, ROLLBACK INCOMPLETE' : 'failed'
    const msg = `apply (${result.trigger}) ${summarizePlan(result.plan)}: ${outcome}`
    if (!result.ok) this.log.error(fields, msg)
    else if (result.plan.actions.length > 0 || result.trigger === 'desired' || result.trigger === 'cleanup') this.log.info(fields, msg)
    else this.log.debug(fields, msg)
    try {
      this.onResult?.(result)
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'apply observer failed')
    }
    return result
  }

  // ---- drift ----

  private onEvent(ev: KernelEvent): void {
    if (!this.running || this.committed === null) return
    let filter = this.filter
    // During an apply, compare against where it is heading (built once per target).
    if (this.target !== null) {
      if (this.targetFilter?.state !== this.target) {
        this.targetFilter = { state: this.target, filter: new DriftFilter(this.target).inherit(this.filter) }
      }
      filter = this.targetFilter.filter
    }
    if (filter?.isDrift(ev)) this.scheduleRepair()
  }

  private scheduleRepair(): void {
    const now = Date.now()
    if (this.debounceTimer === null) this.firstEventAt = now
    else clearTimeout(this.debounceTimer)
    const deadline = this.firstEventAt + this.cfg.debounceMs * MAX_DEBOUNCE_PERIODS
    const wait = Math.max(0, Math.min(this.cfg.debounceMs, deadline - now))
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null
      void this.repair('drift')
    }, wait)
    this.debounceTimer.unref()
  }

  /** Queues one check against the committed state (coalescing: at most one waits). */
  private async repair(trigger: 'drift' | 'periodic'): Promise<void> {
    if (!this.running || this.repairQueued || this.committed === null) return
    this.repairQueued = true
    await this.serial(async () => {
      this.repairQueued = false
      if (!this.running || this.committed === null) return
      await this.run(trigger, this.committed)
    }).catch((err: unknown) => this.log.error({ err }, 'drift check failed'))
  }
}
