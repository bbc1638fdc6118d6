/**
 * One-way delay on a link: the delay line (`native/lab/delayline.c`, built
 * to `build/lab/delayline` by `make -C native/lab`) runs in the link's
 * router namespace with one TUN per delayed direction (a direction with
 * jitter but no delay is delayed too: by 0 ms plus its jitter). Policy routing keyed
 * on the incoming interface sends packets from a's veth into the a→b TUN
 * (and from b's veth into the b→a TUN); the delay line writes each packet
 * back into its TUN after the delay, and the main table routes it out of the
 * other veth. Packets re-entering from a TUN match no `iif` rule, so they
 * never loop.
 */
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'
import { LabCommandError, LabPrerequisiteError, LabSpecError } from './errors.js'
import { run, spawnIn, stopChild } from './exec.js'
import { deriveSeed } from './random.js'

/** Routing tables and rule priority used inside a router namespace (the namespace is the lab's own). */
export const DELAY_TABLE_FROM_A = 100
export const DELAY_TABLE_FROM_B = 101
export const DELAY_RULE_PREF = 1000

/** The repository root, from this file's place (src/lab or dist/lab). */
export function repoRoot(): string {
  // src/lab/ and dist/lab/ both sit two levels below the root.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..')
}

/**
 * Path of one of the lab's programs in `build/lab/` (native/lab/Makefile),
 * building them when it is missing or older than any of its `sources` in
 * native/lab (`node-gyp rebuild` wipes build/, so it may vanish under a
 * developer's feet); null when there is none and `make` failed. A stale
 * binary that cannot be rebuilt is still used.
 */
export async function labProgram(name: string, sources: readonly string[]): Promise<{ bin: string | null; error: string }> {
  const root = repoRoot()
  const bin = join(root, 'build', 'lab', name)
  const src = join(root, 'native', 'lab')
  const mtime = (p: string): number => (existsSync(p) ? statSync(p).mtimeMs : 0)
  const built = mtime(bin)
  if (built > 0 && built >= Math.max(...sources.map((f) => mtime(join(src, f))))) return { bin, error: '' }
  const r = await run('make', ['-s', '-C', src], { allowFail: true, timeoutMs: 60_000 }).catch(() => null)
  if ((r?.code === 0 || built > 0) && existsSync(bin)) return { bin, error: '' }
  return { bin: null, error: `'make -C ${src}' failed: ${r ? r.stderr.trim() : 'make is not installed'}` }
}

/** Path of the delay line binary (labProgram); throws LabPrerequisiteError with the build command when there is none (an old one refuses jitter). */
export async function delayLineBinary(): Promise<string> {
  const { bin, error } = await labProgram('delayline', ['delayline.c', 'jitter.h'])
  if (bin) return bin
  throw new LabPrerequisiteError(`the delay line is not built and ${error}`)
}

export interface DelayedDirection {
  /** The router veth the packets come in on. */
  readonly from: string
  /** The TUN that holds them. */
  readonly tun: string
  readonly delayMs: number
  /** Extra delay wandering over time in [0, jitterMs] (jitter.h), FIFO kept; default 0. */
  readonly jitterMs?: number
  readonly table: number
}

/** `ip -4 -batch` and `ip -6 -batch` lines that steer each delayed direction into its TUN. */
export function delayRoutes(dirs: readonly DelayedDirection[]): { ipv4: string[]; ipv6: string[] } {
  const ipv4: string[] = []
  const ipv6: string[] = []
  for (const d of dirs) {
    ipv4.push(`link set ${d.tun} up`)
    for (const lines of [ipv4, ipv6]) {
      lines.push(`route add default dev ${d.tun} table ${d.table}`)
      lines.push(`rule add iif ${d.from} lookup ${d.table} pref ${DELAY_RULE_PREF}`)
    }
  }
  return { ipv4, ipv6 }
}

/**
 * The seed of link `index`'s delay line: `deriveSeed(lab seed, index)`, or
 * `deriveSeed(run id, index)` when the lab has no seed. Each link draws its
 * own jitter, and a lab built again with the same seed draws the same (the
 * delay line draws stream i of the seed for its i-th direction).
 */
export function delayLineSeed(labSeed: number | null, runId: string, index: number): number {
  return deriveSeed(labSeed ?? runId, index)
}

/** The delay line's command-line arguments: the seed, then TUN:DELAY_US[:JITTER_US] per direction (no jitter: TUN:DELAY_US). */
export function delayLineArgs(dirs: readonly DelayedDirection[], seed: number): string[] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new LabSpecError(`delay line seed must be a whole number ≥ 0, not ${seed}`)
  const us = (ms: number): number => Math.round(ms * 1000)
  return ['--seed', String(seed), ...dirs.map((d) => (us(d.jitterMs ?? 0) > 0 ? `${d.tun}:${us(d.delayMs)}:${us(d.jitterMs ?? 0)}` : `${d.tun}:${us(d.delayMs)}`))]
}

