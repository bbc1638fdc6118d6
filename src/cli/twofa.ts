/**
 * The second factor (issue 16) from the command line.
 *
 * On the node that requires it (`auth.require-2fa`), working on
 * `<state-dir>/2fa.json` directly (src/auth/store.ts; a running daemon sees the
 * change at its next login or refresh):
 *   quicether 2fa enrol --peer NAME [--force]   a secret; prints its otpauth:// URI and a QR code
 *   quicether 2fa list                          enrolled peers, when, and their sessions
 *   quicether 2fa revoke --peer NAME            forgets the secret and ends the session
 *
 * On the client, through its own daemon (which forwards the code over the
 * control stream to the node as a `login` message, src/mesh/messages.ts):
 *   quicether login [--peer NODE] [--code 123456]
 *
 * The control-socket request `login`, for the daemon-side handler:
 *   request  { cmd: 'login', args: { peer?: string, code: string } }
 *            `peer`: the node to log in to (a name); absent: the one connected
 *            node that asked for a login (`login-needed`), an error when there
 *            is none or several. `code`: exactly six digits (checked here too).
 *   result   { peer: string, ok: true, expiresAt: number }
 *          | { peer: string, ok: false, reason: 'not-enrolled' | 'wrong-code' | 'replayed' | 'rate-limited', retryAfterMs?: number }
 *            that is, the node's `login-result` and the node's name; times in
 *            ms since the epoch.
 *   errors   (the control socket's `{ ok: false, error: { code, message } }`)
 *            QE_2FA_NO_PEER: no node to log in to (none asked, several did,
 *            or `peer` is not connected); QE_2FA_TIMEOUT: the node did not
 *            answer. An older daemon answers an unknown command.
 */
import type { Command } from 'commander'
import qrcode from 'qrcode-terminal'
import { SecondFactorStore } from '../auth/store.js'
import { TOTP_CODE } from '../auth/totp.js'
import type { VerifyRefusal } from '../auth/types.js'
import { loadConfigFile, type Config } from '../config/index.js'
import { QeError, UsageError } from '../errors.js'
import { controlRequest } from '../observe/control-socket.js'
import { EXIT_OK, type CliContext, type CliIo } from './context.js'
import { socketFor } from './control.js'
import { formatLines } from './report.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

/** What the daemon answers to `login` (see the top of this file). */
export type LoginResponse =
  | { readonly peer: string; readonly ok: true; readonly expiresAt: number }
  | { readonly peer: string; readonly ok: false; readonly reason: VerifyRefusal; readonly retryAfterMs?: number }

/** The node refused the code. */
export class LoginRefusedError extends QeError {
  override readonly code = 'QE_2FA_REFUSED'
  constructor(message = 'the code was refused', options?: ErrorOptions) {
    super(message, options)
    this.name = 'LoginRefusedError'
  }
}

