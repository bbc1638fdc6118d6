import { fstatSync } from 'node:fs'
import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

/**
 * One root logger per process. Quiet by default (`warn`): a daemon logs one
 * line per event a person would want (peer up/down, apply result), at `info`
 * when the config's `logging.level` asks for it. Components take a child:
 * `log.child({ component: 'engine' })`.
 *
 * `journal`: each JSON line is prefixed with its sd-daemon priority
 * (`<4>{"level":40,...}`), which the journal strips and files as the line's
 * priority, so `journalctl -p warning` filters. Default: `journalWanted()`.
 * Without it the output is plain pino JSON lines.
 */
export function createLogger(opts: { level?: LevelWithSilent; destination?: string | number; journal?: boolean } = {}): Logger {
  const dest = opts.destination ?? 2
  const journal = opts.journal ?? journalWanted(dest)
  return pino(
    {
      level: opts.level ?? 'warn',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(journal ? { hooks: { streamWrite: journalLine } } : {}),
    },
    pino.destination({ dest: typeof dest === 'string' ? dest : dest, sync: true, mkdir: typeof dest === 'string' }),
  )
}

/**
 * Whether log lines to `dest` should carry journal priorities:
 * QUICETHER_LOG_FORMAT=journal says so (the shipped unit sets it), any other
 * value (json) says no; unset, when `dest` is stdout/stderr and that fd is
 * the stream systemd connected to the journal (JOURNAL_STREAM is its
 * `dev:inode`; children inherit the variable even when their output goes
 * elsewhere, hence the check).
 */
export function journalWanted(dest: string | number, env: NodeJS.ProcessEnv = process.env): boolean {
  const format = env.QUICETHER_LOG_FORMAT
  if (format === 'journal') return true
  if (format !== undefined && format !== '') return false
  if (!env.JOURNAL_STREAM || (dest !== 1 && dest !== 2)) return false
  try {
    const st = fstatSync(dest)
    return env.JOURNAL_STREAM === `${st.dev}:${st.ino}`
  } catch {
    return false
  }
}

/** sd-daemon priority for a pino level number: fatal 2, error 3, warn 4, info 6, debug and trace 7. */
export function journalPriority(level: number): number {
  return level >= 60 ? 2 : level >= 50 ? 3 : level >= 40 ? 4 : level >= 30 ? 6 : 7
}

/** pino writes `{"level":N,...}\n`: the same line with `<P>` in front. */
function journalLine(line: string): string {
  const m = /^\{"level":(\d+)/.exec(line)
  return `<${m ? journalPriority(Number(m[1])) : 6}>${line}`
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
