/**
 * The figures of a bonding run and how they are computed from what was
 * measured (pure), plus the tables `lab bond` prints. JSON field names are
 * the issue's (snake_case). A figure that was not measured is null, never a
 * guess.
 *
 *   efficiency       total / single_sum   (QuicEther bonded / QuicEther over each uplink alone)
 *   rate_efficiency  total / sum of the configured uplink rates
 *   path mbit        the total goodput split by the bytes each uplink sent
 *   dip_ms           time after a cut under half of the surviving capacity
 *                    (the single-uplink goodputs of the uplinks left)
 */
import type { StallFigures } from './stall.js'
import type { EmulationFigures } from './delay.js'
import { computeDip, meanMbit, underShare, type SeriesPoint } from './bond-series.js'
import type { DaemonBond } from './bond-paths.js'
import type { BondMode, UplinkSpec } from './bond-spec.js'
import { describeUplink } from './bond-spec.js'

/** a / b rounded to 3 digits; null when either is missing or b is not positive. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return null
  return round(a / b, 3)
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Sum of the figures; null when any is missing (a partial sum would flatter a ratio). */
export function sumOrNull(xs: readonly (number | null)[]): number | null {
  if (xs.length === 0 || xs.some((x) => x === null || !Number.isFinite(x))) return null
  return round((xs as number[]).reduce((s, x) => s + x, 0), 2)
}

/** Splits `totalMbit` over the links in proportion to the bytes each sent; nulls when nothing was sent. */
export function attribute(totalMbit: number | null, txBytes: readonly number[]): (number | null)[] {
  const sum = txBytes.reduce((s, b) => s + Math.max(0, b), 0)
  return txBytes.map((b) => (totalMbit === null || sum <= 0 ? null : round((totalMbit * Math.max(0, b)) / sum, 2)))
}

export interface PathFigure {
  /** 1-based, as the flags count. */
  readonly uplink: number
  readonly name: string
  readonly ifname: string
  /** The link's rate in this figure's direction (its mean over the transfer when it varied). */
  readonly rate_mbit: number
  readonly rate_up_mbit: number
  readonly rate_down_mbit: number
  readonly delay_ms: number
  readonly loss_cfg: number
  /** QuicEther over this uplink alone, Mbit/s. */
  readonly single_mbit: number | null
  /** This path's share of the bonded goodput, Mbit/s. */
  readonly mbit: number | null
  /** What the client sent on the link (tunnel overhead included), Mbit/s. */
  readonly wire_mbit: number
  readonly rtt_ms: number | null
  /** `daemon`: the path monitor's smoothed RTT; `link-ping`: median ping over the link during the transfer. */
  readonly rtt_source: 'daemon' | 'link-ping' | null
  /** Fraction lost on the path during the transfer. */
  readonly loss: number | null
  /** `daemon`: lost / (lost + acked) datagrams; `router`: packets the link dropped client → gateway. */
  readonly loss_source: 'daemon' | 'router' | null
}

export interface CutFigures {
  readonly uplink: number
  /** When the cut took effect, seconds into the measured transfer; null when it was not applied. */
  readonly at_s: number | null
  readonly surviving_mbit: number | null
  readonly threshold_mbit: number | null
  readonly pre_mbit: number | null
  readonly post_mbit: number | null
  readonly recovery_ms: number | null
  readonly recovered: boolean | null
  /** The share of the steady state before the cut (warm-up to cut) under the same threshold: the series' own noise; null when under a second, or when its mean was under the threshold too. */
  readonly noise_share: number | null
  /** The dip less what that noise would have put under the threshold after the cut (at least 0): the cut's own stall; null without both. */
  readonly dip_beyond_noise_ms: number | null
}

