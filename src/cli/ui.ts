/**
 * `quicether ui --url`: the address of this node's web UI, with its token
 * (read from `<state-dir>/ui.token`, which the daemon makes when the UI
 * starts; reading it needs the rights the daemon has).
 */
import type { Command } from 'commander'
import { loadConfigFile } from '../config/index.js'
import { QeError, UsageError } from '../errors.js'
import { readUiToken } from '../observe/ui-server.js'
import { fmt } from '../observe/http.js'
import type { CliContext } from './context.js'
import { formatLines } from './report.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

/** The UI is off, or its token is not there (yet). */
export class UiNotAvailableError extends QeError {
  override readonly code = 'QE_UI_UNAVAILABLE'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UiNotAvailableError'
  }
}

export function registerUi(program: Command, ctx: CliContext): void {
  program
    .command('ui')
    .summary("print the web UI's address with its token (ui.listen of the config)")
    .option('-c, --config <path>', 'config file', DEFAULT_CONFIG_PATH)
    .option('--url', 'print the address (the default; the only thing this command does)')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const r = await loadConfigFile(opts.config)
      if (!r.ok) {
        ctx.io.stderr.write(formatLines(r.diagnostics, 'text'))
        throw new UsageError(`${opts.config} does not load`)
      }
      const at = r.config.ui.listen
      if (!at) throw new UiNotAvailableError(`${opts.config} sets no ui.listen: the web UI is off (add ui: { listen: 127.0.0.1:9587 })`)
      const token = await readUiToken(r.config.node.stateDir).catch((err: NodeJS.ErrnoException) => {
        throw new UiNotAvailableError(
          err.code === 'ENOENT'
            ? `no UI token in ${r.config.node.stateDir} yet: the daemon makes it when its UI starts (is it running?)`
            : `cannot read the UI token in ${r.config.node.stateDir}: ${err.code ?? err.message} (run as the daemon's user, e.g. with sudo)`,
        )
      })
      const host = at.host === '0.0.0.0' ? '127.0.0.1' : at.host === '::' ? '::1' : at.host
      const url = `http://${fmt({ host, port: at.port })}/#token=${token}`
      ctx.io.stdout.write(opts.json ? JSON.stringify({ url, listen: fmt(at) }) + '\n' : url + '\n')
    })
}
