/**
 * One drawn uplink mix (bond-mixes.ts) measured the way bench/multipath
 * --random does, on its own bonding lab:
 *
 *   raw       the links alone, each direction, -P4: whether the emulation
 *             kept up (a mix the machine cannot emulate says so)
 *   singles   QuicEther over each uplink alone, per direction set and -P
 *   bonded    every direction set and -P, with the interactive ping
 *   cut       (every other mix) bonded again per -P with upload and
 *             download at once, one uplink cut at the mix's time: the dip
 *             each way, and resets
 *
 * Each figure says its direction; the worst and the median over all mixes
 * are taken by `summarizeMixes` (pure).
 */
import { BondLab } from './bond.js'
import type { EmulationFigures } from './delay.js'
import { bondResult, rawResult, type RunCpu } from './bond-figures.js'
import { describeUplink, parseUplinks, type BondMode, type CutSpec, type UplinkSpec } from './bond-spec.js'
import { directionsOf, type Direction, type DirectionSet } from './bond-direction.js'
import { lossAtMost, mixUplinkFlags, type Mix } from './bond-mixes.js'
import { SATURATED, round, type BondResult, type RawResult } from './bond-report.js'
import { median } from './traffic.js'

/** The issue's bars for drawn mixes. */
export const MIX_BARS = { efficiencyP4: 0.95, efficiencyP1: 0.9, efficiencyMedian: 0.98, rateEfficiency: 0.85, rateLossMax: 0.01, dipMs: 1000, dipMedianMs: 300, resets: 0, interactiveMs: 10 } as const

export interface MixFigure {
  readonly mix: number
  readonly set: DirectionSet
  readonly direction: Direction
  readonly streams: number
  readonly total_mbit: number | null
  readonly single_sum_mbit: number | null
  readonly sum_mbit: number
  readonly efficiency: number | null
  readonly rate_efficiency: number | null
  /** Rate efficiency is judged: no uplink loses more than MIX_BARS.rateLossMax this way. */
  readonly rate_judged: boolean
  readonly interactive_delta_ms: number | null
  /** The same less the pings caught in one of the machine's stalls (bond-report.ts OutsideStalls); null: not measured. */
  readonly interactive_outside_stalls_delta_ms: number | null
  readonly resets: number
  readonly bonded: boolean
  readonly cpu_bonded_s_per_gbit: number | null
  readonly cpu_single_s_per_gbit: number | null
  /** The machine's cores were saturated during the bonded run (bond-report.ts SATURATED). */
  readonly saturated: boolean
  /** The daemons' threads' wait for a core during the bonded run, ms per second (bond-report.ts CpuFigures). */
  readonly daemons_wait_ms_per_s: number | null
}

export interface MixCutFigure {
  readonly mix: number
  readonly direction: Direction
  readonly streams: number
  readonly uplink: number
  readonly at_s: number
  readonly dip_ms: number | null
  readonly recovered: boolean | null
  /** The dip less the series' own noise before the cut (CutFigures.dip_beyond_noise_ms): read beside dip_ms, not judged. */
  readonly dip_beyond_noise_ms: number | null
  readonly pre_mbit: number | null
  readonly post_mbit: number | null
  readonly surviving_mbit: number | null
  readonly resets: number
}

export interface MixResult {
  readonly index: number
  readonly uplinks: readonly string[]
  readonly flags: readonly string[]
  readonly mix: Mix
  readonly run_id: string
  readonly ok: boolean
  readonly error?: string
  readonly raw: readonly RawResult[]
  readonly figures: readonly MixFigure[]
  readonly cuts: readonly MixCutFigure[]
  /** Every bonded result in full (series, paths, reorder counts). */
  readonly bonded: readonly BondResult[]
  /** How closely the mix's delay lines kept their delays over all its runs. */
  readonly emulation: EmulationFigures | null
}

export interface MixRunOptions {
  readonly seconds: number
  readonly streams: readonly number[]
  readonly sets: readonly DirectionSet[]
  readonly mode: BondMode
  readonly congestion: string
  readonly signal: AbortSignal
  readonly say: (line: string) => void
  /** The seed of the mixes: the jitter and the variation of mix K are drawn from it and K. */
  readonly seed: number
}