export interface InteractiveFigures {
  readonly idle_p99_ms: number
  readonly loaded_p99_ms: number
  readonly delta_ms: number
  readonly loaded_received: number
  readonly loaded_sent: number
  /** The machine's stalls while the loaded pings ran (stall.ts); null: not measured. */
  readonly stalls?: StallFigures | null
  /**
   * The loaded pings less those whose flight overlapped a stall over 5 ms (each placed in time by
   * the meter): the tunnel's own delay, apart from the machine's. The interactive bar is judged on
   * `delta_ms`, all the pings; this is read beside it. null: the stalls were not measured.
   */
  readonly outside_stalls?: OutsideStalls | null
}

export interface OutsideStalls {
  readonly p99_ms: number
  /** p99_ms − idle_p99_ms. */
  readonly delta_ms: number
  /** The replies kept, and those left out for a stall. */
  readonly pings: number
  readonly left_out: number
}

/**
 * The daemons' CPU seconds per Gbit of goodput: bonded (the run's two
 * daemons), over single uplinks (summed over the uplinks' runs), and what
 * bonding adds. Seconds per Gbit are cores at 1 Gbit/s: 0.1 = a tenth of a
 * core per Gbit/s.
 */
export interface CpuFigures {
  readonly bonded_s_per_gbit: number | null
  readonly single_s_per_gbit: number | null
  readonly extra_s_per_gbit: number | null
  /** How busy the machine's cores were during the bonded run (0..1): at 0.98 or more the lab's emulation may have limited it. */
  readonly machine_busy: number | null
  /**
   * How long the two daemons' threads waited, runnable, for a core during the bonded run: ms per
   * second, summed over their threads (1000: as if one thread stood waiting the whole run). Every
   * packet crosses a daemon's engine thread four times a round trip: where this is in the hundreds,
   * the lab's cores (shared with SCHED_FIFO delay lines and iperf3) may be in the throughput and
   * interactive figures, not only the tunnel. null: not measured.
   */
  readonly daemons_wait_ms_per_s?: number | null
}

/** The pings outside the machine's stalls in words. */
export function outsideText(o: OutsideStalls): string {
  return `outside the stalls: p99 ${fmt(o.p99_ms, 2)} ms (+${fmt(o.delta_ms, 2)} ms over idle; ${o.left_out} of ${o.pings + o.left_out} pings left out)`
}

/** The machine's stalls in words: how many and how long, and what they mean for a ping's p99. */
export function stallText(st: StallFigures): string {
  if (st.over_20ms === 0) return `the machine never stalled over 20 ms meanwhile (worst ${fmt(st.worst_ms, 1)} ms)`
  return `the machine stalled ${st.over_20ms} time(s) over 20 ms meanwhile (worst ${fmt(st.worst_ms, 1)} ms${st.rt === 'fifo' ? '' : ', measured without real-time priority'}): pings in a stall wait it out, whatever the tunnel does`
}

/**
 * How closely the lab's delay lines kept their delays, in words (the worst link): a figure of the
 * tunnel is only as good as the links it crossed.
 */
export function emulationText(e: EmulationFigures | null): string {
  if (!e) return 'no delayed link'
  return (
    `the delay lines released ${fmt(e.within_200us * 100, 1)}% of packets within 0.2 ms of due ` +
    `(worst of ${e.lines} link(s); p99 ${fmt(e.late_p99_ms, 2)} ms late, worst ${fmt(e.late_max_ms, 1)} ms; ${e.scheduler === 'fifo' ? 'real-time' : e.scheduler === 'other' ? 'normal' : e.scheduler} scheduling)`
  )
}

/** A run during which the machine's cores were this busy may have been limited by the lab's own emulation. */
export const SATURATED = 0.97

