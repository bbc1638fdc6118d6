/**
 * `quicether lab pair`: two nodes over one link (optionally rate-limited,
 * delayed, lossy), a quicether daemon in each, then ping and iperf3 TCP
 * through the tunnel. Always tears down, also on errors and Ctrl-C.
 */
import { Lab } from './topology.js'
import { startDaemons } from './daemon.js'
import { CpuMeter, cpuPerGbit } from './cpu.js'
import { checkAborted } from './interrupt.js'
import { overlayAddresses } from './nodeconfig.js'
import { DEFAULT_NETWORK } from './scenario.js'
import { IperfServer, iperfClient, ping, percentile } from './traffic.js'
import type { TopologySpec } from './types.js'

export interface PairOptions {
  /** bits/s; null = unlimited (a plain veth pair unless delay or loss is set). */
  readonly rate: number | null
  /** One-way delay, ms. */
  readonly delay: number
  /** Fraction. */
  readonly loss: number
  readonly seconds: number
  readonly streams: number
  readonly signal?: AbortSignal
  /** Progress lines for people (stderr); default: none. */
  readonly progress?: (line: string) => void
}

/** The JSON `lab pair --json` prints. */
export interface PairResult {
  readonly mbit: number
  readonly rtt_ms_p50: number
  readonly rtt_ms_p99: number
  readonly retransmits: number
  /** Both daemons' CPU seconds during the transfer per Gbit moved. */
  readonly cpu_s_per_gbit: number
  readonly cpu_s: number
  readonly bytes: number
  readonly seconds: number
  readonly streams: number
  readonly ping_sent: number
  readonly ping_received: number
  /** Time from starting the daemons until the overlay answered, ms. */
  readonly overlay_ready_ms: number
  readonly link: { readonly rate_mbit: number | null; readonly delay_ms: number; readonly loss_pct: number }
  readonly run_id: string
}

export function pairTopology(o: Pick<PairOptions, 'rate' | 'delay' | 'loss'>): TopologySpec {
  const dir = { rate: o.rate, delay: o.delay, jitter: 0, loss: o.loss }
  return {
    nodes: [
      { name: 'alpha', daemon: true, config: null },
      { name: 'beta', daemon: true, config: null },
    ],
    links: [{ name: 'link', a: 'alpha', b: 'beta', aToB: dir, bToA: dir, queue: null, nat: 'none' }],
  }
}

export async function runPair(o: PairOptions): Promise<PairResult> {
  const say = o.progress ?? (() => undefined)
  const lab = new Lab({ spec: pairTopology(o) })
  try {
    say(`building run ${lab.runId}: alpha ↔ beta`)
    await lab.start()
    checkAborted(o.signal)
    say('starting quicether daemons')
    const t0 = Date.now()
    const daemons = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false, ...(o.signal ? { signal: o.signal } : {}) })
    const readyMs = Date.now() - t0
    const overlay = overlayAddresses(lab.spec, DEFAULT_NETWORK).get('beta')!
    const alpha = lab.node('alpha').netns
    say(`overlay up after ${readyMs} ms; pinging ${overlay.ipv4}`)
    const p = await ping(alpha, overlay.ipv4, { count: 50, intervalMs: 20, ...(o.signal ? { signal: o.signal } : {}) })
    checkAborted(o.signal)
    const server = new IperfServer({ netns: lab.node('beta').netns, bind: overlay.ipv4, runId: lab.runId })
    await server.start()
    const pids = [...daemons.values()].map((d) => d.pid).filter((x): x is number => x !== undefined)
    const meter = new CpuMeter(pids)
    say(`iperf3 TCP -P${o.streams} for ${o.seconds} s through the tunnel`)
    meter.start()
    const r = await iperfClient(alpha, overlay.ipv4, { seconds: o.seconds, streams: o.streams, ...(o.signal ? { signal: o.signal } : {}) })
    const cpu = meter.stop()
    await server.stop()
    for (const d of daemons.values()) await d.stop()
    return {
      mbit: round(r.mbit, 1),
      rtt_ms_p50: round(percentile(p.rttsMs, 0.5), 3),
      rtt_ms_p99: round(percentile(p.rttsMs, 0.99), 3),
      retransmits: r.retransmits,
      cpu_s_per_gbit: round(cpuPerGbit(cpu, r.bytes), 3),
      cpu_s: round(cpu, 2),
      bytes: r.bytes,
      seconds: round(r.seconds, 2),
      streams: r.streams,
      ping_sent: p.sent,
      ping_received: p.received,
      overlay_ready_ms: readyMs,
      link: { rate_mbit: o.rate === null ? null : o.rate / 1e6, delay_ms: o.delay, loss_pct: round(o.loss * 100, 3) },
      run_id: lab.runId,
    }
  } finally {
    say(`tearing down run ${lab.runId}`)
    await lab.stop()
  }
}

export function round(x: number, digits: number): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}
