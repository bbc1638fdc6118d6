/**
 * One measured TCP transfer of the bonding lab: an iperf3 client (JSON, for
 * the goodput, retransmits and errors) against an iperf3 server whose
 * per-interval text report is read live and stamped with arrival times (the
 * throughput series, on the same clock as the cut). Optionally a cut is
 * applied mid-transfer. Under `mptcp` both ends run through `mptcpize run`
 * (kernel MPTCP instead of TCP).
 *
 * The server binds to one lab address, or to every address of the gateway's
 * namespace for MPTCP (subflows arrive at the gateway's address on each
 * link); that namespace holds lab addresses only.
 */
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { LabCommandError } from './errors.js'
import { runIn, spawnIn, stopChild } from './exec.js'
import { buildSeries, parseIntervalLine, type SeriesPoint, type TimedLine } from './bond-series.js'
import { parseIperf3Json, type IperfResult } from './traffic.js'

/** Report interval of the receiving server, seconds. */
export const INTERVAL_S = 0.1

/** An iperf3 server whose interval lines are collected with their arrival times. */
export class IntervalReceiver {
  #child: ChildProcess | null = null
  #lines: TimedLine[] = []
  #out = ''

  constructor(
    readonly init: {
      readonly netns: string
      /** Address to listen on; null = every address of the namespace (MPTCP). */
      readonly bind: string | null
      readonly port: number
      readonly runId: string
      readonly mptcp?: boolean
    },
  ) {}

  async start(): Promise<void> {
    const { netns, bind, port, runId, mptcp } = this.init
    const args = ['-s', '-i', String(INTERVAL_S), '-f', 'k', '--forceflush', '-p', String(port), ...(bind ? ['-B', bind] : [])]
    const child = mptcp ? spawnIn(netns, 'mptcpize', ['run', 'iperf3', ...args], { runId }) : spawnIn(netns, 'iperf3', args, { runId })
    this.#child = child
    child.on('error', () => undefined)
    child.stderr?.resume()
    const rl = createInterface({ input: child.stdout! })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new LabCommandError(`iperf3 server in ${netns} did not start: ${this.#out.trim()}`)), 5000)
      let started = false
      const done = (err?: Error): void => {
        if (started) return
        started = true
        clearTimeout(timer)
        child.removeListener('exit', onExit)
        if (err) reject(err)
        else resolve()
      }
      const onExit = (): void => done(new LabCommandError(`iperf3 server in ${netns} exited: ${this.#out.trim()}`))
      child.once('exit', onExit)
      rl.on('line', (text) => {
        const now = Date.now()
        if (!started) {
          this.#out = (this.#out + text + '\n').slice(-2000)
          if (text.includes('Server listening')) done()
          return
        }
        const line = parseIntervalLine(text)
        if (line) this.#lines.push({ line, arrivalMs: now })
      })
    })
  }

  /** Forgets the lines collected so far (call before each transfer). */
  reset(): void {
    this.#lines = []
  }

  /** The lines collected since the last `reset()`. */
  lines(): readonly TimedLine[] {
    return [...this.#lines]
  }

  get running(): boolean {
    const c = this.#child
    return c !== null && c.exitCode === null && c.signalCode === null
  }

  async stop(): Promise<void> {
    if (this.#child) await stopChild(this.#child, 1000)
    this.#child = null
  }
}

export interface TransferInit {
  /** The client's namespace. */
  readonly netns: string
  readonly to: string
  readonly receiver: IntervalReceiver
  readonly seconds: number
  readonly streams: number
  /** iperf3 -C; null = the namespace's default. */
  readonly congestion: string | null
  /** Source address (iperf3 -B): pins the flow to one link. */
  readonly bind?: string
  readonly mptcp?: boolean
  /** Cut something `atS` seconds into the transfer. */
  readonly cut?: { readonly atS: number; readonly apply: () => Promise<void> }
  readonly signal?: AbortSignal
}

export interface TransferResult {
  /** The iperf3 result; null when iperf3 failed (see `error`). */
  readonly iperf: IperfResult | null
  /** iperf3's error ("the server has terminated", "Connection reset by peer"), or null. */
  readonly error: string | null
  readonly points: readonly SeriesPoint[]
  /** When the cut took effect, ms from the series' zero; null without a cut (or an empty series). */
  readonly cutMs: number | null
  /** Whether the cut was applied (not when the client ended first). */
  readonly cutApplied: boolean
  /** Wall clock of the client's start and end, ms. */
  readonly startWallMs: number
  readonly endWallMs: number
  /** Wall clock of the series' zero (the first measured interval's start) and of the cut; null when absent. */
  readonly zeroWallMs: number | null
  readonly cutWallMs: number | null
}

/**
 * A transfer that ran beside the one that applied a cut (a download beside
 * an upload): the same cut placed on its own series' clock.
 */
export function withCutAt(t: TransferResult, cutWallMs: number | null): TransferResult {
  if (cutWallMs === null || t.zeroWallMs === null) return t
  return { ...t, cutWallMs, cutApplied: true, cutMs: cutWallMs - t.zeroWallMs }
}

/** iperf3 client arguments (pure; exported for tests). */
export function iperfClientArgs(init: Pick<TransferInit, 'to' | 'seconds' | 'streams' | 'congestion' | 'bind'> & { port: number }): string[] {
  const args = ['-c', init.to, '-p', String(init.port), '-t', String(init.seconds), '-P', String(init.streams), '-i', String(INTERVAL_S), '-J']
  if (init.congestion) args.push('-C', init.congestion)
  if (init.bind) args.push('-B', init.bind)
  return args
}

/** The series' zero as soon as one measured interval has arrived, else null. */
function zeroSoFar(lines: readonly TimedLine[]): number | null {
  const z = buildSeries(lines).zeroWallMs
  return Number.isFinite(z) ? z : null
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)))