export interface BondResult {
  /** up: client → gateway; down: gateway → client. */
  readonly direction: 'up' | 'down'
  readonly bonded: boolean
  readonly bond_detection: string
  /** Paths the daemon reports to the gateway; null when it reports none. */
  readonly daemon_paths: number | null
  readonly mode: BondMode
  readonly streams: number
  readonly seconds: number
  readonly congestion: string | null
  /** The most a TCP socket could buffer at either end (tcp_wmem/tcp_rmem max, bytes); null: the kernel's defaults. */
  readonly tcp_buffer: number | null
  readonly total_mbit: number | null
  readonly single_sum_mbit: number | null
  readonly sum_mbit: number
  readonly efficiency: number | null
  readonly rate_efficiency: number | null
  readonly cpu: CpuFigures
  readonly paths: readonly PathFigure[]
  readonly dip_ms: number | null
  readonly resets: number
  /** Which TCP failure counters moved, per end (`client Tcp.EstabResets` → 1); null: not read in time. */
  readonly reset_counters: Record<string, number> | null
  readonly cut: CutFigures | null
  readonly retransmits: number | null
  readonly error: string | null
  readonly interactive: InteractiveFigures | null
  /** The daemons' counts over the transfer: packets the gateway held for reordering, late, dropped; packets the client re-sent after a path died; null when they report none. */
  readonly bond_stats: DaemonBond | null
  /** [start s, Mbit/s] per 0.1 s interval of the bonded transfer. */
  readonly series: readonly (readonly [number, number])[]
  readonly run_id: string
}

export interface RawLinkFigure {
  readonly uplink: number
  readonly name: string
  readonly rate_mbit: number
  readonly mbit: number | null
  readonly ratio: number | null
  readonly retransmits: number | null
  readonly error: string | null
  /**
   * The link drops packets at random (client → gateway): TCP over it is
   * bound by the loss (cubic backs off on each drop), not by the link, so
   * the 95% bar does not judge it.
   */
  readonly lossy: boolean
}

export interface RawResult {
  readonly direction: 'up' | 'down'
  readonly raw: true
  readonly streams: number
  readonly seconds: number
  readonly congestion: string | null
  readonly links: readonly RawLinkFigure[]
  readonly total_mbit: number | null
  readonly sum_mbit: number
  /** The share of its rate each loss-free link must reach. */
  readonly bar: number
  /** Every loss-free link reached the bar (lossy links are TCP-bound and not judged). */
  readonly pass: boolean
  readonly run_id: string
}

/** Each link must carry this share of its rate for the emulation not to be the bottleneck. */
export const RAW_BAR = 0.95

/** The cut's figures: dip against half of the surviving capacity, and throughput before and after. */
export function cutFigures(o: {
  points: readonly SeriesPoint[]
  cutMs: number | null
  index: number
  survivingMbit: number | null
  endMs: number
  /** Start of the steady state: `pre_mbit` is measured from here to the cut. */
  warmupMs: number
}): { cut: CutFigures; dipMs: number | null } {
  const { points, cutMs, survivingMbit, endMs } = o
  if (cutMs === null) {
    return { cut: { uplink: o.index + 1, at_s: null, surviving_mbit: survivingMbit, threshold_mbit: null, pre_mbit: null, post_mbit: null, recovery_ms: null, recovered: null, noise_share: null, dip_beyond_noise_ms: null }, dipMs: null }
  }
  const threshold = survivingMbit === null ? null : survivingMbit / 2
  const dip = threshold === null ? null : computeDip(points, cutMs, threshold, endMs)
  const pre = meanMbit(points, Math.min(o.warmupMs, cutMs), cutMs)
  const post = meanMbit(points, cutMs, endMs)
  // Noise only where the steady state before the cut carried more than the threshold on average: a bond
  // under it before the cut was not noisy but short, and its intervals under it say nothing of the series' swings.
  const noise = threshold === null || !(pre > threshold) ? null : underShare(points, o.warmupMs, cutMs, threshold)
  const beyond = dip && noise !== null ? Math.max(0, dip.dipMs - noise * (endMs - cutMs)) : null
  return {
    cut: {
      uplink: o.index + 1,
      at_s: round(cutMs / 1000, 2),
      surviving_mbit: survivingMbit,
      threshold_mbit: threshold === null ? null : round(threshold, 2),
      pre_mbit: Number.isFinite(pre) ? round(pre, 2) : null,
      post_mbit: Number.isFinite(post) ? round(post, 2) : null,
      recovery_ms: dip ? Math.round(dip.recoveryMs) : null,
      recovered: dip ? dip.recovered : null,
      noise_share: noise === null ? null : round(noise, 3),
      dip_beyond_noise_ms: beyond === null ? null : Math.round(beyond),
    },
    dipMs: dip ? Math.round(dip.dipMs) : null,
  }
}

