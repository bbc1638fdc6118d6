import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

/**
 * One root logger per process. Quiet by default (`warn`): a daemon logs one
 * line per event a person would want (peer up/down, apply result), at `info`
 * when the config's `logging.level` asks for it. Components take a child:
 * `log.child({ component: 'engine' })`.
 */
export function createLogger(opts: { level?: LevelWithSilent; destination?: string | number } = {}): Logger {
  const dest = opts.destination ?? 2
  return pino(
    { level: opts.level ?? 'warn', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: typeof dest === 'string' ? dest : dest, sync: true, mkdir: typeof dest === 'string' }),
  )
}

/** A logger that drops everything: for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' })

/**
 * Refusals that may come in floods (a DHT's malformed queries, a relay's
 * strangers): one warning per kind per `everyMs`, which says how many were
 * quieted since the last one; the rest at debug.
 */
export class WarnLimiter {
  readonly #last = new Map<string, { at: number; since: number }>()

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly everyMs = 60_000,
  ) {}

  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.now()
    const w = this.#last.get(kind)
    if (!w || now - w.at >= this.everyMs) {
      this.log.warn({ kind, ...fields, since: w?.since ?? 0 }, msg)
      this.#last.set(kind, { at: now, since: 0 })
    } else {
      w.since++
      this.log.debug({ kind, ...fields }, msg)
    }
  }
}
