/**
 * Running the tools the lab drives. The lab is a test harness, so it shells
 * out (`ip`, `tc`, `nft`, `iperf3`, `ping`); the product itself never does.
 *
 * Every process the lab leaves running (delay lines, daemons, iperf3
 * servers) carries `QEL_RUN=<run id>` in its environment, so `lab down`
 * finds it through /proc even when its namespace is already gone.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { LabCommandError } from './errors.js'

/** The environment variable that marks a process as started by a lab run. */
export const RUN_ENV = 'QEL_RUN'

export interface RunOptions {
  /** Written to the command's stdin, then stdin is closed. */
  input?: string
  /** Kill the command after this many milliseconds (default 30 s). */
  timeoutMs?: number
  /** Resolve instead of throwing when the command exits non-zero. */
  allowFail?: boolean
  signal?: AbortSignal
}

export interface RunResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `cmd args…` to completion; throws LabCommandError (with stderr) on a non-zero exit unless `allowFail`. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(new LabCommandError(`${describe(cmd, args)}: ${err.message}`, { cause: err }))
    })
    child.on('close', (code, sig) => {
      clearTimeout(timer)
      const rc = code ?? 128
      if (rc !== 0 && !opts.allowFail) {
        const why = sig ? `killed by ${sig}` : `exit ${rc}`
        reject(new LabCommandError(`${describe(cmd, args)} failed (${why}): ${stderr.trim() || stdout.trim()}`))
        return
      }
      resolve({ code: rc, stdout, stderr })
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(opts.input ?? '')
  })
}

/** Runs a command inside network namespace `ns` (`ip netns exec`). */
export function runIn(ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts)
}

/** Runs many `ip` commands in one process (`ip -n NS -batch -`); each line is one command without the leading `ip` (batch lines take no options, so `family` applies to all). */
export async function ipBatch(ns: string | null, lines: readonly string[], family?: '-4' | '-6'): Promise<void> {
  if (lines.length === 0) return
  const args = [...(family ? [family] : []), ...(ns ? ['-n', ns] : []), '-batch', '-']
  await run('ip', args, { input: lines.join('\n') + '\n' })
}

export interface SpawnInOptions {
  runId: string
  /** Where stdout/stderr go: 'pipe' (the caller reads them), or a file descriptor. */
  stdio?: SpawnOptions['stdio']
  /** Start in its own session, so it outlives the lab command (used by `lab up`). */
  detached?: boolean
  /** Extra environment variables. */
  env?: Record<string, string>
}

/** Starts a long-running process inside `ns`, marked with the run id. `ip netns exec` execs, so the pid is the program's own. */
export function spawnIn(ns: string, cmd: string, args: readonly string[], opts: SpawnInOptions): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
    stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
    env: { ...process.env, ...opts.env, [RUN_ENV]: opts.runId },
  })
  if (opts.detached) child.unref()
  return child
}

/** Resolves when `child` exits (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const done = exited(child)
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await done
  clearTimeout(timer)
}

function describe(cmd: string, args: readonly string[]): string {
  const line = [cmd, ...args].join(' ')
  return line.length > 160 ? line.slice(0, 157) + '...' : line
}

/** Polls `cond` every `pollMs` until it holds or `deadlineMs` pass: how long it took, or null. */
export async function timeUntil(cond: () => Promise<boolean>, deadlineMs: number, pollMs = 25): Promise<number | null> {
  const t0 = Date.now()
  while (Date.now() - t0 < deadlineMs) {
    if (await cond()) return Date.now() - t0
    await new Promise((r) => setTimeout(r, pollMs))
  }
  return null
}