/** `2fa revoke` for a peer that is not enrolled. */
export class NotEnrolledError extends QeError {
  override readonly code = 'QE_2FA_NOT_ENROLLED'
  constructor(message = 'the peer is not enrolled', options?: ErrorOptions) {
    super(message, options)
    this.name = 'NotEnrolledError'
  }
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

export function registerTwoFactorCommands(program: Command, ctx: CliContext): void {
  const { stdout } = ctx.io
  const twofa = program
    .command('2fa')
    .summary('second factor on a node with auth.require-2fa: enrol, list and revoke client peers')
    .description(
      'Run on the node that requires the second factor. Secrets live in <state-dir>/2fa.json (mode 0600).\n' +
        "A client logs in with 'quicether login' on its own machine.",
    )

  twofa
    .command('enrol')
    .alias('enroll')
    .summary('make a TOTP secret for a peer; print its otpauth:// URI and a QR code for an authenticator app')
    .requiredOption('--peer <name>', 'the client peer (its node name)')
    .option('-c, --config <path>', "this node's config (for node.state-dir)", DEFAULT_CONFIG_PATH)
    .option('--force', 'replace an existing enrolment (its session ends, the old secret stops working)')
    .option('--json', 'print JSON ({ peer, secret, uri })')
    .action(async (opts: { peer: string; config: string; force?: boolean; json?: boolean }) => {
      const peer = peerName(opts.peer)
      const config = await loadConfig(ctx.io, opts.config)
      const store = await SecondFactorStore.open({ stateDir: config.node.stateDir, sessionMs: config.auth.session })
      if (!config.auth.require2fa) ctx.io.stderr.write(`note: ${opts.config} does not set auth.require-2fa: this node does not ask for the second factor until it does\n`)
      const e = await store.enrol(peer, Date.now(), { force: opts.force === true })
      if (opts.json) {
        stdout.write(JSON.stringify({ peer, secret: e.secret, uri: e.uri }) + '\n')
      } else {
        stdout.write(`enrolled ${peer}: scan this with an authenticator app (or type the secret ${e.secret})\n\n`)
        qrcode.generate(e.uri, { small: true }, (qr) => stdout.write(qr + '\n'))
        stdout.write(`\n${e.uri}\n\nThis is the only time the secret is shown. On ${peer}: quicether login\n`)
      }
      ctx.exitCode = EXIT_OK
    })

  twofa
    .command('list')
    .summary('enrolled peers, when they were enrolled, and until when their sessions last')
    .option('-c, --config <path>', "this node's config (for node.state-dir)", DEFAULT_CONFIG_PATH)
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const store = await openStore(ctx.io, opts.config)
      const now = Date.now()
      const rows = store.list(now)
      if (opts.json) {
        stdout.write(JSON.stringify(rows, null, 2) + '\n')
      } else if (rows.length === 0) {
        stdout.write('no peers are enrolled (quicether 2fa enrol --peer NAME)\n')
      } else {
        const table = [['PEER', 'ENROLLED', 'SESSION'], ...rows.map((r) => [r.peer, iso(r.enrolledAt), sessionText(r.sessionExpiresAt, r.lockedUntil, now)])]
        const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
        for (const row of table) stdout.write(row.map((c, i) => (i < row.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ') + '\n')
      }
      ctx.exitCode = EXIT_OK
    })

  twofa
    .command('revoke')
    .summary("forget a peer's secret and end its session")
    .requiredOption('--peer <name>', 'the client peer')
    .option('-c, --config <path>', "this node's config (for node.state-dir)", DEFAULT_CONFIG_PATH)
    .action(async (opts: { peer: string; config: string }) => {
      const peer = peerName(opts.peer)
      const store = await openStore(ctx.io, opts.config)
      if (!(await store.revoke(peer))) throw new NotEnrolledError(`${peer} is not enrolled on this node`)
      stdout.write(`revoked ${peer}: its secret is gone and its session ended (enrol it again to let it log in)\n`)
      ctx.exitCode = EXIT_OK
    })

  program
    .command('login')
    .summary('log in to a node that requires a second factor (prompts for the code)')
    .description("Sends a code from your authenticator app to the node through this machine's daemon.")
    .option('--peer <node>', 'the node to log in to (default: the one that asked)')
    .option('--code <digits>', 'the six-digit code (default: prompt for it)')
    .option('-c, --config <path>', 'config file (to find the control socket)', DEFAULT_CONFIG_PATH)
    .option('--socket <path>', 'control socket of the daemon (default: control.socket of the config)')
    .option('--json', 'print JSON')
    .action(async (opts: { peer?: string; code?: string; config: string; socket?: string; json?: boolean }) => {
      const peer = opts.peer === undefined ? undefined : peerName(opts.peer)
      const socket = await socketFor(opts)
      const code = (opts.code ?? (await promptCode(ctx.io))).trim()
      if (!TOTP_CODE.test(code)) throw new UsageError('a code is exactly six digits')
      const res = (await controlRequest(socket, 'login', peer === undefined ? { code } : { peer, code }, 30_000)) as LoginResponse
      if (opts.json) stdout.write(JSON.stringify(res) + '\n')
      if (!res.ok) throw new LoginRefusedError(refusalText(res))
      if (!opts.json) stdout.write(`logged in to ${res.peer} until ${iso(res.expiresAt)} (${inText(res.expiresAt - Date.now())})\n`)
      ctx.exitCode = EXIT_OK
    })
}

/** What a refusal means for the person typing, with when to try again. */
export function refusalText(res: Extract<LoginResponse, { ok: false }>): string {
  const retry = res.retryAfterMs !== undefined && res.retryAfterMs > 0 ? `; try again ${inText(res.retryAfterMs)}` : ''
  switch (res.reason) {
    case 'not-enrolled':
      return `${res.peer} has no second factor for this node (on ${res.peer}: quicether 2fa enrol --peer <this node>)`
    case 'wrong-code':
      return `${res.peer} refused the code: wrong code (check the clock and the account in your app)${retry}`
    case 'replayed':
      return `${res.peer} refused the code: it was used already; wait for the next one${retry}`
    case 'rate-limited':
      return `${res.peer} refused the code: too many wrong codes${retry}`
  }
}

function peerName(name: string): string {
  if (!NAME.test(name)) throw new UsageError(`'${name}' is not a node name (lowercase letters, digits and dashes)`)
  return name
}

async function openStore(io: CliIo, configPath: string): Promise<SecondFactorStore> {
  const config = await loadConfig(io, configPath)
  return SecondFactorStore.open({ stateDir: config.node.stateDir, sessionMs: config.auth.session })
}

async function loadConfig(io: CliIo, path: string): Promise<Config> {
  const r = await loadConfigFile(path)
  if (!r.ok) {
    io.stderr.write(formatLines(r.diagnostics, 'text'))
    throw new UsageError(`${path} does not load`)
  }
  return r.config
}

/** Reads one line (the code) from stdin, prompting on stderr. Stops at the first newline or the end. */
async function promptCode(io: CliIo): Promise<string> {
  io.stderr.write('code from your authenticator app: ')
  let line = ''
  for await (const chunk of io.stdin) {
    line += typeof chunk === 'string' ? chunk : chunk.toString('utf8')
    const nl = line.indexOf('\n')
    if (nl >= 0) return line.slice(0, nl)
    if (line.length > 64) break
  }
  if (line === '') throw new UsageError('no code given (type it at the prompt, or pass --code)')
  return line
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** "in 12h", "in 4m 30s", "in 12s". */
function inText(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000))
  if (s >= 3600) return `in ${Math.floor(s / 3600)}h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`
  if (s >= 60) return `in ${Math.floor(s / 60)}m${s % 60 > 0 ? ` ${s % 60}s` : ''}`
  return `in ${s}s`
}

function sessionText(expiresAt: number | null, lockedUntil: number | null, now: number): string {
  const session = expiresAt === null ? 'none' : `until ${iso(expiresAt)}`
  return lockedUntil === null ? session : `${session} (locked out ${inText(lockedUntil - now)})`
}
