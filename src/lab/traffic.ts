/**
 * Traffic through the lab: iperf3 (TCP throughput, retransmits) and ping
 * (RTT), run in node namespaces, and the parsers of their output. Servers
 * bind to a lab address, so traffic only ever goes between the run's own
 * namespaces.
 */
import type { ChildProcess } from 'node:child_process'
import { LabCommandError } from './errors.js'
import { runIn, spawnIn, stopChild } from './exec.js'

export interface IperfResult {
  /** Goodput at the receiver, Mbit/s. */
  readonly mbit: number
  /** Payload bytes the receiver got. */
  readonly bytes: number
  readonly seconds: number
  /** TCP retransmits at the sender (0 for UDP). */
  readonly retransmits: number
  readonly streams: number
}

/** Parses `iperf3 -J` output of a TCP client run; throws LabCommandError on an iperf3 error or foreign text. */
export function parseIperf3Json(text: string): IperfResult {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new LabCommandError(`iperf3 did not print JSON: ${text.trim().slice(0, 200)}`)
  }
  const d = doc as {
    error?: string
    start?: { test_start?: { num_streams?: number } }
    end?: { sum_received?: { bytes?: number; seconds?: number; bits_per_second?: number }; sum_sent?: { retransmits?: number } }
  }
  if (typeof d.error === 'string') throw new LabCommandError(`iperf3: ${d.error}`)
  const recv = d.end?.sum_received
  if (!recv || typeof recv.bits_per_second !== 'number') throw new LabCommandError('iperf3 JSON has no end.sum_received')
  return {
    mbit: recv.bits_per_second / 1e6,
    bytes: recv.bytes ?? 0,
    seconds: recv.seconds ?? 0,
    retransmits: d.end?.sum_sent?.retransmits ?? 0,
    streams: d.start?.test_start?.num_streams ?? 1,
  }
}

export interface PingReply {
  /** When the reply came, wall-clock ms since the epoch (`ping -D`). */
  readonly atMs: number
  readonly rttMs: number
}

export interface PingResult {
  readonly sent: number
  readonly received: number
  /** Round-trip times of the replies, ms, in arrival order. */
  readonly rttsMs: readonly number[]
  /** The replies with their arrival times, when ping printed them (`timestamps`); else empty. */
  readonly replies: readonly PingReply[]
}

/** Parses iputils `ping` output: one `time=…` per reply (after `[epoch s]` with -D), and the summary's transmitted/received counts. */
export function parsePing(text: string): PingResult {
  const rttsMs: number[] = []
  const replies: PingReply[] = []
  for (const line of text.split('\n')) {
    const m = /\btime[=<]([0-9.]+) ?ms/.exec(line)
    if (!m) continue
    const rttMs = Number(m[1])
    rttsMs.push(rttMs)
    const at = /^\[([0-9]+(?:\.[0-9]+)?)\]/.exec(line)
    if (at) replies.push({ atMs: Number(at[1]) * 1000, rttMs })
  }
  const sum = /([0-9]+) packets transmitted, ([0-9]+) (?:packets )?received/.exec(text)
  const sent = sum ? Number(sum[1]) : rttsMs.length
  const received = sum ? Number(sum[2]) : rttsMs.length
  return { sent, received, rttsMs, replies }
}

/** The p-quantile (0..1) of `values` by nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
  return sorted[rank]!
}

/** The median of `values`; NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export interface PingOptions {
  count?: number
  /** Interval between echo requests, ms (default 50). */
  intervalMs?: number
  /** Payload bytes (default ping's 56). */
  size?: number
  /** IP TOS byte (ping -Q), e.g. 184 for DSCP EF; default none. */
  tos?: number
  /** Each reply with its arrival time (ping -D): PingResult.replies. */
  timestamps?: boolean
  signal?: AbortSignal
}

