/**
 * Apply-with-confirm: a change applied with `quicether apply --confirm 60s`
 * is reverted by itself unless `quicether confirm` comes in time. For changes
 * made over the very tunnel they change: a change that cuts the operator off
 * undoes itself.
 *
 * The window holds one pending change at a time; arming a new one drops the
 * old (its change stays applied, and unconfirmed changes are the operator's
 * to confirm or revert). What commit and revert do is the caller's: the daemon
 * writes the config file on commit and re-applies the previous text on revert.
 */
import { QeError } from '../errors.js'
import type { Logger } from '../log.js'

/** `quicether confirm` with no apply waiting for it. */
export class NothingToConfirmError extends QeError {
  override readonly code = 'QE_NOTHING_TO_CONFIRM'
  constructor(message = 'no apply is waiting for confirmation', options?: ErrorOptions) {
    super(message, options)
    this.name = 'NothingToConfirmError'
  }
}

export interface PendingConfirm {
  readonly file: string
  /** ISO time after which the change reverts. */
  readonly deadline: string
}

interface Pending {
  readonly file: string
  readonly deadline: number
  readonly timer: NodeJS.Timeout
  readonly commit: () => Promise<void>
}

export class ConfirmWindow {
  readonly #log: Logger
  #pending: Pending | null = null

  constructor(components: { log: Logger }) {
    this.#log = components.log
  }

  /** Starts the countdown: `revert` runs after `ms` unless `confirm()` runs `commit` first. */
  arm(p: { file: string; ms: number; commit: () => Promise<void>; revert: () => Promise<void> }): PendingConfirm {
    this.clear()
    const deadline = Date.now() + p.ms
    const timer = setTimeout(() => {
      this.#pending = null
      this.#log.warn({ file: p.file }, 'apply not confirmed in time: reverting')
      p.revert().catch((err: Error) => this.#log.error({ err: err.message }, 'revert failed'))
    }, p.ms)
    timer.unref()
    this.#pending = { file: p.file, deadline, timer, commit: p.commit }
    this.#log.info({ file: p.file, confirmWithinMs: p.ms }, 'applied; waiting for quicether confirm')
    return { file: p.file, deadline: new Date(deadline).toISOString() }
  }

  /** Keeps the pending change (runs its commit); throws NothingToConfirmError when none waits. */
  async confirm(): Promise<{ confirmed: true; file: string }> {
    const p = this.#pending
    if (!p) throw new NothingToConfirmError()
    this.clear()
    await p.commit()
    this.#log.info({ file: p.file }, 'apply confirmed')
    return { confirmed: true, file: p.file }
  }

  /** Drops the pending change without reverting it (a newer apply, or the daemon stops). */
  clear(): void {
    if (this.#pending) clearTimeout(this.#pending.timer)
    this.#pending = null
  }

  status(): PendingConfirm | null {
    const p = this.#pending
    return p ? { file: p.file, deadline: new Date(p.deadline).toISOString() } : null
  }
}
