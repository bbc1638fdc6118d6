/**
 * `quicether invite`: asks the running daemon (the node holding the CA,
 * `network.ca-dir`) for a one-time token a new device redeems with
 * `quicether join`; prints it, as a QR code too.
 */
import type { Command } from 'commander'
import { parseDuration } from '../config/units.js'
import { UsageError } from '../errors.js'
import { controlRequest } from '../observe/control-socket.js'
import type { CliContext } from './context.js'
import { socketFor } from './control.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

/** The certificate's name and group shapes: checked here, so a bad one fails now and not at the join. */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const GROUP = /^[A-Za-z0-9_.-]{1,63}$/

interface InviteOpts {
  name: string
  groups?: string
  expires: string
  config: string
  socket?: string
  qr: boolean
  json?: boolean
}

export function registerInvite(program: Command, ctx: CliContext): void {
  program
    .command('invite')
    .summary('a one-time token that lets a new device join this network (run on the node holding the CA)')
    .requiredOption('--name <name>', 'the new node\'s name')
    .option('--groups <list>', 'its groups, comma-separated')
    .option('--expires <time>', 'how long the token is valid, e.g. 30m, 1h, 24h', '1h')
    .option('-c, --config <path>', 'config file (to find the control socket)', DEFAULT_CONFIG_PATH)
    .option('--socket <path>', 'control socket of the daemon')
    .option('--no-qr', 'do not print the QR code')
    .option('--json', 'print JSON')
    .action(async (opts: InviteOpts) => {
      const ttl = parseDuration(opts.expires)
      if (ttl.value === undefined || ttl.value <= 0) throw new UsageError(`--expires: '${opts.expires}' is not a duration (e.g. 30m, 1h)`)
      if (!NAME.test(opts.name)) throw new UsageError(`--name '${opts.name}' is not a valid node name: use lowercase letters, digits and dashes (1-63, no leading or trailing dash)`)
      const groups = (opts.groups ?? '').split(',').map((g) => g.trim()).filter(Boolean)
      const bad = groups.find((g) => !GROUP.test(g))
      if (bad !== undefined) throw new UsageError(`--groups: '${bad}' is not a group name (1-63 of letters, digits, '_', '.', '-')`)
      const r = (await controlRequest(await socketFor(opts), 'invite', { name: opts.name, groups, ttlMs: ttl.value })) as { token: string; expiresAt: number; name: string }
      const { stdout } = ctx.io
      if (opts.json) {
        stdout.write(JSON.stringify(r, null, 2) + '\n')
        return
      }
      stdout.write(`Invite for '${r.name}'${groups.length ? ` (groups: ${groups.join(', ')})` : ''}, valid once until ${new Date(r.expiresAt).toISOString()}:\n\n  ${r.token}\n\n`)
      if (opts.qr) {
        const { tokenQr } = await import('../discovery/invite.js') // only here: it loads the QR encoder
        stdout.write((await tokenQr(r.token)) + '\n')
      }
      stdout.write(`On the new device:\n\n  quicether join ${r.token}\n  quicether start\n`)
    })
}