/** Runs one transfer (and its cut); an iperf3 failure is a result here, not an exception. */
export async function transfer(init: TransferInit): Promise<TransferResult> {
  const { receiver } = init
  receiver.reset()
  const args = iperfClientArgs({ ...init, port: receiver.init.port })
  const startWallMs = Date.now()
  let clientDone = false
  const client = runIn(init.netns, init.mptcp ? 'mptcpize' : 'iperf3', init.mptcp ? ['run', 'iperf3', ...args] : args, {
    allowFail: true,
    timeoutMs: (init.seconds + 30) * 1000,
    ...(init.signal ? { signal: init.signal } : {}),
  }).finally(() => {
    clientDone = true
  })
  // The cut is timed from the measured transfer's start, which the first interval line reveals.
  const cutTask = (async (): Promise<number | null> => {
    if (!init.cut) return null
    let zero: number | null = null
    while (!clientDone && zero === null) {
      await sleep(20)
      zero = zeroSoFar(receiver.lines())
    }
    if (zero === null) return null
    await sleep(zero + init.cut.atS * 1000 - Date.now())
    if (clientDone) return null
    await init.cut.apply()
    return Date.now()
  })()
  const [r, cutWallMs] = await Promise.all([client, cutTask])
  const endWallMs = Date.now()
  // Let the server's last lines arrive.
  await sleep(150)
  let iperf: IperfResult | null = null
  let error: string | null = null
  try {
    iperf = parseIperf3Json(r.stdout)
  } catch (err) {
    error = r.stdout.trim() ? (err as Error).message.replace(/^iperf3: /, '') : `iperf3 exited ${r.code}: ${r.stderr.trim().slice(0, 200)}`
  }
  const series = buildSeries(receiver.lines())
  const cutMs = cutWallMs !== null && Number.isFinite(series.zeroWallMs) ? cutWallMs - series.zeroWallMs : null
  const zeroWallMs = Number.isFinite(series.zeroWallMs) ? series.zeroWallMs : null
  return { iperf, error, points: series.points, cutMs, cutApplied: cutWallMs !== null, startWallMs, endWallMs, zeroWallMs, cutWallMs }
}
