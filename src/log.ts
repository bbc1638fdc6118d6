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