/** The mix as the lab's uplink specs. */
export function mixUplinks(mix: Mix): UplinkSpec[] {
  const specs = parseUplinks(mixUplinkFlags(mix))
  return specs.map((u, i) => {
    const j = mix.uplinks[i]?.jitterMs ?? 0
    return j > 0 ? { ...u, up: { ...u.up, jitter: j }, down: { ...u.down, jitter: j } } : u
  })
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

export async function runMix(mix: Mix, o: MixRunOptions): Promise<MixResult> {
  const uplinks = mixUplinks(mix)
  const say = (s: string): void => o.say(`mix ${mix.index}: ${s}`)
  const vary = mix.uplinks.flatMap((u, i) => (u.vary ? [i] : []))
  const bl = new BondLab({ uplinks, congestion: o.congestion, vary, seed: (o.seed + mix.index * 0x9e3779b1) >>> 0, signal: o.signal, progress: say })
  const base = { index: mix.index, uplinks: uplinks.map((u, i) => `${u.name} ${describeUplink(u)}${mix.uplinks[i]?.vary ? ', varies' : ''}`), flags: mixUplinkFlags(mix), mix, run_id: bl.runId }
  const figures: MixFigure[] = []
  const cuts: MixCutFigure[] = []
  const bonded: BondResult[] = []
  const raw: RawResult[] = []
  return bl.around(async () => {
    try {
      await bl.start()
      const ifnames = bl.lab.links.map((l) => l.ifA)
      for (const dir of ['up', 'down'] as const) raw.push(rawResult({ runs: await bl.raw(4, o.seconds, dir), uplinks, streams: 4, seconds: o.seconds, congestion: o.congestion, runId: bl.runId, direction: dir }))
      const singles = await bl.singles(o.streams, o.seconds, o.sets)
      const common = { uplinks, ifnames, mode: o.mode, seconds: o.seconds, congestion: o.congestion, runId: bl.runId }
      for (const set of o.sets) {
        for (const P of o.streams) {
          const runs = await bl.bonded({ mode: o.mode, streams: P, seconds: o.seconds, cut: null, interactive: true, direction: set })
          for (const run of runs) {
            const r = bondResult({ ...common, run, streams: P, cut: null, singles: singles.mbit(set, run.direction, P), singlesCpu: singles.cpu(set, P) as RunCpu | null })
            bonded.push(r)
            figures.push({
              mix: mix.index,
              set,
              direction: run.direction,
              streams: P,
              total_mbit: r.total_mbit,
              single_sum_mbit: r.single_sum_mbit,
              sum_mbit: r.sum_mbit,
              efficiency: r.efficiency,
              rate_efficiency: r.rate_efficiency,
              rate_judged: lossAtMost(mix, run.direction, MIX_BARS.rateLossMax),
              interactive_delta_ms: r.interactive?.delta_ms ?? null,
              interactive_outside_stalls_delta_ms: r.interactive?.outside_stalls?.delta_ms ?? null,
              resets: r.resets,
              bonded: r.bonded,
              cpu_bonded_s_per_gbit: r.cpu.bonded_s_per_gbit,
              cpu_single_s_per_gbit: r.cpu.single_s_per_gbit,
              saturated: (r.cpu.machine_busy ?? 0) >= SATURATED,
              daemons_wait_ms_per_s: r.cpu.daemons_wait_ms_per_s ?? null,
            })
          }
        }
      }
      if (mix.cut) {
        const cut: CutSpec = { index: mix.cut.index, atS: round(mix.cut.atFrac * o.seconds, 2) }
        for (const P of o.streams) {
          const runs = await bl.bonded({ mode: o.mode, streams: P, seconds: o.seconds, cut, interactive: false, direction: 'both' })
          for (const run of runs) {
            const r = bondResult({ ...common, run, streams: P, cut, singles: singles.mbit(o.sets.includes('both') ? 'both' : run.direction, run.direction, P) })
            bonded.push(r)
            cuts.push({ mix: mix.index, direction: run.direction, streams: P, uplink: cut.index + 1, at_s: cut.atS, dip_ms: r.dip_ms, recovered: r.cut?.recovered ?? null, dip_beyond_noise_ms: r.cut?.dip_beyond_noise_ms ?? null, pre_mbit: r.cut?.pre_mbit ?? null, post_mbit: r.cut?.post_mbit ?? null, surviving_mbit: r.cut?.surviving_mbit ?? null, resets: r.resets })
          }
        }
      }
      return { ...base, ok: true, raw, figures, cuts, bonded }
    } catch (err) {
      if (o.signal.aborted) throw err
      say(`failed: ${errText(err).split('\n')[0]}`)
      return { ...base, ok: false, error: errText(err), raw, figures, cuts, bonded }
    }
  })
}

export interface MixBar {
  readonly what: string
  readonly bar: string
  readonly measured: string
  /** The figure behind `measured` (mix, direction, -P) for the worst case. */
  readonly worst: string
  readonly pass: boolean | null
}

function worstOf<T>(xs: readonly T[], key: (x: T) => number | null, lowIsBad: boolean): { x: T; v: number } | null {
  let best: { x: T; v: number } | null = null
  for (const x of xs) {
    const v = key(x)
    if (v === null || !Number.isFinite(v)) continue
    if (!best || (lowIsBad ? v < best.v : v > best.v)) best = { x, v }
  }
  return best
}

const where = (f: { mix: number; direction: Direction; streams: number; set?: DirectionSet }): string => `mix ${f.mix} ${f.direction}${f.set === 'both' ? ' (both)' : ''} -P${f.streams}`

/** The bars over every mix: worst cases and medians. */
export function summarizeMixes(results: readonly MixResult[]): MixBar[] {
  const figs = results.flatMap((r) => r.figures)
  const cuts = results.flatMap((r) => r.cuts)
  const out: MixBar[] = []
  for (const [P, bar] of [[4, MIX_BARS.efficiencyP4], [1, MIX_BARS.efficiencyP1]] as const) {
    for (const dir of directionsOf('both')) {
      const fs = figs.filter((f) => (P === 4 ? f.streams >= 4 : f.streams < 4) && f.direction === dir)
      if (fs.length === 0) continue
      const w = worstOf(fs, (f) => f.efficiency, true)
      out.push({ what: `efficiency, worst mix, ${dir} -P${P === 4 ? '4+' : '1'}`, bar: `≥ ${bar}`, measured: w ? w.v.toFixed(3) : '—', worst: w ? where(w.x) : '', pass: w ? w.v >= bar : null })
    }
  }
  const effs = figs.map((f) => f.efficiency).filter((x): x is number => x !== null)
  const med = effs.length ? median(effs) : null
  out.push({ what: 'efficiency, median of all', bar: `≥ ${MIX_BARS.efficiencyMedian}`, measured: med === null ? '—' : med.toFixed(3), worst: `${effs.length} figures`, pass: med === null ? null : med >= MIX_BARS.efficiencyMedian })
  const judged = figs.filter((f) => f.rate_judged)
  const wr = worstOf(judged, (f) => f.rate_efficiency, true)
  out.push({ what: `rate efficiency, worst (no uplink > ${MIX_BARS.rateLossMax * 100}% loss)`, bar: `≥ ${MIX_BARS.rateEfficiency}`, measured: wr ? wr.v.toFixed(3) : '—', worst: wr ? where(wr.x) : `${judged.length} judged`, pass: wr ? wr.v >= MIX_BARS.rateEfficiency : null })
  const dips = cuts.map((c) => c.dip_ms)
  const wd = worstOf(cuts, (c) => c.dip_ms, false)
  const unrecovered = cuts.filter((c) => c.recovered === false)
  out.push({ what: 'dip after a cut, worst (ms)', bar: `< ${MIX_BARS.dipMs}`, measured: wd ? `${wd.v}${unrecovered.length ? `; ${unrecovered.length} never recovered` : ''}` : '—', worst: wd ? where(wd.x) : '', pass: wd ? wd.v < MIX_BARS.dipMs && unrecovered.length === 0 : null })
  const known = dips.filter((x): x is number => x !== null)
  const dmed = known.length ? median(known) : null
  out.push({ what: 'dip after a cut, median (ms)', bar: `< ${MIX_BARS.dipMedianMs}`, measured: dmed === null ? '—' : String(Math.round(dmed)), worst: `${known.length} cuts`, pass: dmed === null ? null : dmed < MIX_BARS.dipMedianMs })
  const beyond = cuts.map((c) => c.dip_beyond_noise_ms).filter((x): x is number => x !== null)
  const wb = worstOf(cuts, (c) => c.dip_beyond_noise_ms, false)
  out.push({ what: "  the dip beyond the series' own noise before the cut, worst / median (read beside)", bar: '—', measured: wb ? `${wb.v} / ${Math.round(median(beyond))}` : '—', worst: wb ? where(wb.x) : '', pass: null })
  const resets = figs.reduce((s, f) => s + f.resets, 0) + cuts.reduce((s, c) => s + c.resets, 0)
  out.push({ what: 'resets, all runs', bar: `= ${MIX_BARS.resets}`, measured: String(resets), worst: '', pass: resets === MIX_BARS.resets })
  const wi = worstOf(figs, (f) => f.interactive_delta_ms, false)
  out.push({ what: 'interactive ping p99 under load − idle, worst (ms)', bar: `≤ ${MIX_BARS.interactiveMs}`, measured: wi ? wi.v.toFixed(2) : '—', worst: wi ? where(wi.x) : '', pass: wi ? wi.v <= MIX_BARS.interactiveMs : null })
  const wo = worstOf(figs, (f) => f.interactive_outside_stalls_delta_ms, false)
  out.push({ what: "  the same over the pings outside the machine's stalls (read beside it)", bar: '—', measured: wo ? wo.v.toFixed(2) : '—', worst: wo ? where(wo.x) : '', pass: null })
  const saturated = figs.filter((f) => f.saturated)
  out.push({ what: 'runs with the machine saturated (the emulation may have limited them)', bar: '—', measured: `${saturated.length} of ${figs.length}`, worst: saturated[0] ? where(saturated[0]) : '', pass: null })
  const notBonded = figs.filter((f) => !f.bonded)
  out.push({ what: 'runs that bonded', bar: 'all', measured: `${figs.length - notBonded.length} of ${figs.length}`, worst: notBonded[0] ? where(notBonded[0]) : '', pass: notBonded.length === 0 })
  const cpuExtra = figs.map((f) => (f.cpu_bonded_s_per_gbit !== null && f.cpu_single_s_per_gbit !== null ? f.cpu_bonded_s_per_gbit - f.cpu_single_s_per_gbit : null)).filter((x): x is number => x !== null)
  const cmed = cpuExtra.length ? median(cpuExtra) : null
  out.push({ what: 'CPU bonding adds, median (s per Gbit = cores per Gbit/s)', bar: '< 0.1', measured: cmed === null ? '—' : cmed.toFixed(3), worst: `${cpuExtra.length} runs`, pass: cmed === null ? null : cmed < 0.1 })
  return out
}
