/**
 * The figures of the bonding lab's measurements (pure): what a transfer's
 * goodput is, and how a bonded run, the raw links and MPTCP are set against
 * the baselines into the issue's figures (see bond-report.ts for the JSON
 * shapes and tables). A figure that was not measured is null.
 */
import { meanMbit } from './bond-series.js'
import type { BondMode, CutSpec, UplinkSpec } from './bond-spec.js'
import { rateOf, rateSumOf, type Direction, type DirectionSet } from './bond-direction.js'
import type { BondVerdict, DaemonBond } from './bond-paths.js'
import type { TransferResult } from './bond-transfer.js'
import {
  RAW_BAR,
  attribute,
  cutFigures,
  ratio,
  round,
  sumOrNull,
  survivingCapacity,
  type BondResult,
  type CutFigures,
  type InteractiveFigures,
  type PathFigure,
  type RawResult,
} from './bond-report.js'

/**
 * Seconds at the start of every transfer left out of its goodput: slow
 * start, and the loss recovery after it, whose held-back data reaches the
 * receiving application in a catch-up burst (it would flatter the next
 * second). A quarter of a transfer shorter than 8 s. The goodput is what the
 * receiver got from then to the end, from its 0.1 s report; iperf3's own
 * warm-up (-O) would count the bytes in flight at its end, which flatters
 * long-delay links the same way.
 */
export const WARMUP_S = 2

export function warmupFor(seconds: number): number {
  return Math.min(WARMUP_S, seconds / 4)
}

export interface Measured {
  /** Receiver goodput after the warm-up, Mbit/s; null when nothing was measured. */
  readonly mbit: number | null
  /** iperf3's own figure for the whole transfer; null when iperf3 failed. */
  readonly iperfMbit: number | null
  readonly retransmits: number | null
  readonly error: string | null
}

/**
 * The receiver's goodput from the end of the warm-up to the planned end
 * (`seconds`), from its report: a transfer that stopped early counts as
 * zero for the rest. Null when the report is empty.
 */
export function goodput(t: Pick<TransferResult, 'points'>, seconds: number, warmupS = warmupFor(seconds)): number | null {
  if (t.points.length === 0) return null
  const from = warmupS * 1000
  const end = Math.max(seconds * 1000, ...t.points.map((p) => p.endMs))
  if (end <= from) return null
  const m = meanMbit(t.points, from, end)
  if (!Number.isFinite(m)) return 0
  const covered = t.points.reduce((s, p) => s + Math.max(0, Math.min(p.endMs, end) - Math.max(p.startMs, from)), 0)
  return round((m * covered) / (end - from), 2)
}

/** "92.1 Mbit/s" (and iperf3's error) for progress lines. */
export function describe(m: Measured): string {
  return `${m.mbit === null ? '—' : m.mbit.toFixed(1)} Mbit/s${m.error ? ` (iperf3 failed: ${m.error})` : ''}`
}

/** A transfer's figures: goodput after the warm-up, iperf3's own, its retransmits and error. */
export function measured(t: TransferResult, seconds: number): Measured {
  return { mbit: goodput(t, seconds), iperfMbit: t.iperf ? round(t.iperf.mbit, 2) : null, retransmits: t.iperf?.retransmits ?? null, error: t.error }
}

/** CPU the two daemons used during a measured run, and the goodput it moved (every direction of the run). */
export interface RunCpu {
  readonly seconds: number
  readonly bytes: number
  /** How busy the machine's cores were over the run (0..1), when measured: near 1, the emulation may have been the limit. */
  readonly machineBusy?: number | null
  /** The daemons' threads' wait for a core, seconds per second of the run (CpuMeter.waitPerSecond). */
  readonly daemonsWaitPerSecond?: number | null
}

/** CPU seconds per Gbit of goodput; null when nothing moved. */
export function cpuPerGbitOf(c: RunCpu | null | undefined): number | null {
  if (!c || c.bytes <= 0) return null
  return round(c.seconds / ((c.bytes * 8) / 1e9), 3)
}

/** Bytes the receiver reported over the whole series (the warm-up included: the CPU was spent on it too). */
export function seriesBytes(t: Pick<TransferResult, 'points'>): number {
  return t.points.reduce((s, p) => s + (p.mbit * 1e6 * Math.max(0, p.endMs - p.startMs)) / 1000 / 8, 0)
}

