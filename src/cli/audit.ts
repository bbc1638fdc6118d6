/**
 * `quicether audit verify FILE…` and `quicether audit tail`: reading the
 * node's audit log (see src/audit/). Neither needs the daemon.
 *
 *   verify  exit 0 and `intact: N lines` when every line checks out; exit 1
 *           and `FILE:LINE: reason` at the first broken line. One FILE also
 *           takes its rotated older files (FILE.N … FILE.1) unless --only. The
 *           key: --key, else audit.key of the config (--config, or the default
 *           config when no FILE is named); without one only the chain is checked.
 *   tail    the last lines of audit.path, one human line each (or --json), and
 *           with --follow the new ones until Ctrl-C (a rotation is followed).
 */
import { open, readFile, stat } from 'node:fs/promises'
import type { Command } from 'commander'
import { loadConfigFile, type Config } from '../config/index.js'
import { ConfigInvalidError, UsageError } from '../errors.js'
import { readAuditKey } from '../audit/key.js'
import { verifyAudit } from '../audit/verify.js'
import { EXIT_INVALID, EXIT_OK, type CliContext, type TextSink } from './context.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

interface VerifyOpts {
  key?: string
  config?: string
  only?: boolean
  json?: boolean
}

interface TailOpts {
  config: string
  lines: string
  follow?: boolean
  json?: boolean
  file?: string
}

export function registerAuditCommands(program: Command, ctx: CliContext): void {
  const { stdout, stderr } = ctx.io
  const audit = program.command('audit').summary('check and read the tamper-evident audit log')

  audit
    .command('verify')
    .summary('check the hash chain (and the mac) of audit files: exit 0 intact, 1 at the first broken line')
    .argument('[files...]', 'audit files, oldest first (default: audit.path of the config and its rotated files)')
    .option('--key <path>', 'the HMAC key file (default: audit.key of the config)')
    .option('-c, --config <path>', `config file for audit.path and audit.key (default ${DEFAULT_CONFIG_PATH} when no FILE is named)`)
    .option('--only', 'check exactly the files named, not the rotated older ones')
    .option('--json', 'print the result as JSON')
    .action(async (files: string[], opts: VerifyOpts) => {
      const configPath = opts.config ?? (files.length === 0 ? DEFAULT_CONFIG_PATH : null)
      const config = configPath ? await loadConfig(configPath) : null
      if (files.length === 0) {
        if (!config?.audit.path) throw new UsageError(`name the audit files, or set audit.path in ${configPath}`)
        files = [config.audit.path]
      }
      const chain = files.length === 1 && !opts.only ? [...(await rotatedOlder(files[0]!)), files[0]!] : files
      const { key, note } = await keyFor(opts.key, config)
      const r = await verifyAudit(chain, key)
      if (opts.json) stdout.write(JSON.stringify({ files: chain, ...r }) + '\n')
      else if (r.broken) stdout.write(`${r.broken.file}:${r.broken.line}: ${r.broken.reason}\n`)
      else {
        const from = r.firstSeq !== null && r.firstSeq > 1 ? `; it starts at seq ${r.firstSeq} (older files rotated away or not named)` : ''
        stdout.write(`intact: ${r.lines} lines in ${chain.length} file${chain.length === 1 ? '' : 's'}${from}\n`)
      }
      if (note && !opts.json) stderr.write(`quicether: ${note}\n`)
      ctx.exitCode = r.ok ? EXIT_OK : EXIT_INVALID
    })

  audit
    .command('tail')
    .summary('print the last lines of the audit log (with --follow, new ones until Ctrl-C)')
    .option('-n, --lines <n>', 'how many lines', '20')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-c, --config <path>', 'config file (for audit.path)', DEFAULT_CONFIG_PATH)
    .option('--file <path>', 'read this file instead of audit.path')
    .option('--json', 'print the raw JSON lines')
    .action(async (opts: TailOpts) => {
      const n = Number(opts.lines)
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`-n: '${opts.lines}' is not a number of lines`)
      const path = opts.file ?? (await loadConfig(opts.config)).audit.path
      if (!path) throw new UsageError(`audit.path is not set in ${opts.config}: this node writes no audit log`)
      const show = (line: string) => stdout.write((opts.json ? line : humanLine(line)) + '\n')
      let text = ''
      try {
        text = await readFile(path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !opts.follow) throw new UsageError(`cannot read ${path}: ${(err as Error).message}`)
      }
      const complete = text.lastIndexOf('\n') + 1
      const rows = text.slice(0, complete).split('\n').slice(0, -1)
      for (const l of n === 0 ? [] : rows.slice(-n)) show(l)
      if (opts.follow) await follow(path, Buffer.byteLength(text.slice(0, complete)), show, stderr)
    })
}

