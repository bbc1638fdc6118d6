/**
 * The machine's stalls while the lab measures latency (native/lab/stallmeter.c,
 * built to `build/lab/stallmeter` by `make -C native/lab`): a SCHED_FIFO
 * sleeper above everything the lab runs, so a late wake-up is time when
 * nothing of the lab could run (on a shared VM, the host stopping its vCPUs).
 * One 100 ms stall in a 10 s run puts five 20 ms-spaced pings past any bar:
 * the interactive figure is read beside this.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { labProgram } from './delay.js'
import { stopChild } from './exec.js'

export interface StallFigures {
  /** `fifo`: measured above everything the lab runs; `other`: SCHED_FIFO was refused. */
  readonly rt: 'fifo' | 'other'
  readonly samples: number
  readonly over_5ms: number
  readonly over_20ms: number
  readonly over_50ms: number
  readonly worst_ms: number
  /** Wake-ups' lateness past 1 ms, summed: the time the machine lost. */
  readonly late_ms: number
}

/** One stall: the span, wall-clock ms since the epoch, when nothing of the lab could run. */
export interface StallWindow {
  readonly startMs: number
  readonly endMs: number
}

/** The meter's stall lines (each wake-up over 5 ms late) as spans; lines it cannot read are left out. */
export function parseStallWindows(text: string): StallWindow[] {
  const out: StallWindow[] = []
  for (const line of text.split('\n')) {
    if (!line.includes('"event":"stall"')) continue
    try {
      const j = JSON.parse(line) as Record<string, unknown>
      const end = j['end_ms']
      const ms = j['ms']
      if (typeof end === 'number' && typeof ms === 'number' && Number.isFinite(end) && Number.isFinite(ms)) out.push({ startMs: end - ms, endMs: end })
    } catch {
      // a torn line: not a stall we can place
    }
  }
  return out
}

/**
 * `replies` (a ping's, each with its wall-clock arrival time) whose flight did not overlap a stall:
 * sent (arrival − RTT) before the stall began or answered after it ended, with `marginMs` of room
 * both sides for the two clocks' reading.
 */
export function outsideStalls<R extends { readonly atMs: number; readonly rttMs: number }>(replies: readonly R[], windows: readonly StallWindow[], marginMs = 1): R[] {
  return replies.filter((r) => !windows.some((w) => r.atMs - r.rttMs < w.endMs + marginMs && r.atMs > w.startMs - marginMs))
}

/** The meter's exit line, or null when `text` has none. */
export function parseStalls(text: string): StallFigures | null {
  const line = text.split('\n').find((l) => l.includes('"event":"stalls"'))
  if (!line) return null
  try {
    const j = JSON.parse(line) as Record<string, unknown>
    const num = (k: string): number => (typeof j[k] === 'number' ? (j[k] as number) : NaN)
    const f: StallFigures = { rt: j['rt'] === 'fifo' ? 'fifo' : 'other', samples: num('samples'), over_5ms: num('over_5ms'), over_20ms: num('over_20ms'), over_50ms: num('over_50ms'), worst_ms: num('worst_ms'), late_ms: num('late_ms') }
    return Object.values(f).every((v) => typeof v === 'string' || Number.isFinite(v)) ? f : null
  } catch {
    return null
  }
}

/** A running stall meter; `stop()` returns what it saw (null: it could not run). */
export class StallMeter {
  #child: ChildProcess | null
  #out = ''

  private constructor(child: ChildProcess | null) {
    this.#child = child
    child?.stdout?.setEncoding('utf8').on('data', (d: string) => (this.#out += d))
  }

  /** Starts the meter and waits until it runs (at most 2 s); a meter that cannot start measures nothing. */
  static async start(): Promise<StallMeter> {
    const { bin } = await labProgram('stallmeter', ['stallmeter.c'])
    if (!bin) return new StallMeter(null)
    const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'ignore'] })
    const m = new StallMeter(child)
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000)
      const check = (): void => {
        if (m.#out.includes('ready\n')) {
          clearTimeout(timer)
          resolve(true)
        }
      }
      child.stdout?.on('data', check)
      child.once('error', () => resolve(false))
      child.once('exit', () => resolve(false))
      check()
    })
    if (!ready) {
      await stopChild(child, 500)
      return new StallMeter(null)
    }
    return m
  }

  /** The stalls it saw, each placed in time (parseStallWindows); complete once `stop()` returned. */
  windows(): StallWindow[] {
    return parseStallWindows(this.#out)
  }

  async stop(): Promise<StallFigures | null> {
    const child = this.#child
    if (!child) return null
    this.#child = null
    // 'close' comes after the last of stdout, which 'exit' may precede.
    const closed = new Promise<void>((resolve) => (child.stdout?.readableEnded || child.stdout === null ? resolve() : child.once('close', () => resolve())))
    await stopChild(child, 2000)
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))])
    return parseStalls(this.#out)
  }
}
