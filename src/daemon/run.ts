/**
 * `quicether start` without `--print-config` lands here: run the daemon in
 * the foreground until SIGINT/SIGTERM, reload on SIGHUP. Returns the exit
 * code; expected failures are printed as one line, never a stack trace.
 */
import { readFile } from 'node:fs/promises'
import { loadConfigText, type Config, type LoadResult } from '../config/index.js'
import { isQeError } from '../errors.js'
import type { Logger } from '../log.js'
import { Daemon } from './daemon.js'

export interface RunDaemonOptions {
  configPath: string | null
  log: Logger
  /** Loads a config text with the command-line flags applied; every reload uses it (default: no flags). */
  load?: (text: string, file: string) => Promise<LoadResult> | LoadResult
  /** Where one-line errors go (default stderr). */
  stderr?: NodeJS.WritableStream
}

export async function runDaemon(config: Config, opts: RunDaemonOptions): Promise<number> {
  const stderr = opts.stderr ?? process.stderr
  const text = opts.configPath ? await readFile(opts.configPath, 'utf8').catch(() => null) : null
  const daemon = new Daemon({ config, configPath: opts.configPath, load: opts.load ?? ((t, f) => loadConfigText(t, f)), configText: text }, { log: opts.log })
  try {
    await daemon.start()
  } catch (err) {
    if (!isQeError(err)) throw err
    stderr.write(`quicether: ${err.message} (${err.code})\n`)
    opts.log.error({ code: err.code, err: err.message }, 'start failed')
    return 1
  }
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      opts.log.info({ signal }, 'stopping')
      daemon.stop().then(
        () => resolve(0),
        (err: Error) => {
          opts.log.error({ err: err.message }, 'stop failed')
          resolve(1)
        },
      )
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGHUP', () => daemon.reloadNow())
  })
}
