/**
 * The `apply` step: run a plan's actions against the adapter, phase by
 * phase. Inside a phase, actions are independent, so up to `window` of them
 * are in flight at once (that is what makes 10,000 routes take well under a
 * second). An action whose error is `retryable` is tried again with backoff;
 * any other error stops the run (or, for rollbacks and cleanup, is recorded
 * and the run goes on).
 */
import type { SystemAdapter } from '../system/types.js'
import type { Action, Plan } from '../state/types.js'
import type { ActionFailure, ErrorInfo } from './types.js'
import { NetlinkError } from '../system/errors.js'
import { isQeError } from '../errors.js'
import { InjectedFaultError } from './errors.js'

export interface ExecuteOptions {
  readonly window: number
  readonly attempts: number
  /** 1-based index of the action that fails by injection; `null` = none. */
  readonly failAt: number | null
  /** Record failures and go on (rollback, cleanup) instead of stopping at the first. */
  readonly continueOnError: boolean
  /** Called after each action that succeeded (the reconciler records sysctl originals here). */
  readonly onApplied?: (action: Action, index: number) => void
}

export interface ExecuteOutcome {
  /** Actions that completed. */
  readonly applied: number
  /** In plan order; with `continueOnError: false`, at most the first few of one phase. */
  readonly failures: readonly ActionFailure[]
}

export function errorInfo(err: unknown): ErrorInfo {
  if (isQeError(err)) return { code: err.code, message: err.message, retryable: err.retryable }
  return { code: 'QE_BUG', message: err instanceof Error ? err.message : String(err), retryable: false }
}

/** A delete of something already gone is done, not failed: deletes are idempotent. */
function alreadyGone(action: Action, err: unknown): boolean {
  if (action.op !== 'del' || !(err instanceof NetlinkError)) return false
  return err.errno === 'ESRCH' || err.errno === 'ENOENT' || err.errno === 'EADDRNOTAVAIL'
}

async function write(system: SystemAdapter, a: Action): Promise<void> {
  switch (a.kind) {
    case 'sysctl':
      return system.writeSysctl(a.key, a.to)
    case 'link': {
      const change: { mtu?: number; up?: boolean } = {}
      if (a.mtu !== null) change.mtu = a.mtu.to
      if (a.up !== null) change.up = a.up.to
      return system.setLink(a.name, change)
    }
    case 'address':
      return a.op === 'add' ? system.addAddress(a.address) : system.delAddress(a.address)
    case 'route':
      if (a.op === 'add') return system.addRoute(a.route)
      if (a.op === 'replace') return system.replaceRoute(a.route)
      return system.delRoute(a.route)
    case 'rule':
      return a.op === 'add' ? system.addRule(a.rule) : system.delRule(a.rule)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function runAction(system: SystemAdapter, a: Action, attempts: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await write(system, a)
      return
    } catch (err) {
      if (alreadyGone(a, err)) return
      if (!(isQeError(err) && err.retryable) || attempt >= attempts) throw err
      await sleep(10 * 4 ** (attempt - 1))
    }
  }
}

export async function executePlan(system: SystemAdapter, plan: Plan, opts: ExecuteOptions): Promise<ExecuteOutcome> {
  const actions = plan.actions
  const failures: ActionFailure[] = []
  let applied = 0
  let started = 0
  let stop = false

  let i = 0
  while (i < actions.length && !stop) {
    const phase = actions[i]?.phase
    let end = i
    while (end < actions.length && actions[end]?.phase === phase) end++

    let next = i
    const worker = async (): Promise<void> => {
      while (next < end && !stop) {
        const index = next++
        const action = actions[index] as Action
        started++
        try {
          if (opts.failAt !== null && started === opts.failAt) {
            throw new InjectedFaultError(`injected fault at action ${started}: ${action.text}`)
          }
          await runAction(system, action, opts.attempts)
          applied++
          opts.onApplied?.(action, index)
        } catch (err) {
          failures.push({ index, action, error: errorInfo(err) })
          if (!opts.continueOnError) stop = true
        }
      }
    }
    const workers = Math.max(1, Math.min(opts.window, end - i))
    await Promise.all(Array.from({ length: workers }, worker))
    i = end
  }
  failures.sort((a, b) => a.index - b.index)
  return { applied, failures }
}
