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
