/**
 * Removing what lab runs left behind: `quicether lab down`, and every run's
 * own stop. Everything is found by name or mark, never from in-memory state,
 * so this also cleans up after a crash or a `kill -9` of the lab:
 *
 *   processes   marked QEL_RUN=<run> in their environment, or living in a lab namespace
 *   namespaces  /run/netns/qel-*            (their veths, TUNs, qdiscs and tables go with them)
 *   host links  qel-* in the host namespace (the lab creates none, but a foreign tool might have)
 *   nft tables  qel-* in the host namespace (likewise)
 *   temp dirs   <tmp>/qel-<run>
 *   sockets     /var/run/wireguard/qel-*.sock (wireguard-go's, from benchmarks)
 */
import { readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RUN_ENV, run } from './exec.js'
import { deleteNetns, listLabNetns, netnsPids } from './netns.js'
import { LAB_PREFIX, isLabName, isRunId } from './names.js'

export interface TeardownReport {
  readonly processes: number[]
  readonly namespaces: string[]
  readonly links: string[]
  readonly tables: string[]
  readonly dirs: string[]
}

export interface TeardownOptions {
  /** Only this run's leftovers; null = every lab run's. */
  readonly runId?: string | null
  /** Where temp dirs live (default: the OS temp dir). */
  readonly tmpBase?: string
  /** How long processes get after SIGTERM before SIGKILL. */
  readonly graceMs?: number
}

/** Removes every leftover of run `runId` (or of all runs); safe to run any number of times. */
export async function labDown(opts: TeardownOptions = {}): Promise<TeardownReport> {
  const runId = opts.runId ?? null
  const namespaces = await listLabNetns(runId)
  const pids = new Set(await markedProcesses(runId))
  for (const ns of namespaces) for (const pid of await netnsPids(ns)) pids.add(pid)
  pids.delete(process.pid)
  const processes = [...pids].sort((a, b) => a - b)
  await terminate(processes, opts.graceMs ?? 3000)
  for (const ns of namespaces) await deleteNetns(ns)
  const links = await hostLinks(runId)
  for (const l of links) await run('ip', ['link', 'delete', l], { allowFail: true })
  const tables = await hostTables(runId)
  for (const t of tables) await run('nft', ['delete', 'table', ...t.split(' ')], { allowFail: true })
  const dirs = await tempDirs(runId, opts.tmpBase ?? tmpdir())
  for (const d of dirs) await rm(d, { recursive: true, force: true })
  for (const s of await wireguardSockets(runId)) await rm(s, { force: true })
  return { processes, namespaces, links, tables: tables.map((t) => t.split(' ')[1] ?? t), dirs }
}

/** Pids whose environment carries QEL_RUN (=runId, or any run). */
export async function markedProcesses(runId: string | null): Promise<number[]> {
  const out: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue
    let env: string
    try {
      env = await readFile(`/proc/${entry}/environ`, 'latin1')
    } catch {
      continue // gone, or a kernel thread
    }
    for (const kv of env.split('\0')) {
      if (!kv.startsWith(`${RUN_ENV}=`)) continue
      const id = kv.slice(RUN_ENV.length + 1)
      if (isRunId(id) && (runId === null || id === runId)) out.push(Number(entry))
    }
  }
  return out
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** SIGTERM (daemons remove their TUN and routes), then SIGKILL whatever is left after `graceMs`. */
async function terminate(pids: readonly number[], graceMs: number): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (pids.some(alive) && Date.now() < deadline) await sleep(50)
  for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL')
  const hard = Date.now() + 2000
  while (pids.some(alive) && Date.now() < hard) await sleep(20)
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

async function hostLinks(runId: string | null): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show'], { allowFail: true })
  const names: string[] = []
  for (const line of r.stdout.split('\n')) {
    const m = /^[0-9]+: ([^:@\s]+)/.exec(line)
    if (m?.[1] && isLabName(m[1], runId)) names.push(m[1])
  }
  return names
}

/** "family name" of host nftables tables with the lab prefix. */
async function hostTables(runId: string | null): Promise<string[]> {
  const r = await run('nft', ['list', 'tables'], { allowFail: true })
  const out: string[] = []
  for (const line of r.stdout.split('\n')) {
    const m = /^table (\S+) (\S+)/.exec(line.trim())
    if (m?.[1] && m[2] && isLabName(m[2], runId)) out.push(`${m[1]} ${m[2]}`)
  }
  return out
}

async function tempDirs(runId: string | null, base: string): Promise<string[]> {
  let entries: string[]
  try {
    entries = await readdir(base)
  } catch {
    return []
  }
  return entries
    .filter((e) => e.startsWith(LAB_PREFIX) && isRunId(e.slice(LAB_PREFIX.length)) && (runId === null || e === `${LAB_PREFIX}${runId}`))
    .map((e) => join(base, e))
}

const WG_SOCKET_DIR = '/var/run/wireguard'

async function wireguardSockets(runId: string | null): Promise<string[]> {
  let entries: string[]
  try {
    entries = await readdir(WG_SOCKET_DIR)
  } catch {
    return []
  }
  return entries.filter((e) => e.endsWith('.sock') && isLabName(e.slice(0, -5), runId)).map((e) => join(WG_SOCKET_DIR, e))
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