/** One direction's exit counters. */
export interface DelayLineLineStats {
  readonly tun: string
  readonly delay_us: number
  readonly jitter_us: number
  readonly packets: number
  readonly bytes: number
  readonly drops_full: number
  readonly drops_write: number
  readonly held_max: number
  /** Due time minus arrival of the packets it held: the delays it applied (min = max = delay without jitter). */
  readonly applied_us: { min: number; mean: number; max: number }
  /** Packets held past their own draw so as not to overtake the one before (see native/lab/jitter.h). */
  readonly fifo_raised: number
}

/** Counters the delay line prints on exit. */
export interface DelayLineStats {
  readonly lines: readonly DelayLineLineStats[]
  readonly seed: number
  /** Release time minus due time, in microseconds (the tick is 250 µs, so ±125 µs is on time). */
  readonly late_us: { min: number; p50: number; p99: number; max: number }
  /** Share (0..1) of packets released within ±0.2 ms of their due time. */
  readonly within_200us: number
  /** `other`: a normal process; `fifo`: real-time (--rt); `demoted`: real-time until it ran too long without blocking. */
  readonly rt?: string
}

/** How closely a lab run's delay lines kept their delays: the worst of its links. */
export interface EmulationFigures {
  /** The delay lines' scheduling (DelayLineStats.rt), distinct values joined by `+`. */
  readonly scheduler: string
  readonly lines: number
  readonly packets: number
  /** The lowest share of a link's packets released within ±0.2 ms of due. */
  readonly within_200us: number
  /** The highest of the links' p99 and maximum release lateness, ms. */
  readonly late_p99_ms: number
  readonly late_max_ms: number
}

export function emulationFigures(stats: readonly DelayLineStats[]): EmulationFigures | null {
  const held = stats.filter((s) => s.lines.some((l) => l.packets > 0))
  if (held.length === 0) return null
  const ms = (us: number): number => Math.round(us) / 1000
  return {
    scheduler: [...new Set(held.map((s) => s.rt ?? 'other'))].sort().join('+'),
    lines: held.length,
    packets: held.reduce((n, s) => n + s.lines.reduce((m, l) => m + l.packets, 0), 0),
    within_200us: Math.min(...held.map((s) => s.within_200us)),
    late_p99_ms: ms(Math.max(...held.map((s) => s.late_us.p99))),
    late_max_ms: ms(Math.max(...held.map((s) => s.late_us.max))),
  }
}

export class DelayLine {
  #child: ChildProcess | null = null
  #stderr = ''

  constructor(
    private readonly init: { netns: string; runId: string; dirs: readonly DelayedDirection[]; seed: number; detached: boolean; logFd?: number },
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** Starts the program and resolves once every TUN exists ("ready"). */
  async start(): Promise<void> {
    const bin = await delayLineBinary()
    const { netns, runId, dirs, seed, detached, logFd } = this.init
    const child = spawnIn(netns, bin, delayLineArgs(dirs, seed), {
      runId,
      detached,
      stdio: ['ignore', 'pipe', logFd ?? 'pipe'],
    })
    this.#child = child
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.#stderr = (this.#stderr + d).slice(-4096)))
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => fail(new LabCommandError(`delay line in ${netns} did not start within 5 s`)), 5000)
      const fail = (err: Error): void => {
        clearTimeout(timer)
        child.kill('SIGKILL')
        reject(err)
      }
      child.once('error', (err) => fail(new LabCommandError(`delay line in ${netns}: ${err.message}`, { cause: err })))
      child.once('exit', (code) => fail(new LabCommandError(`delay line in ${netns} exited (${code ?? 'signal'}): ${this.#stderr.trim()}`)))
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d
        if (out.includes('ready\n')) {
          clearTimeout(timer)
          child.removeAllListeners('exit')
          resolve()
        }
      })
    })
    // A detached line must not keep the lab command alive through its pipes.
    if (detached) {
      child.stdout?.destroy()
      child.stderr?.destroy()
    }
  }

  /** Stops the program; returns its exit counters when it could print them. */
  async stop(): Promise<DelayLineStats | null> {
    const child = this.#child
    if (!child) return null
    this.#child = null
    await stopChild(child, 2000)
    const line = this.#stderr.split('\n').find((l) => l.includes('"delayline-stats"'))
    if (!line) return null
    try {
      return JSON.parse(line) as DelayLineStats
    } catch {
      return null
    }
  }
}