async function loadConfig(path: string): Promise<Config> {
  const r = await loadConfigFile(path)
  if (!r.ok) {
    const first = r.diagnostics.find((d) => d.severity === 'error')
    throw new ConfigInvalidError(`${path} is not a valid config${first ? `: ${first.message}` : ''}`)
  }
  return r.config
}

/** FILE.N … FILE.1 that exist, oldest first (stops at the first gap). */
async function rotatedOlder(file: string): Promise<string[]> {
  const out: string[] = []
  for (let i = 1; ; i++) {
    const f = `${file}.${i}`
    if (!(await stat(f).then((s) => s.isFile(), () => false))) break
    out.unshift(f)
  }
  return out
}

async function keyFor(path: string | undefined, config: Config | null): Promise<{ key: Buffer | null; note: string | null }> {
  if (path) return { key: await readAuditKey(path), note: null }
  if (config) {
    const exists = await stat(config.audit.key).then(() => true, () => false)
    if (exists) return { key: await readAuditKey(config.audit.key), note: null }
  }
  return { key: null, note: 'no key (--key, or audit.key of the config): only the hash chain was checked, not the mac' }
}

/** `2025-01-02T03:04:05.678Z  #12  config-applied  generation=3 source=apply lines=4`. */
export function humanLine(line: string): string {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(line) as Record<string, unknown>
  } catch {
    return `(not JSON) ${line}`
  }
  const fields = Object.entries(o)
    .filter(([k]) => !['seq', 'at', 'type', 'prev', 'mac'].includes(k))
    .map(([k, v]) => `${k}=${short(v)}`)
  return `${String(o.at)}  #${String(o.seq)}  ${String(o.type)}  ${fields.join(' ')}`.trimEnd()
}

function short(v: unknown): string {
  const s = typeof v === 'string' && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)
  return s.length > 120 ? `${s.slice(0, 117)}...` : s
}

/** Prints lines as they are appended (a file that shrank or was replaced is read from its start) until SIGINT. */
async function follow(path: string, from: number, show: (line: string) => void, stderr: TextSink): Promise<void> {
  let offset = from
  let ino = await stat(path).then((s) => s.ino, () => 0)
  let partial = ''
  const stop = new AbortController()
  const onInt = () => stop.abort()
  process.once('SIGINT', onInt)
  try {
    while (!stop.signal.aborted) {
      await new Promise((r) => setTimeout(r, 250))
      const st = await stat(path).catch(() => null)
      if (!st) continue
      if (st.ino !== ino || st.size < offset) {
        ino = st.ino
        offset = 0
        partial = ''
      }
      if (st.size === offset) continue
      const fh = await open(path, 'r').catch(() => null)
      if (!fh) continue
      try {
        const b = Buffer.alloc(st.size - offset)
        const { bytesRead } = await fh.read(b, 0, b.length, offset)
        offset += bytesRead
        const text = partial + b.subarray(0, bytesRead).toString('utf8')
        const cut = text.lastIndexOf('\n')
        partial = text.slice(cut + 1)
        if (cut >= 0) for (const l of text.slice(0, cut).split('\n')) show(l)
      } catch (err) {
        stderr.write(`quicether: cannot read ${path}: ${(err as Error).message}\n`)
      } finally {
        await fh.close()
      }
    }
  } finally {
    process.off('SIGINT', onInt)
  }
}
