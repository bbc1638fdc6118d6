/**
 * Helpers for root tests: a fresh `qet-<random>` network namespace per test
 * (removed in teardown, also on failure), `ip` inside it, and the netlink
 * driver (`test/reconcile/ns-driver.ts`) running inside it.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { nodeArgs } from '../e2e/fixtures/node-script.js'

export const isRoot = (): boolean => process.getuid?.() === 0

const DRIVER = fileURLToPath(new URL('../reconcile/ns-driver.ts', import.meta.url))

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Netns {
  readonly name: string
  /** Runs `ip -n <ns> …args` and returns stdout. Throws on a non-zero exit. */
  ip(...args: string[]): string
  /** `ip -j -n <ns> …args`, parsed. */
  ipJson<T = unknown>(...args: string[]): T
  /** The full picture the rollback test compares: routes of all tables, rules, addresses. */
  snapshot(): { routes: unknown[]; rules4: unknown[]; rules6: unknown[]; addrs: unknown[] }
}

export function createNetns(t: Teardown, opts: { tuns?: string[] } = {}): Netns {
  const name = `qet-${randomBytes(4).toString('hex')}`
  execFileSync('ip', ['netns', 'add', name])
  t.teardown(() => {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
    } catch {
      // already gone
    }
  })
  const ip = (...args: string[]): string => execFileSync('ip', ['-n', name, ...args], { encoding: 'utf8' })
  const ipJson = <T>(...args: string[]): T => JSON.parse(execFileSync('ip', ['-j', '-n', name, ...args], { encoding: 'utf8' }) || '[]') as T
  ip('link', 'set', 'lo', 'up')
  for (const tun of opts.tuns ?? ['qe0']) ip('tuntap', 'add', 'dev', tun, 'mode', 'tun')
  return {
    name,
    ip,
    ipJson,
    snapshot: () => ({
      // Without -4/-6, `ip route show table all` lists both families.
      // `linkdown` tracks the TUN's carrier, which the kernel flips on its own schedule
      // (nobody reads these test TUNs); it is not state anyone applies, so it is left out.
      routes: ipJson<{ flags?: string[] }[]>('route', 'show', 'table', 'all').map((r) => ({ ...r, flags: (r.flags ?? []).filter((f) => f !== 'linkdown') })),
      rules4: ipJson<unknown[]>('rule'),
      rules6: ipJson<unknown[]>('-6', 'rule'),
      addrs: ipJson<unknown[]>('addr'),
    }),
  }
}

export interface DriverReply<T = unknown> {
  ok: boolean
  result: T
  error?: { name?: string; code?: string; message?: string; retryable?: boolean }
}

export interface Driver {
  readonly pid: number
  readonly child: ChildProcessWithoutNullStreams
  /** Sends a command; resolves with the driver's reply. */
  call<T = unknown>(cmd: string, fields?: Record<string, unknown>): Promise<DriverReply<T>>
  /** Shorthand: `adapter` command; rejects when the adapter threw. */
  adapter<T = unknown>(method: string, ...args: unknown[]): Promise<T>
  /** stderr collected so far (logs). */
  stderr(): string
  /** Ends the driver politely (stdin closed). */
  close(): Promise<void>
  /** kill -9. */
  kill(): Promise<void>
}

/** Starts the netlink driver inside `ns`; killed in teardown. */
export async function startDriver(t: Teardown, ns: Netns, env: Record<string, string> = {}): Promise<Driver> {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, ...nodeArgs(DRIVER)], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const pending = new Map<number, (r: DriverReply) => void>()
  let nextId = 1
  let readyResolve: (pid: number) => void = () => undefined
  const ready = new Promise<number>((resolve) => (readyResolve = resolve))
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as { id?: number; event?: string; pid?: number } & DriverReply
    if (msg.event === 'ready') readyResolve(msg.pid ?? 0)
    else if (msg.id !== undefined) {
      pending.get(msg.id)?.(msg)
      pending.delete(msg.id)
    }
  })
  const died = exited.then(() => {
    throw new Error(`driver exited early: ${err}`)
  })
  const pid = await Promise.race([ready, died])
  const call = <T>(cmd: string, fields: Record<string, unknown> = {}): Promise<DriverReply<T>> => {
    const id = nextId++
    const reply = new Promise<DriverReply<T>>((resolve) => pending.set(id, resolve as (r: DriverReply) => void))
    child.stdin.write(`${JSON.stringify({ id, cmd, ...fields })}\n`)
    return Promise.race([reply, died])
  }
  return {
    pid,
    child,
    call,
    adapter: async <T>(method: string, ...args: unknown[]): Promise<T> => {
      const r = await call<T>('adapter', { method, args })
      if (!r.ok) throw Object.assign(new Error(r.error?.message ?? 'adapter call failed'), r.error)
      return r.result
    },
    stderr: () => err,
    close: async () => {
      child.stdin.end()
      await exited
    },
    kill: async () => {
      child.kill('SIGKILL')
      await exited
    },
  }
}

/** Polls `check` every 20 ms until it returns true or `ms` pass; returns the last result. */
export async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  for (;;) {
    if (check()) return true
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 20))
  }
}
