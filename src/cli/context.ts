/**
 * What every command gets: where to write, where stdin comes from, and the
 * exit-code contract shared by all commands.
 *
 *   0  success (all files valid, the command did what was asked)
 *   1  the input is invalid, or the command refused (an existing config without --force)
 *   2  usage errors, unreadable files, a feature this build does not have
 *
 * Expected failures are QeError subclasses; `main` prints them as one line,
 * `quicether: <message> (<code>)`, and exits with `exitCodeFor(err)`.
 */
import { readFileSync } from 'node:fs'
import { QeError } from '../errors.js'

/** Something that takes text, like `process.stdout`. Only `write` is used. */
export interface TextSink {
  write(chunk: string): unknown
}

/** The process streams, or captures of them in tests. */
export interface CliIo {
  stdout: TextSink
  stderr: TextSink
  /** Read only by commands that are given `-`. */
  stdin: AsyncIterable<Buffer | string>
}

export const EXIT_OK = 0
export const EXIT_INVALID = 1
export const EXIT_USAGE = 2

/** Per-invocation state: the io to use and the exit code the action decided on. */
export interface CliContext {
  readonly io: CliIo
  exitCode: number
}

/** The config already exists and `--force` was not given. */
export class ConfigExistsError extends QeError {
  override readonly code = 'QE_CONFIG_EXISTS'
  constructor(message = 'the config file already exists (use --force to overwrite it)', options?: ErrorOptions) {
    super(message, options)
    this.name = 'ConfigExistsError'
  }
}

export { ConfigWriteError } from '../errors.js'

/** The command exists but this build lacks what it needs (the daemon, before it lands). */
export class NotAvailableError extends QeError {
  override readonly code = 'QE_NOT_AVAILABLE'
  constructor(message = 'this feature is not available in this build', options?: ErrorOptions) {
    super(message, options)
    this.name = 'NotAvailableError'
  }
}

/** Codes whose exit status is 2; every other QeError exits 1. */
const USAGE_CODES = new Set(['QE_USAGE', 'QE_CONFIG_READ', 'QE_NOT_AVAILABLE'])

export function exitCodeFor(err: QeError): number {
  return USAGE_CODES.has(err.code) ? EXIT_USAGE : EXIT_INVALID
}

/** The one line a user sees for an expected failure. */
export function formatError(err: QeError): string {
  const message = err.message.replace(/\s*\n\s*/g, ' ').trim()
  return `quicether: ${message} (${err.code})\n`
}

/**
 * The package root (where package.json and schemas/ live), from this file's
 * location: `src/cli/` when run from source, `dist/cli/` when built. Never the cwd.
 */
export const PACKAGE_ROOT = new URL('../../', import.meta.url)

let version: string | undefined

export function packageVersion(): string {
  if (version === undefined) {
    const pkg = JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8')) as { version?: unknown }
    version = typeof pkg.version === 'string' ? pkg.version : '0.0.0'
  }
  return version
}

/** "permission denied (EACCES)" from Node's "EACCES: permission denied, open '/x'". */
export function describeFsError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as NodeJS.ErrnoException).code
  const m = /^E[A-Z]+: ([^,]+)/.exec(err.message)
  return m?.[1] && code ? `${m[1]} (${code})` : err.message
}
