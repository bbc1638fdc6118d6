/**
 * The node reconciler: the one writer of a node's whole state, the kernel
 * slice and the engine slice, as one transaction.
 *
 *   plan kernel + firewall + engine → check the firewall (ingress ports free)
 *     → apply kernel (it verifies, rolls itself back)
 *     → replace the node's nftables table (one transaction) → read its hash back
 *     → set engine tables (one versioned command) → read back
 *          └─ failure: each slice back to its last state, in reverse order
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
import { EngineVerifyError, FirewallVerifyError } from './errors.js'
import { errorInfo } from './execute.js'
import type { ApplyResult, ErrorInfo, ReconcilerApi } from './types.js'
import { diffFirewall, emptyFirewall, ingressIssues, type FirewallAction, type FirewallState } from '../state/firewall.js'
import type { FirewallPort } from '../system/nftables.js'
import { NftablesError } from '../system/errors.js'

/** Re-asserts the firewall table this often while started (someone may flush the ruleset). */
const FIREWALL_REPAIR_MS = 30_000

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
  /** The node's nftables table; absent: the firewall slice is not applied (nodes and tests without nftables). */
  readonly firewall?: FirewallPort
}

export interface FirewallApplyInfo {
  /** People's lines of what changed; empty when the table already matched (or no firewall port). */
  readonly actions: readonly FirewallAction[]
  readonly ok: boolean
  readonly error: ErrorInfo | null
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

/** A whole-node apply: the kernel's result, the firewall's, and the engine's. `ok` only when all are. */
export interface NodeApplyResult {
  readonly ok: boolean
  readonly kernel: ApplyResult
  readonly firewall: FirewallApplyInfo
  readonly engine: EngineApplyInfo
}

export interface NodePlan {
  readonly kernel: Plan
  readonly firewall: readonly FirewallAction[]
  readonly engine: readonly EngineAction[]
  readonly issues: readonly ValidationIssue[]
  readonly actual: ActualState
}

export class NodeReconciler {
  readonly #kernel: ReconcilerApi
  readonly #log: Logger
  readonly #attempts: number
  readonly #delayMs: number
  readonly #firewall: FirewallPort | null
  /** The firewall table last committed (what a failure restores); null: none installed by us in this process. */
  #firewallCommitted: FirewallState | null = null
  /** The TUN of the last firewall state asked for: names the table cleanup removes. */
  #firewallTun: string | null = null
  #firewallTimer: NodeJS.Timeout | null = null
  #engine: EngineTablesPort | null = null
  /** The engine state last committed (what a failed apply restores). */
  #engineCommitted: EngineState | null = null
  #version = 0
  #queue: Promise<unknown> = Promise.resolve()
  #last: NodeApplyResult | null = null