/** The uplinks' single-uplink goodputs, without the cut one: the capacity that survives it. */
export function survivingCapacity(singles: readonly (number | null)[], cutIndex: number): number | null {
  return sumOrNull(singles.filter((_, i) => i !== cutIndex))
}

/** "12.3" or "—" for tables. */
export function fmt(x: number | null | undefined, digits = 1): string {
  return x == null || !Number.isFinite(x) ? '—' : x.toFixed(digits)
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: readonly string[]): string => r.map((c, i) => (i <= 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd()
  return [line(head), ...rows.map(line)]
}

/** The text `lab bond --raw` prints. */
export function renderRaw(r: RawResult): string {
  const verdict = (l: RawLinkFigure): string => (l.error ? `failed: ${l.error}` : l.ratio !== null && l.ratio >= r.bar ? 'ok' : l.lossy ? 'loss-bound' : 'LOW')
  const rows = r.links.map((l) => [String(l.uplink), l.name, fmt(l.rate_mbit), fmt(l.mbit), l.ratio === null ? '—' : `${(l.ratio * 100).toFixed(1)}%`, verdict(l)])
  const out = [
    `raw links, no QuicEther, ${r.direction === 'up' ? 'upload (client → gateway)' : 'download (gateway → client)'}: one iperf3 TCP flow${r.streams > 1 ? ` (-P${r.streams})` : ''} per link, all in parallel, ${r.seconds} s${r.congestion ? `, ${r.congestion}` : ''}`,
    '',
    ...table(['#', 'uplink', 'rate Mbit/s', 'goodput Mbit/s', 'of rate', `≥ ${Math.round(r.bar * 100)}%`], rows),
    '',
    `total ${fmt(r.total_mbit)} of ${fmt(r.sum_mbit)} Mbit/s: ${r.pass ? `every ${r.links.some((l) => l.lossy) ? 'loss-free ' : ''}link reaches ${Math.round(r.bar * 100)}% of its rate; the emulation is not the bottleneck` : `a link stays under ${Math.round(r.bar * 100)}% of its rate: the emulation (or this machine's load) is the bottleneck`}`,
  ]
  if (r.links.some((l) => verdict(l) === 'loss-bound')) out.push('loss-bound: TCP over a lossy link backs off on every random drop; the link itself is not the limit (try --streams 4)')
  return out.join('\n')
}

/** The text `lab bond` prints. */
export function renderBond(r: BondResult, uplinks: readonly UplinkSpec[]): string {
  const out: string[] = []
  out.push(`QuicEther bonding, ${r.direction === 'up' ? 'upload (client → gateway)' : 'download (gateway → client)'}, mode ${r.mode}, iperf3 TCP -P${r.streams}, ${r.seconds} s${r.congestion ? `, ${r.congestion}` : ''}${r.tcp_buffer ? `, TCP buffers up to ${r.tcp_buffer / 1024 ** 2} MiB` : ''}; ${uplinks.length} uplinks, ${fmt(r.sum_mbit)} Mbit/s in all this way`)
  out.push(r.bonded ? `bonded: yes — ${r.bond_detection}` : `BONDED: NO — ${r.bond_detection}. The figures below are what the daemon carried, not bonding.`)
  out.push('')
  const rows = r.paths.map((p, i) => [
    String(p.uplink),
    p.name,
    describeUplink(uplinks[i]!),
    fmt(p.single_mbit),
    fmt(p.mbit),
    fmt(p.wire_mbit),
    p.rtt_ms === null ? '—' : `${fmt(p.rtt_ms, 1)}${p.rtt_source === 'link-ping' ? '*' : ''}`,
    p.loss === null ? '—' : `${(p.loss * 100).toFixed(2)}%${p.loss_source === 'router' ? '*' : ''}`,
  ])
  out.push(...table(['#', 'uplink', 'link', 'alone Mbit/s', 'bonded Mbit/s', 'wire Mbit/s', 'RTT ms', 'loss'], rows))
  if (r.paths.some((p) => p.rtt_source === 'link-ping' || p.loss_source === 'router')) {
    out.push('  * measured on the link (ping over it during the transfer; packets its router dropped), not reported by the daemon')
  }
  out.push('')
  const lines: [string, string][] = [
    ['total', `${fmt(r.total_mbit)} Mbit/s${r.error ? ` (iperf3 failed: ${r.error})` : ''}`],
    ['single_sum', `${fmt(r.single_sum_mbit)} Mbit/s (QuicEther over each uplink alone, summed)`],
    ['efficiency', `${fmt(r.efficiency, 3)} (total / single_sum)`],
    ['rate_efficiency', `${fmt(r.rate_efficiency, 3)} (total / ${fmt(r.sum_mbit)} Mbit/s of link rates)`],
    ['cpu', `${fmt(r.cpu.bonded_s_per_gbit, 3)} s/Gbit bonded, ${fmt(r.cpu.single_s_per_gbit, 3)} over single uplinks: bonding adds ${fmt(r.cpu.extra_s_per_gbit, 3)} (cores per Gbit/s, both daemons); the machine's cores ${r.cpu.machine_busy === null ? '—' : `${Math.round(r.cpu.machine_busy * 100)}%`} busy${(r.cpu.machine_busy ?? 0) >= SATURATED ? ' (saturated: the emulated links may have been the limit)' : ''}${r.cpu.daemons_wait_ms_per_s == null ? '' : `; the daemons' threads waited ${fmt(r.cpu.daemons_wait_ms_per_s, 0)} ms per second for a core`}`],
    ['retransmits', r.retransmits === null ? '—' : String(r.retransmits)],
    ['resets', `${r.resets} (TCP connections reset or failed${r.reset_counters && Object.keys(r.reset_counters).length ? `: ${Object.entries(r.reset_counters).map(([k, v]) => `${k} +${v}`).join(', ')}` : ''})`],
  ]
  if (r.cut) {
    const c = r.cut
    lines.push(['cut', `uplink ${c.uplink} at ${fmt(c.at_s, 2)} s: ${fmt(c.pre_mbit)} Mbit/s before, ${fmt(c.post_mbit)} after; surviving capacity ${fmt(c.surviving_mbit)}`])
    lines.push(['dip_ms', `${r.dip_ms === null ? '—' : r.dip_ms} (time under ${fmt(c.threshold_mbit)} Mbit/s, half the surviving capacity${c.recovered === false ? '; never recovered' : ''})`])
    if (c.noise_share !== null) lines.push(['', `before the cut ${Math.round(c.noise_share * 1000) / 10}% of the intervals were under it too (the series' own noise); the dip beyond that: ${c.dip_beyond_noise_ms ?? '—'} ms`])
  }
  if (r.bond_stats) {
    const b = r.bond_stats
    const [at, by] = r.direction === 'up' ? ['the gateway', 'the client'] : ['the client', 'the gateway']
    lines.push(['reordering', `${b.reordered} held back, ${b.late} late, ${b.dropped} dropped at ${at}; ${b.resent} re-sent by ${by} after a path died (the daemons' counts)`])
  }
  if (r.interactive) {
    const i = r.interactive
    lines.push(['interactive', `ping p99 ${fmt(i.loaded_p99_ms, 2)} ms under load vs ${fmt(i.idle_p99_ms, 2)} ms idle (+${fmt(i.delta_ms, 2)} ms; ${i.loaded_received}/${i.loaded_sent} answered)${i.stalls ? `; ${stallText(i.stalls)}` : ''}${i.outside_stalls ? `; ${outsideText(i.outside_stalls)}` : ''}`])
  }
  const w = Math.max(...lines.map(([k]) => k.length))
  for (const [k, v] of lines) out.push(`${k.padEnd(w)}  ${v}`)
  return out.join('\n')
}