/** Pings `dst` from namespace `ns`; a run with no reply resolves with `received: 0` (no throw). */
export async function ping(ns: string, dst: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = opts.count ?? 20
  const interval = (opts.intervalMs ?? 50) / 1000
  const args = ['-n', '-c', String(count), '-i', interval.toFixed(3), '-W', '1']
  if (opts.size !== undefined) args.push('-s', String(opts.size))
  if (opts.tos !== undefined) args.push('-Q', String(opts.tos))
  if (opts.timestamps) args.push('-D')
  const r = await runIn(ns, 'ping', [...args, dst], { allowFail: true, timeoutMs: count * (interval * 1000 + 50) + 5000, ...(opts.signal ? { signal: opts.signal } : {}) })
  if (r.code !== 0 && r.code !== 1) throw new LabCommandError(`ping ${dst} in ${ns}: ${r.stderr.trim()}`)
  return parsePing(r.stdout)
}

/**
 * True once one echo to `dst` is answered within `waitMs`. With `dev`, the
 * echo may only leave through that device (ping -I): an overlay address
 * the underlay also reaches (a gateway answers for its own addresses on
 * any interface) then does not pass for a working tunnel.
 */
export async function pingOnce(ns: string, dst: string, waitMs = 1000, dev?: string): Promise<boolean> {
  const r = await runIn(ns, 'ping', ['-n', '-c', '1', '-W', String(Math.max(1, Math.ceil(waitMs / 1000))), ...(dev ? ['-I', dev] : []), dst], { allowFail: true })
  return r.code === 0
}

export const IPERF_PORT = 5201

/** An iperf3 server in a namespace, bound to one lab address. */
export class IperfServer {
  #child: ChildProcess | null = null

  constructor(private readonly init: { netns: string; bind: string; runId: string; port?: number }) {}

  async start(): Promise<void> {
    const { netns, bind, runId } = this.init
    const child = spawnIn(netns, 'iperf3', ['-s', '--forceflush', '-B', bind, '-p', String(this.init.port ?? IPERF_PORT)], { runId, stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => done(new LabCommandError(`iperf3 server in ${netns} did not start: ${out.trim()}`)), 5000)
      const done = (err?: Error): void => {
        clearTimeout(timer)
        child.stdout?.removeAllListeners('data')
        child.stderr?.removeAllListeners('data')
        child.removeAllListeners('exit')
        if (err) reject(err)
        else resolve()
      }
      const onData = (d: Buffer): void => {
        out += d.toString()
        if (out.includes('Server listening')) done()
      }
      child.stdout?.on('data', onData)
      child.stderr?.on('data', onData)
      child.once('exit', () => done(new LabCommandError(`iperf3 server in ${netns} exited: ${out.trim()}`)))
      child.once('error', (e) => done(new LabCommandError(`iperf3 in ${netns}: ${e.message}`, { cause: e })))
    })
    // Keep draining its output so it never blocks on a full pipe.
    child.stdout?.resume()
    child.stderr?.resume()
  }

  async stop(): Promise<void> {
    if (this.#child) await stopChild(this.#child, 1000)
    this.#child = null
  }
}

export interface IperfClientOptions {
  seconds: number
  streams?: number
  /** Server sends, client receives. */
  reverse?: boolean
  port?: number
  /** Seconds at the start left out of the result (slow start); default 0. */
  omit?: number
  signal?: AbortSignal
}

/** Runs an iperf3 TCP client in `ns` against `server`. */
export async function iperfClient(ns: string, server: string, opts: IperfClientOptions): Promise<IperfResult> {
  const args = ['-c', server, '-p', String(opts.port ?? IPERF_PORT), '-t', String(opts.seconds), '-P', String(opts.streams ?? 1), '-J']
  if (opts.reverse) args.push('-R')
  if (opts.omit) args.push('-O', String(opts.omit))
  const r = await runIn(ns, 'iperf3', args, { allowFail: true, timeoutMs: (opts.seconds + (opts.omit ?? 0) + 20) * 1000, ...(opts.signal ? { signal: opts.signal } : {}) })
  return parseIperf3Json(r.stdout)
}