/** What one bonded run measured, before it is set against the singles. */
export interface BondedRun {
  /** Which way this transfer ran (a `both` run yields one of each). */
  readonly direction: Direction
  /** Each uplink's mean rate this way over the measured window when rates varied (bits/s); null: the configured rates held. */
  readonly rates?: readonly number[] | null
  /** The daemons' CPU over the run (shared by the directions of a `both` run); null when not measured. */
  readonly cpu: RunCpu | null
  readonly verdict: BondVerdict
  readonly daemonPaths: number | null
  /** The daemons' counts over the transfer: reordering at the gateway (where it arrives), re-sends at the client; null when they report none. */
  readonly bond: DaemonBond | null
  readonly transfer: TransferResult
  readonly resets: number
  /** The TCP failure counters that moved over the transfer (tcpFailureDetail); null: the reading ran past its end. */
  readonly resetCounters?: Record<string, number> | null
  /** Per link: bytes the client sent on it, and its figures. */
  readonly links: readonly {
    readonly txBytes: number
    readonly wireMbit: number
    readonly rttMs: number | null
    readonly rttSource: 'daemon' | 'link-ping' | null
    readonly loss: number | null
    readonly lossSource: 'daemon' | 'router' | null
  }[]
  readonly interactive: InteractiveFigures | null
}

export interface MptcpRun {
  readonly transfer: TransferResult
  readonly txBytes: readonly number[]
  /** MPTCP connections opened (iperf3's control connection and each stream's) and subflows joined to them. */
  readonly connections: number
  readonly joined: number
  /** Links that carried the transfer (0-based). */
  readonly carrying: readonly number[]
  /** Connections iperf3 saw fail (its error): MPTCP's resets. */
  readonly resets: number
  /** Subflows reset or timed out (a cut link's subflow is expected here). */
  readonly subflowFailures: number
}

/** Sets a bonded run against the single-uplink goodputs: the issue's figures. */
export function bondResult(o: {
  run: BondedRun
  uplinks: readonly UplinkSpec[]
  ifnames: readonly string[]
  singles: readonly (number | null)[]
  mode: BondMode
  streams: number
  seconds: number
  congestion: string | null
  /** The TCP buffer limit set at both ends (null or unset: the kernel's defaults). */
  tcpBuffer?: number | null
  cut: CutSpec | null
  runId: string
  /** The single-uplink runs' CPU, summed over the uplinks (bonded CPU per Gbit is set beside it). */
  singlesCpu?: RunCpu | null
  /** Each uplink's mean rate in this direction over the transfer, bits/s, when it moved (a varied uplink); else its configured rate. */
  rates?: readonly number[]
}): BondResult {
  const { run, uplinks } = o
  const dir = run.direction
  const rates = o.rates ?? run.rates ?? uplinks.map((u) => rateOf(u, dir))
  const rateTotal = rates.reduce((s, r) => s + r, 0)
  const t = run.transfer
  const total = goodput(t, o.seconds)
  const singleSum = sumOrNull(o.singles)
  const shares = attribute(total, run.links.map((l) => l.txBytes))
  const paths: PathFigure[] = uplinks.map((u, i) => {
    const l = run.links[i]!
    return {
      uplink: i + 1,
      name: u.name,
      ifname: o.ifnames[i] ?? '',
      rate_mbit: round((rates[i] ?? 0) / 1e6, 3),
      rate_up_mbit: (u.up.rate ?? 0) / 1e6,
      rate_down_mbit: (u.down.rate ?? 0) / 1e6,
      delay_ms: dir === 'up' ? u.up.delay : u.down.delay,
      loss_cfg: dir === 'up' ? u.up.loss : u.down.loss,
      single_mbit: o.singles[i] ?? null,
      mbit: shares[i] ?? null,
      wire_mbit: l.wireMbit,
      rtt_ms: l.rttMs,
      rtt_source: l.rttSource,
      loss: l.loss,
      loss_source: l.lossSource,
    }
  })
  let dip: number | null = null
  let cut = null
  if (o.cut) {
    const f = cutFigures({ points: t.points, cutMs: t.cutMs, index: o.cut.index, survivingMbit: survivingCapacity(o.singles, o.cut.index), endMs: o.seconds * 1000, warmupMs: warmupFor(o.seconds) * 1000 })
    dip = f.dipMs
    cut = f.cut
  }
  const cpuBonded = cpuPerGbitOf(run.cpu)
  const cpuSingle = cpuPerGbitOf(o.singlesCpu)
  return {
    direction: dir,
    bonded: run.verdict.bonded,
    bond_detection: run.verdict.why,
    daemon_paths: run.daemonPaths,
    mode: o.mode,
    streams: o.streams,
    seconds: o.seconds,
    congestion: o.congestion,
    tcp_buffer: o.tcpBuffer ?? null,
    total_mbit: total,
    single_sum_mbit: singleSum,
    sum_mbit: round(rateTotal / 1e6, 3),
    efficiency: ratio(total, singleSum),
    rate_efficiency: ratio(total, rateTotal / 1e6),
    cpu: { bonded_s_per_gbit: cpuBonded, single_s_per_gbit: cpuSingle, extra_s_per_gbit: cpuBonded !== null && cpuSingle !== null ? round(cpuBonded - cpuSingle, 3) : null, machine_busy: run.cpu?.machineBusy == null ? null : round(run.cpu.machineBusy, 3), daemons_wait_ms_per_s: run.cpu?.daemonsWaitPerSecond == null ? null : round(run.cpu.daemonsWaitPerSecond * 1000, 1) },
    paths,
    dip_ms: dip,
    resets: run.resets,
    reset_counters: run.resetCounters ?? null,
    cut,
    retransmits: t.iperf?.retransmits ?? null,
    error: t.error,
    interactive: run.interactive,
    bond_stats: run.bond,
    series: t.points.map((p) => [round(p.startMs / 1000, 2), round(p.mbit, 2)] as const),
    run_id: o.runId,
  }
}

