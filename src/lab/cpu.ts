/**
 * CPU time of processes, from /proc/<pid>/stat: user + system time of all
 * the process's threads (fields 14 and 15), in seconds. Used to report CPU
 * seconds per Gbit moved by tunnel daemons and the delay line.
 */
import { readFileSync } from 'node:fs'
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

/** Measures the CPU seconds a set of processes uses between `start()` and `stop()`. */
export class CpuMeter {
  #before = new Map<number, number>()

  constructor(private readonly pids: readonly number[]) {}

  start(): void {
    for (const pid of this.pids) this.#before.set(pid, cpuSecondsOf(pid))
  }

  /** Seconds used since `start()`, summed over the processes. */
  stop(): number {
    let total = 0
    for (const pid of this.pids) total += Math.max(0, cpuSecondsOf(pid) - (this.#before.get(pid) ?? 0))
    return total
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