  constructor(init: NodeReconcilerInit, components: NodeReconcilerComponents) {
    this.#kernel = components.kernel
    this.#log = components.log
    this.#firewall = components.firewall ?? null
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
    const firewall = this.#firewall ? diffFirewall(desired.firewall, this.#firewallCommitted) : []
    return { kernel: plan, firewall, engine, issues: [...issues, ...(await this.#firewallIssues(desired.firewall))], actual }
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

    this.#firewallTun = desired.firewall.inputs.tun
    // The firewall's own checks come first: a refused ingress changes nothing at all.
    const fwIssues = await this.#firewallIssues(desired.firewall)
    if (fwIssues.length > 0) {
      const error = { code: fwIssues[0]!.code, message: fwIssues.map((i) => `${i.code}: ${i.message}`).join('; '), retryable: false }
      return this.#finish({ ok: false, kernel: notApplied(), firewall: { actions: diffFirewall(desired.firewall, this.#firewallCommitted), ok: false, error }, engine: skipped })
    }
    const kernel = await this.#kernel.apply(desired.kernel)
    const fwSkipped: FirewallApplyInfo = { actions: [], ok: true, error: null }
    if (!kernel.ok) return this.#finish({ ok: false, kernel, firewall: fwSkipped, engine: skipped })
    const prevFirewall = this.#firewallCommitted
    const { info: firewall, changed: fwChanged } = await this.#applyFirewall(desired.firewall)
    if (!firewall.ok) {
      if (fwChanged) await this.#restoreFirewall(prevFirewall, desired.firewall)
      await this.#restoreKernel(prevKernel)
      return this.#finish({ ok: false, kernel, firewall, engine: skipped })
    }
    if (engine === null) return this.#finish({ ok: true, kernel, firewall, engine: skipped })
    if (actions.length === 0 && have !== null) {
      this.#engineCommitted = desired.engine
      return this.#finish({ ok: true, kernel, firewall, engine: skipped })
    }

    const { error: err, posted } = await this.#setAndVerify(engine, desired.engine)
    if (err === null) {
      this.#engineCommitted = desired.engine
      return this.#finish({ ok: true, kernel, firewall, engine: { actions, ok: true, version: this.#version, error: null, rolledBack: false } })
    }

    // Put every side back: the engine to its last tables (unless nothing reached it), the firewall, the kernel.
    let rolledBack = true
    if (posted && prevEngine !== null && (await this.#setAndVerify(engine, prevEngine)).error !== null) rolledBack = false
    if (posted && prevEngine === null) rolledBack = false // a first set that failed half-way has nothing to go back to
    if (fwChanged && !(await this.#restoreFirewall(prevFirewall, desired.firewall))) rolledBack = false
    if (!(await this.#restoreKernel(prevKernel))) rolledBack = false
    return this.#finish({ ok: false, kernel, firewall, engine: { actions, ok: false, version: this.#version, error: errorInfo(err), rolledBack } })
  }

  /** Ingress ports something on this machine already listens on, and duplicates (`ingressIssues`): errors that stop the apply. */
  async #firewallIssues(want: FirewallState): Promise<ValidationIssue[]> {
    if (!this.#firewall || want.empty || want.inputs.ingress.length === 0) return []
    // Unreadable: only duplicates are refused here; nft still refuses bad rules.
    const listening = await this.#firewall.listening().catch(() => [])
    return ingressIssues(want, listening)
  }

  /**
   * Replaces the table when it differs from the committed one, then reads its
   * hash back. The first apply in a process first reads what is installed: a
   * table an earlier run left is adopted when equal, replaced (or removed)
   * when not. `changed`: nft ran and took the script (a failure later must
   * restore the table).
   */
  async #applyFirewall(want: FirewallState): Promise<{ info: FirewallApplyInfo; changed: boolean }> {
    const port = this.#firewall
    const same = { info: { actions: [], ok: true, error: null }, changed: false }
    if (!port) return same
    const have = this.#firewallCommitted
    if (have !== null && have.hash === want.hash) return same
    const actions = diffFirewall(want, have)
    if (have === null) {
      // Unreadable (no nft): an empty state needs nothing, and any other fails at apply with nft's own message.
      const installed = await port.readHash(want.table).catch(() => null)
      if (want.empty ? installed === null : installed === want.hash) {
        this.#firewallCommitted = want
        return same
      }
      if (installed !== null) actions.push({ op: 'del', text: `- firewall table ${want.table} left by an earlier run (qe:${installed || 'no hash'})` })
    }
    try {
      await port.apply(want)
      const back = await port.readHash(want.table)
      if (want.empty ? back !== null : back !== want.hash) throw new FirewallVerifyError(`the firewall table ${want.table} reads back ${back === null ? 'absent' : `qe:${back}`}, not ${want.empty ? 'absent' : `qe:${want.hash}`}`)
    } catch (err) {
      // nft takes a script whole or not at all; a read-back that differs is put back by the caller's rollback.
      const changed = !(err instanceof NftablesError)
      if (changed) this.#firewallCommitted = want
      return { info: { actions, ok: false, error: errorInfo(err as Error) }, changed }
    }
    this.#firewallCommitted = want
    // A renamed TUN names a new table: the old one goes (best effort, its own transaction).
    if (have !== null && have.table !== want.table) await this.#removeTable(have.inputs.tun)
    return { info: { actions, ok: true, error: null }, changed: true }
  }

  /** Puts the firewall back to `prev` (no table when null) after `tried` was applied. */
  async #restoreFirewall(prev: FirewallState | null, tried: FirewallState): Promise<boolean> {
    if (!this.#firewall) return true
    const s = prev ?? emptyFirewall(tried.inputs.tun)
    try {
      await this.#firewall.apply(s)
      this.#firewallCommitted = s
    } catch (err) {
      this.#log.error({ table: s.table, err: (err as Error).message }, 'cannot restore the firewall table')
      return false
    }
    if (s.table !== tried.table) return this.#removeTable(tried.inputs.tun)
    return true
  }

  /** Deletes the table of `tun` (none there is fine). */
  async #removeTable(tun: string): Promise<boolean> {
    try {
      await this.#firewall?.apply(emptyFirewall(tun))
      return true
    } catch (err) {
      this.#log.error({ table: emptyFirewall(tun).table, err: (err as Error).message }, 'cannot remove the firewall table')
      return false
    }
  }

  /**
   * Re-applies the committed firewall table when the installed one is gone or
   * differs (someone flushed the ruleset). Serialized with applies; a daemon
   * may call it, and `start()` runs it every 30 s. Resolves true when the table
   * is (now) as committed.
   */
  repairFirewall(): Promise<boolean> {
    return this.#serial(async () => {
      const port = this.#firewall
      const want = this.#firewallCommitted
      if (!port || !want || want.empty) return true
      const back = await port.readHash(want.table).catch(() => null)
      if (back === want.hash) return true
      try {
        await port.apply(want)
        const again = await port.readHash(want.table)
        if (again !== want.hash) throw new FirewallVerifyError(`the firewall table ${want.table} reads back ${again === null ? 'absent' : `qe:${again}`} after a repair, not qe:${want.hash}`)
        this.#log.warn({ table: want.table, found: back === null ? 'absent' : `qe:${back}` }, 'the firewall table was changed or removed: restored')
        return true
      } catch (err) {
        this.#log.error({ table: want.table, err: (err as Error).message }, 'cannot restore the firewall table')
        return false
      }
    })
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
    const fw = r.firewall
    if (fw.actions.length > 0 || fw.error) {
      const fields = { actions: fw.actions.map((a) => a.text), ...(fw.error ? { code: fw.error.code, error: fw.error.message } : {}) }
      if (fw.ok) this.#log.info(fields, `firewall table: ${fw.actions.length} change(s) applied`)
      else this.#log.error(fields, 'firewall table not applied: nothing changed')
    }
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

  /** Removes every kernel object we own and the firewall table; the engine's tables go with the engine. */
  cleanup(): Promise<ApplyResult> {
    return this.#serial(async () => {
      const port = this.#firewall
      const fw = this.#firewallCommitted
      const tun = fw?.inputs.tun ?? this.#firewallTun
      if (port && tun !== null) {
        // Committed: we know what is there. Not yet (the first apply failed before the firewall): look, a table an earlier run left goes too.
        const there = fw !== null ? !fw.empty : (await port.readHash(emptyFirewall(tun).table).catch(() => null)) !== null
        if (there) await this.#removeTable(tun)
      }
      this.#firewallCommitted = null
      return this.#kernel.cleanup()
    })
  }

  start(): Promise<void> {
    if (this.#firewall && this.#firewallTimer === null) {
      this.#firewallTimer = setInterval(() => void this.repairFirewall(), FIREWALL_REPAIR_MS)
      this.#firewallTimer.unref()
    }
    return this.#kernel.start()
  }

  async stop(): Promise<void> {
    if (this.#firewallTimer) clearInterval(this.#firewallTimer)
    this.#firewallTimer = null
    await this.#queue.catch(() => undefined)
    await this.#kernel.stop()
  }
}

/** The kernel's part of a result when nothing was tried (a firewall check refused the apply first). */
function notApplied(): ApplyResult {
  return {
    ok: true,
    trigger: 'desired',
    plan: { actions: [], summary: { add: 0, change: 0, del: 0 }, live: true },
    issues: [],
    applied: 0,
    failed: null,
    verify: 'skipped',
    verifyDiff: [],
    rolledBack: false,
    rollbackFailures: [],
    rollbackError: null,
    error: null,
    startedAt: new Date().toISOString(),
    durationMs: 0,
  }
}
