/**
 * CPU time of processes, from /proc/<pid>/stat: user + system time of all
 * the process's threads (fields 14 and 15), in seconds. Used to report CPU
 * seconds per Gbit moved by tunnel daemons and the delay line.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { execFileSync } from 'node:child_process'

let ticksPerSecond: number | null = null

/** The kernel's clock ticks per second (`getconf CLK_TCK`, almost always 100). */
export function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** utime + stime in clock ticks from the text of /proc/<pid>/stat (the command name may hold spaces and parentheses). */
export function parseProcStatTicks(text: string): number {
  const close = text.lastIndexOf(')')
  if (close < 0) throw new Error('not a /proc/<pid>/stat line')
  // Fields after the name start at field 3 (state); utime is field 14, stime field 15.
  const rest = text.slice(close + 2).trim().split(/\s+/)
  const utime = Number(rest[14 - 3])
  const stime = Number(rest[15 - 3])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('not a /proc/<pid>/stat line')
  return utime + stime
}

/** CPU seconds used so far by `pid`; 0 when the process is gone. */
export function cpuSecondsOf(pid: number): number {
  try {
    return parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / clockTicks()
  } catch {
    return 0
  }
}

/** The time a thread has waited, runnable, for a core: the second field of /proc/<pid>/task/<tid>/schedstat, ns. */
export function parseSchedstatWaitNs(text: string): number {
  const f = text.trim().split(/\s+/).map(Number)
  if (f.length < 3 || !f.every(Number.isFinite)) throw new Error('not a schedstat line')
  return f[1]!
}

/**
 * Seconds every thread of `pid` has waited in a run queue so far (summed
 * over its threads alive now); null when the process is gone or the kernel
 * keeps no schedstat.
 */
export function runqWaitSecondsOf(pid: number): number | null {
  try {
    let ns = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += parseSchedstatWaitNs(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'))
      } catch {
        // the thread ended meanwhile
      }
    }
    return ns / 1e9
  } catch {
    return null
  }
}

/**
 * Measures the CPU seconds a set of processes uses between `start()` and
 * `stop()`, and how long their threads waited for a core meanwhile
 * (`waitPerSecond`): on a machine whose cores the lab oversubscribes, a
 * packet crossing a daemon waits as long as its thread does, and latency
 * figures measure the machine as much as the tunnel.
 */
export class CpuMeter {
  #before = new Map<number, number>()
  #waitBefore = new Map<number, number | null>()
  #started = 0
  #waitPerSecond: number | null = null

  constructor(private readonly pids: readonly number[]) {}

  start(): void {
    this.#started = performance.now()
    for (const pid of this.pids) {
      this.#before.set(pid, cpuSecondsOf(pid))
      this.#waitBefore.set(pid, runqWaitSecondsOf(pid))
    }
  }

  /** Seconds used since `start()`, summed over the processes. */
  stop(): number {
    const wall = (performance.now() - this.#started) / 1000
    let total = 0
    let waited: number | null = 0
    for (const pid of this.pids) {
      total += Math.max(0, cpuSecondsOf(pid) - (this.#before.get(pid) ?? 0))
      const before = this.#waitBefore.get(pid)
      const now = runqWaitSecondsOf(pid)
      waited = waited === null || before == null || now === null ? null : waited + Math.max(0, now - before)
    }
    this.#waitPerSecond = waited !== null && wall > 0 && this.pids.length > 0 ? waited / wall : null
    return total
  }

  /**
   * Seconds the processes' threads waited, runnable, for a core per second
   * between `start()` and `stop()`, summed over their threads (1.5: as if
   * one and a half threads stood waiting the whole time); null before
   * `stop()`, or when the kernel keeps no schedstat.
   */
  get waitPerSecond(): number | null {
    return this.#waitPerSecond
  }
}

/** CPU seconds per Gbit moved; NaN when nothing moved. */
export function cpuPerGbit(cpuSeconds: number, bytes: number): number {
  const gbit = (bytes * 8) / 1e9
  return gbit > 0 ? cpuSeconds / gbit : NaN
}

/** The machine's CPU time so far from /proc/stat's first line: busy and total jiffies over every core. */
export function machineTicks(text: string = readFileSync('/proc/stat', 'utf8')): { busy: number; total: number } {
  const line = text.split('\n').find((l) => l.startsWith('cpu '))
  if (!line) throw new Error('no cpu line in /proc/stat')
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const total = f.reduce((s, x) => s + (Number.isFinite(x) ? x : 0), 0)
  // idle and iowait are the 4th and 5th fields; guest time is already in user.
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const guest = (f[8] ?? 0) + (f[9] ?? 0)
  return { busy: total - guest - idle, total: total - guest }
}

/**
 * How busy the whole machine was between `start()` and `stop()`, 0..1. The
 * lab emulates every link on this machine's cores: a run during which they
 * had no idle time may have been limited by the emulation, not the tunnel.
 */
export class MachineMeter {
  #before: { busy: number; total: number } | null = null

  start(): void {
    this.#before = machineTicks()
  }

  stop(): number | null {
    if (!this.#before) return null
    const now = machineTicks()
    const total = now.total - this.#before.total
    return total > 0 ? Math.min(1, Math.max(0, (now.busy - this.#before.busy) / total)) : null
  }
}
