/**
 * The node reconciler: the one writer of a node's whole state, the kernel
 * slice and the engine slice, as one transaction.
 *
 *   plan kernel + engine → apply kernel (it verifies, rolls itself back)
 *                        → set engine tables (one versioned command) → read back
 *                              └─ failure: engine back to its last tables, kernel back to its last state
 *
 * The kernel goes first: a kernel plan that fails leaves the engine as it
 * was. An engine step that fails (the tables are refused, or never read back
 * as set) restores the engine's previous tables and re-applies the previous
 * kernel state, so neither side runs ahead of the other.
 *
 * The engine is attached and detached by whoever owns its lifecycle: a new
 * engine has no tables, so the next apply sends them all.
 */
import type { Logger } from '../log.js'
import { diffEngine, engineStateEqual, normalizeEngineState, shortKey, type EngineAction, type EngineState, type PeerNamer } from '../state/engine.js'
import type { NodeState } from '../state/node.js'
import type { ActualState, KernelState, Plan, ValidationIssue } from '../state/types.js'
import { EngineVerifyError } from './errors.js'
import { errorInfo } from './execute.js'
import type { ApplyResult, ErrorInfo, ReconcilerApi } from './types.js'

/** The engine's tables as the reconciler writes and reads them. */
export type VersionedTables = EngineState & { readonly version: number }

/** What the node reconciler needs of the forwarding engine. */
export interface EngineTablesPort {
  /** Validates all tables (throws, posting nothing, on a bad one), then swaps them in as one command. */
  setTables(tables: VersionedTables): void
  /** What the engine has applied, read back from it; `null` before the first `setTables`. */
  readTables(): VersionedTables | null
}

/** Tries at putting the previous kernel state back after an engine failure, and the first pause between them. */
const KERNEL_RESTORE_ATTEMPTS = 3
const KERNEL_RESTORE_BACKOFF_MS = 100

export interface NodeReconcilerInit {
  /** Read-backs of the engine's tables before a mismatch is declared. Default 50. */
  readonly engineVerifyAttempts?: number
  /** Pause between read-backs, ms. Default 5. */
  readonly engineVerifyDelayMs?: number
}

export interface NodeReconcilerComponents {
  readonly kernel: ReconcilerApi
  readonly log: Logger
}

export interface EngineApplyInfo {
  /** The differences sent (for people); empty when the engine already had these tables. */
  readonly actions: readonly EngineAction[]
  readonly ok: boolean
  /** The tables version the engine runs after this apply (`null`: no engine attached). */
  readonly version: number | null
  readonly error: ErrorInfo | null
  /** After a failure: the engine's previous tables and the previous kernel state were put back. */
  readonly rolledBack: boolean
}

/** A whole-node apply: the kernel's result, and the engine's. `ok` only when both are. */
export interface NodeApplyResult {
  readonly ok: boolean
  readonly kernel: ApplyResult
  readonly engine: EngineApplyInfo
}

export interface NodePlan {
  readonly kernel: Plan
  readonly engine: readonly EngineAction[]
  readonly issues: readonly ValidationIssue[]
  readonly actual: ActualState
}

export class NodeReconciler {
  readonly #kernel: ReconcilerApi
  readonly #log: Logger
  readonly #attempts: number
  readonly #delayMs: number
  #engine: EngineTablesPort | null = null
  /** The engine state last committed (what a failed apply restores). */
  #engineCommitted: EngineState | null = null
  #version = 0
  #queue: Promise<unknown> = Promise.resolve()
  #last: NodeApplyResult | null = null

  constructor(init: NodeReconcilerInit, components: NodeReconcilerComponents) {
    this.#kernel = components.kernel
    this.#log = components.log
    this.#attempts = init.engineVerifyAttempts ?? 50
    this.#delayMs = init.engineVerifyDelayMs ?? 5
  }

  /** The kernel slice's reconciler (drift repair, cleanup). */
  get kernel(): ReconcilerApi {
    return this.#kernel
  }

  get lastResult(): NodeApplyResult | null {
    return this.#last
  }