/** The raw links' figures against their rates. */
export function rawResult(o: { runs: readonly Measured[]; uplinks: readonly UplinkSpec[]; streams: number; seconds: number; congestion: string | null; runId: string; direction?: Direction }): RawResult {
  const dir = o.direction ?? 'up'
  const links = o.uplinks.map((u, i) => {
    const m = o.runs[i]!
    const rate = rateOf(u, dir) / 1e6
    return { uplink: i + 1, name: u.name, rate_mbit: rate, mbit: m.mbit, ratio: ratio(m.mbit, rate), retransmits: m.retransmits, error: m.error, lossy: (dir === 'up' ? u.up.loss : u.down.loss) > 0 }
  })
  return {
    direction: dir,
    raw: true,
    streams: o.streams,
    seconds: o.seconds,
    congestion: o.congestion,
    links,
    total_mbit: sumOrNull(links.map((l) => l.mbit)),
    sum_mbit: round(rateSumOf(o.uplinks, dir) / 1e6, 3),
    bar: RAW_BAR,
    pass: links.every((l) => l.error === null && (l.lossy || (l.ratio !== null && l.ratio >= RAW_BAR))),
    run_id: o.runId,
  }
}

/** The MPTCP comparison `lab bond --mptcp` adds. */
export interface MptcpFigures {
  readonly total_mbit: number | null
  /** Plain TCP over each link (all at once), summed: MPTCP's baseline. */
  readonly tcp_sum_mbit: number | null
  readonly efficiency: number | null
  readonly subflows_joined: number
  readonly connections: number
  readonly links_used: number
  readonly dip_ms: number | null
  readonly cut: CutFigures | null
  readonly resets: number
  readonly subflow_failures: number
  readonly error: string | null
}

/** MPTCP's figures against plain TCP over each link. */
export function mptcpFigures(m: MptcpRun, tcpSingles: readonly (number | null)[], cut: CutSpec | null, seconds: number): MptcpFigures {
  const total = goodput(m.transfer, seconds)
  const tcpSum = sumOrNull(tcpSingles)
  const c = cut ? cutFigures({ points: m.transfer.points, cutMs: m.transfer.cutMs, index: cut.index, survivingMbit: survivingCapacity(tcpSingles, cut.index), endMs: seconds * 1000, warmupMs: warmupFor(seconds) * 1000 }) : null
  return {
    total_mbit: total,
    tcp_sum_mbit: tcpSum,
    efficiency: ratio(total, tcpSum),
    subflows_joined: m.joined,
    connections: m.connections,
    links_used: m.carrying.length,
    dip_ms: c?.dipMs ?? null,
    cut: c?.cut ?? null,
    resets: m.resets,
    subflow_failures: m.subflowFailures,
    error: m.transfer.error,
  }
}

/**
 * QuicEther over each uplink alone, per direction set, direction and stream
 * count: the goodput per uplink, and the daemons' CPU summed over the
 * uplinks' runs.
 */
export class Singles {
  readonly #m = new Map<string, (Measured | null)[]>()
  readonly #cpu = new Map<string, RunCpu>()

  constructor(readonly uplinks: number) {}

  set(set: DirectionSet, dir: Direction, streams: number, uplink: number, m: Measured): void {
    const k = `${set}/${dir}/${streams}`
    const row = this.#m.get(k) ?? Array.from({ length: this.uplinks }, () => null)
    row[uplink] = m
    this.#m.set(k, row)
  }

  /** Goodput per uplink (null: not measured). */
  mbit(set: DirectionSet, dir: Direction, streams: number): (number | null)[] {
    return (this.#m.get(`${set}/${dir}/${streams}`) ?? Array.from({ length: this.uplinks }, () => null)).map((m) => m?.mbit ?? null)
  }

  addCpu(set: DirectionSet, streams: number, c: RunCpu): void {
    const k = `${set}/${streams}`
    const prev = this.#cpu.get(k) ?? { seconds: 0, bytes: 0 }
    this.#cpu.set(k, { seconds: prev.seconds + c.seconds, bytes: prev.bytes + c.bytes })
  }

  cpu(set: DirectionSet, streams: number): RunCpu | null {
    return this.#cpu.get(`${set}/${streams}`) ?? null
  }
}