  /**
   * A (new) engine to write to, or `null` when it stops. A new engine starts
   * with no tables, so the next apply sends all of them. Serialized with
   * applies, so an apply in flight finishes against the engine it started with.
   */
  attachEngine(engine: EngineTablesPort | null): Promise<void> {
    return this.#serial(async () => {
      this.#engine = engine
      this.#engineCommitted = null
      this.#version = engine?.readTables()?.version ?? 0
    })
  }

  /** Dry run: what `apply(desired)` would change now, in the kernel and in the engine. */
  async plan(desired: NodeState, name: PeerNamer = shortKey): Promise<NodePlan> {
    const { plan, issues, actual } = await this.#kernel.plan(desired.kernel)
    // With no engine attached, an apply sends it nothing.
    const engine = this.#engine ? diffEngine(desired.engine, this.#tryReadState(), name) : []
    return { kernel: plan, engine, issues, actual }
  }

  apply(desired: NodeState, name: PeerNamer = shortKey): Promise<NodeApplyResult> {
    return this.#serial(() => this.#apply(desired, name))
  }

  async #apply(desired: NodeState, name: PeerNamer): Promise<NodeApplyResult> {
    const prevKernel: KernelState | null = this.#kernel.desired
    const engine = this.#engine
    // An engine that cannot be read (stopping) is sent everything; the send then fails cleanly.
    const have = engine ? this.#tryReadState() : null
    // What a failure restores: the last committed tables, else what the engine ran before this apply.
    const prevEngine = this.#engineCommitted ?? have
    const actions = diffEngine(desired.engine, have, name)
    const skipped: EngineApplyInfo = { actions: [], ok: true, version: engine ? this.#version : null, error: null, rolledBack: false }

    const kernel = await this.#kernel.apply(desired.kernel)
    if (!kernel.ok) return this.#finish({ ok: false, kernel, engine: skipped })
    if (engine === null) return this.#finish({ ok: true, kernel, engine: skipped })
    if (actions.length === 0 && have !== null) {
      this.#engineCommitted = desired.engine
      return this.#finish({ ok: true, kernel, engine: skipped })
    }

    const { error: err, posted } = await this.#setAndVerify(engine, desired.engine)
    if (err === null) {
      this.#engineCommitted = desired.engine
      return this.#finish({ ok: true, kernel, engine: { actions, ok: true, version: this.#version, error: null, rolledBack: false } })
    }

    // Put both sides back: the engine to its last tables (unless nothing reached it), the kernel to its last state.
    let rolledBack = true
    if (posted && prevEngine !== null && (await this.#setAndVerify(engine, prevEngine)).error !== null) rolledBack = false
    if (posted && prevEngine === null) rolledBack = false // a first set that failed half-way has nothing to go back to
    if (!(await this.#restoreKernel(prevKernel))) rolledBack = false
    return this.#finish({ ok: false, kernel, engine: { actions, ok: false, version: this.#version, error: errorInfo(err), rolledBack } })
  }

  /**
   * Sends the tables under the next version and waits until the engine reads
   * back that version, equal. `posted` false: the engine refused them before
   * taking anything (it runs what it ran).
   */
  async #setAndVerify(engine: EngineTablesPort, state: EngineState): Promise<{ error: Error | null; posted: boolean }> {
    const version = this.#version + 1
    try {
      engine.setTables({ ...normalizeEngineState(state), version })
    } catch (err) {
      return { error: err as Error, posted: false }
    }
    this.#version = version
    for (let i = 0; i < this.#attempts; i++) {
      let back: VersionedTables | null
      try {
        back = engine.readTables()
      } catch (err) {
        return { error: err as Error, posted: true }
      }
      if (back !== null && back.version >= version) {
        if (back.version === version && engineStateEqual(back, state)) return { error: null, posted: true }
        return { error: new EngineVerifyError(`the engine reads back tables version ${back.version} that differ from version ${version} as set`), posted: true }
      }
      await new Promise((r) => setTimeout(r, this.#delayMs))
    }
    return { error: new EngineVerifyError(`the engine did not apply tables version ${version} within ${this.#attempts} read-backs`), posted: true }
  }

  /**
   * Puts the previous kernel state back. A restore that fails leaves the
   * kernel reconciler committed to the new state (its own rollback target),
   * and drift repair would hold the kernel there: so it is tried again, with
   * backoff, a bounded number of times.
   */
  async #restoreKernel(prev: KernelState | null): Promise<boolean> {
    for (let attempt = 0; attempt < KERNEL_RESTORE_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, KERNEL_RESTORE_BACKOFF_MS << (attempt - 1)))
      const back = prev !== null ? await this.#kernel.apply(prev) : await this.#kernel.cleanup()
      if (back.ok) return true
    }
    return false
  }

  /** The engine's tables in normal form; `null` when it has none, or cannot be read now. */
  #tryReadState(): EngineState | null {
    try {
      const t = this.#engine?.readTables() ?? null
      return t === null ? null : normalizeEngineState(t)
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cannot read the engine\'s tables')
      return null
    }
  }

  #finish(r: NodeApplyResult): NodeApplyResult {
    this.#last = r
    if (r.engine.actions.length > 0 || r.engine.error) {
      const fields = {
        version: r.engine.version,
        ...(r.engine.actions.length <= 20 ? { actions: r.engine.actions.map((a) => a.text) } : { changes: r.engine.actions.length }),
        ...(r.engine.error ? { code: r.engine.error.code, error: r.engine.error.message, rolledBack: r.engine.rolledBack } : {}),
      }
      if (r.engine.ok) this.#log.info(fields, `engine tables: ${r.engine.actions.length} change(s) applied`)
      else this.#log.error(fields, `engine tables not applied: ${r.engine.rolledBack ? 'kernel and engine rolled back' : 'ROLLBACK INCOMPLETE'}`)
    }
    return r
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn)
    this.#queue = next.catch(() => undefined)
    return next
  }

  /** Removes every kernel object we own; the engine's tables go with the engine. */
  cleanup(): Promise<ApplyResult> {
    return this.#serial(() => this.#kernel.cleanup())
  }

  start(): Promise<void> {
    return this.#kernel.start()
  }

  async stop(): Promise<void> {
    await this.#queue.catch(() => undefined)
    await this.#kernel.stop()
  }
}
