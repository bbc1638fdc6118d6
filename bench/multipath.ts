/**
 * bench/multipath: QuicEther bonding against the uplinks alone and against
 * kernel MPTCP, on the issue's three users' links (issue 5), in one run:
 *
 *   rural     25, 50, 50, 100 Mbit/s; one-way 15, 10, 35, 40 ms
 *   creator   50 Mbit/s with 2% loss + 100 Mbit/s with 30 ms
 *   homelab   2 × 100 Mbit/s at 5 and 20 ms
 *
 * Per scenario and per iperf3 -P1 / -P4, on one lab per scenario (bond.ts):
 * the raw links (TCP over each at once: the emulation must not be the
 * bottleneck, and MPTCP's baseline), kernel MPTCP, QuicEther over each
 * uplink alone, QuicEther bonded (with an interactive-class ping under load
 * against its idle p99), then MPTCP and QuicEther again with the biggest
 * uplink cut half-way. The table shows each figure beside its bar.
 *
 *   sudo node --import tsx bench/multipath.ts [--seconds 20] [--quick] [--only rural,creator,homelab,rural-down|none]
 *                                   [--streams 1,4] [--mode aggregate] [--congestion cubic] [--json] [--out FILE]
 *                                   [--random N [--seed S] [--mix K] [--directions up,down,both] [--random-seconds 10] [--budget 400]]
 *
 * rural-down is the rural user's acceptance scenario: their real uplinks
 * (DSL 5/25, cable 10/50, LTE 20/50 with 1% loss, Starlink 20/100 Mbit/s
 * up/down), a download (gateway → client) with Starlink cut half-way.
 *
 * --random N draws N uplink mixes from a seed (src/lab/bond-mixes.ts; a
 * fresh one from the clock, printed, unless --seed is given; --mix K runs
 * only the K-th of them, to replay it) and measures each in every direction
 * set and -P (src/lab/bond-random.ts), then reports every mix and the worst
 * and median over all of them against the issue's bars. The named
 * scenarios run in the same invocation unless --only none.
 *
 * Needs the compiled tree (npm run build: the daemons run it) and mptcpize.
 * JSON goes to --out (default <tmp>/quicether-multipath.json) or to stdout
 * with --json (the table then goes to stderr). Traffic stays inside the
 * bench's own namespaces. Exit code 0 when every measurement ran (not
 * whether the bars hold).
 */
import { writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BondLab } from '../src/lab/bond.js'
import type { EmulationFigures } from '../src/lab/delay.js'
import { bondResult, mptcpFigures, rawResult, warmupFor, type Measured, type MptcpFigures } from '../src/lab/bond-figures.js'
import { describeUplink, parseCongestion, parseMode, parseUplinks, type BondMode, type CutSpec, type UplinkSpec } from '../src/lab/bond-spec.js'
import { emulationText, fmt, round, sumOrNull, type BondResult, type RawResult } from '../src/lab/bond-report.js'
import { withInterrupts } from '../src/lab/interrupt.js'
import { LabAbortedError } from '../src/lab/errors.js'
import { requireMptcpize } from '../src/lab/mptcp.js'
import { parsePositiveInt } from '../src/lab/units.js'
import { RURAL_UPLINK_FLAGS } from '../src/lab/demo-bond.js'
import { biggestUplinkOf, parseDirection, rateSumOf, type Direction, type DirectionSet } from '../src/lab/bond-direction.js'
import { drawMixes, freshSeed } from '../src/lab/bond-mixes.js'
import { runMix, summarizeMixes, type MixBar, type MixResult } from '../src/lab/bond-random.js'

const SCENARIOS: Record<string, { title: string; uplinks: string[]; direction?: Direction }> = {
  rural: { title: 'rural user: DSL, cable, LTE, Starlink', uplinks: ['dsl=25mbit,15ms', 'cable=50mbit,10ms', 'lte=50mbit,35ms', 'starlink=100mbit,40ms'] },
  creator: { title: 'travelling creator: hotel Wi-Fi + phone hotspot', uplinks: ['wifi=50mbit,0ms,2%', 'hotspot=100mbit,30ms'] },
  homelab: { title: 'dual-ISP homelab', uplinks: ['isp1=100mbit,5ms', 'isp2=100mbit,20ms'] },
  'rural-down': { title: "rural user's download: DSL, cable, LTE, Starlink at their real up/down rates, Starlink cut", uplinks: [...RURAL_UPLINK_FLAGS], direction: 'down' },
}

/** The issue's bars. */
const BAR = { efficiencyP4: 0.95, efficiencyP1: 0.9, dipMs: 1000, resets: 0, interactiveMs: 10, raw: 0.95 }

interface StreamFigures {
  streams: number
  raw: RawResult
  singles: readonly (number | null)[]
  singles_error?: string
  single_sum_mbit: number | null
  bonded: BondResult | null
  bonded_error?: string
  mptcp: MptcpFigures | null
  mptcp_error?: string
  cut: { uplink: number; at_s: number; bonded: BondResult | null; bonded_error?: string; mptcp: MptcpFigures | null; mptcp_error?: string }
}

interface ScenarioResult {
  name: string
  title: string
  direction: Direction
  uplinks: string[]
  sum_mbit: number
  run_id: string
  ok: boolean
  error?: string
  streams: StreamFigures[]
  /** How closely the scenario's delay lines kept their delays over all its runs. */
  emulation: EmulationFigures | null
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** Runs `fn`; a failure is recorded (and the run goes on), except an interrupt. */
async function attempt<T>(signal: AbortSignal, say: (s: string) => void, what: string, fn: () => Promise<T>): Promise<{ value: T | null; error?: string }> {
  try {
    return { value: await fn() }
  } catch (err) {
    if (signal.aborted) throw err
    say(`${what} failed: ${errText(err).split('\n')[0]}`)
    return { value: null, error: errText(err) }
  }
}

async function scenario(name: string, o: { seconds: number; streams: number[]; mode: BondMode; congestion: string; signal: AbortSignal; say: (s: string) => void }): Promise<ScenarioResult> {
  const def = SCENARIOS[name]!
  const dir: Direction = def.direction ?? 'up'
  const uplinks: UplinkSpec[] = parseUplinks(def.uplinks)
  const cut: CutSpec = { index: biggestUplinkOf(uplinks, dir), atS: o.seconds / 2 }
  const say = (s: string): void => o.say(`${name}: ${s}`)
  const bl = new BondLab({ uplinks, congestion: o.congestion, signal: o.signal, progress: say })
  const base = { name, title: def.title, direction: dir, uplinks: uplinks.map((u) => `${u.name} ${describeUplink(u)}`), sum_mbit: round(rateSumOf(uplinks, dir) / 1e6, 3), run_id: bl.runId }
  return bl.around(async () => {
    try {
      await bl.start()
      const ifnames = bl.lab.links.map((l) => l.ifA)
      const raws = new Map<number, Measured[]>()
      for (const P of o.streams) raws.set(P, await bl.raw(P, o.seconds, dir))
      // Kernel MPTCP is measured for uploads (the client opens the subflows); a download scenario has none.
      const mptcp = new Map<number, { plain: Awaited<ReturnType<typeof attempt<MptcpFigures>>>; cut: Awaited<ReturnType<typeof attempt<MptcpFigures>>> }>()
      for (const P of dir === 'up' ? o.streams : []) {
        const tcp = raws.get(P)!.map((m) => m.mbit)
        const plain = await attempt(o.signal, say, `MPTCP -P${P}`, async () => mptcpFigures(await bl.mptcp({ streams: P, seconds: o.seconds, cut: null }), tcp, null, o.seconds))
        const withCut = await attempt(o.signal, say, `MPTCP -P${P} with a cut`, async () => mptcpFigures(await bl.mptcp({ streams: P, seconds: o.seconds, cut }), tcp, cut, o.seconds))
        mptcp.set(P, { plain, cut: withCut })
      }
      const singlesRun = await attempt(o.signal, say, 'QuicEther over each uplink alone', () => bl.singles(o.streams, o.seconds, [dir]))
      const streams: StreamFigures[] = []
      const one = async (P: number, c: CutSpec | null): Promise<BondResult> => {
        const [run] = await bl.bonded({ mode: o.mode, streams: P, seconds: o.seconds, cut: c, interactive: c === null, direction: dir })
        if (!run) throw new Error('the bonded transfer did not run')
        return bondResult({ ...common(P), run, cut: c })
      }
      const common = (P: number): Omit<Parameters<typeof bondResult>[0], 'run' | 'cut'> => ({ uplinks, ifnames, singles: singlesRun.value?.mbit(dir, dir, P) ?? uplinks.map(() => null), singlesCpu: singlesRun.value?.cpu(dir, P) ?? null, mode: o.mode, streams: P, seconds: o.seconds, congestion: o.congestion, runId: bl.runId })
      for (const P of o.streams) {
        const single = common(P).singles
        const bonded = await attempt(o.signal, say, `bonded -P${P}`, () => one(P, null))
        const bondedCut = await attempt(o.signal, say, `bonded -P${P} with a cut`, () => one(P, cut))
        const m = mptcp.get(P) ?? { plain: { value: null }, cut: { value: null } }
        streams.push({
          streams: P,
          raw: rawResult({ runs: raws.get(P)!, uplinks, streams: P, seconds: o.seconds, congestion: o.congestion, runId: bl.runId, direction: dir }),
          singles: single,
          ...(singlesRun.error ? { singles_error: singlesRun.error } : {}),
          single_sum_mbit: sumOrNull(single),
          bonded: bonded.value,
          ...(bonded.error ? { bonded_error: bonded.error } : {}),
          mptcp: m.plain.value,
          ...(m.plain.error ? { mptcp_error: m.plain.error } : {}),
          cut: {
            uplink: cut.index + 1,
            at_s: cut.atS,
            bonded: bondedCut.value,
            ...(bondedCut.error ? { bonded_error: bondedCut.error } : {}),
            mptcp: m.cut.value,
            ...(m.cut.error ? { mptcp_error: m.cut.error } : {}),
          },
        })
      }
      return { ...base, ok: true, streams }
    } catch (err) {
      if (o.signal.aborted) throw err
      say(`failed: ${errText(err).split('\n')[0]}`)
      return { ...base, ok: false, error: errText(err), streams: [] }
    }
  })
}

type Verdict = 'PASS' | 'FAIL' | 'not bonded' | 'n/a'

interface BarRow {
  scenario: string
  streams: number
  what: string
  bar: string
  measured: string
  verdict: Verdict
}

function verdict(ok: boolean | null, bonded: boolean | null = true): Verdict {
  if (ok === null) return 'n/a'
  if (bonded === false) return 'not bonded'
  return ok ? 'PASS' : 'FAIL'
}

/** Every bar of one scenario and stream count. */
function bars(s: ScenarioResult, f: StreamFigures): BarRow[] {
  const row = (what: string, bar: string, measured: string, v: Verdict): BarRow => ({ scenario: s.name, streams: f.streams, what, bar, measured, verdict: v })
  const b = f.bonded
  const c = f.cut.bonded
  const effBar = f.streams >= 4 ? BAR.efficiencyP4 : BAR.efficiencyP1
  const judged = f.raw.links.filter((l) => !l.lossy)
  const minRaw = judged.reduce((m, l) => Math.min(m, l.ratio ?? 0), Infinity)
  const lossy = f.raw.links.filter((l) => l.lossy).map((l) => `${l.name} ${fmt(l.ratio, 3)}, loss-bound`)
  const out = [row('raw links: each loss-free link ≥ 95% of its rate', `≥ ${BAR.raw}`, `min ${fmt(minRaw, 3)}${lossy.length ? ` (${lossy.join('; ')})` : ''}`, verdict(f.raw.pass))]
  out.push(row('efficiency (bonded / alone, summed)', `≥ ${effBar}`, b ? `${fmt(b.efficiency, 3)} (${fmt(b.total_mbit)} / ${fmt(b.single_sum_mbit)})` : 'failed', verdict(b?.efficiency == null ? null : b.efficiency >= effBar, b?.bonded ?? null)))
  const me = f.mptcp?.efficiency ?? null
  out.push(row("efficiency not below MPTCP's", `≥ ${fmt(me, 3)}`, fmt(b?.efficiency, 3), verdict(b?.efficiency == null || me === null ? null : b.efficiency >= me, b?.bonded ?? null)))
  out.push(row(`dip after cutting uplink ${f.cut.uplink} (ms)`, `< ${BAR.dipMs}`, c?.dip_ms == null ? (c ? '—' : 'failed') : `${c.dip_ms} (MPTCP ${f.cut.mptcp?.dip_ms ?? '—'})`, verdict(c?.dip_ms == null ? null : c.dip_ms < BAR.dipMs, c?.bonded ?? null)))
  const resets = c && b ? c.resets + b.resets : null
  out.push(row('resets (with and without the cut)', `= ${BAR.resets}`, resets === null ? 'failed' : `${resets} (MPTCP ${f.cut.mptcp?.resets ?? '—'})`, verdict(resets === null ? null : resets === BAR.resets, c && b ? c.bonded && b.bonded : null)))
  const i = b?.interactive ?? null
  out.push(row('interactive ping p99 under load − idle (ms)', `≤ ${BAR.interactiveMs}`, i ? `${fmt(i.delta_ms, 2)} (${fmt(i.loaded_p99_ms, 2)} vs ${fmt(i.idle_p99_ms, 2)}${b?.cpu.daemons_wait_ms_per_s == null ? '' : `; daemons waited ${fmt(b.cpu.daemons_wait_ms_per_s, 0)} ms/s for a core`}${i.stalls ? `; machine stalls > 20 ms: ${i.stalls.over_20ms}, worst ${fmt(i.stalls.worst_ms, 0)} ms` : ''}${i.outside_stalls ? `; outside the stalls +${fmt(i.outside_stalls.delta_ms, 2)}` : ''})` : '—', verdict(i ? i.delta_ms <= BAR.interactiveMs : null, b?.bonded ?? null)))
  return out
}

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd()
  return [line(head), ...rows.map(line)]
}

function render(results: ScenarioResult[], o: { seconds: number; mode: BondMode; congestion: string }): string {
  const out: string[] = [`iperf3 TCP (${o.congestion}), ${o.seconds} s per transfer, goodput after a ${warmupFor(o.seconds)} s warm-up; bonded mode ${o.mode}; the biggest uplink is cut at ${o.seconds / 2} s`]
  for (const s of results) {
    out.push('', `${s.name} — ${s.title} (run ${s.run_id})`, `  ${s.direction === 'up' ? 'upload (client → gateway)' : 'download (gateway → client)'}; uplinks: ${s.uplinks.join('; ')}; sum of rates ${fmt(s.sum_mbit)} Mbit/s this way`)
    if (!s.ok) {
      out.push(`  failed: ${s.error}`)
      continue
    }
    const head = ['  Mbit/s', ...s.streams.map((f) => `-P${f.streams}`)]
    const cell = (f: StreamFigures, get: (f: StreamFigures) => string): string => get(f)
    const rows: [string, (f: StreamFigures) => string][] = [
      ['  raw links (TCP, all at once)', (f) => `${fmt(f.raw.total_mbit)} (${f.raw.links.map((l) => fmt(l.mbit)).join(' + ')})`],
      ['  QuicEther alone, summed', (f) => `${fmt(f.single_sum_mbit)} (${f.singles.map((x) => fmt(x)).join(' + ')})`],
      ['  QuicEther bonded', (f) => (f.bonded ? `${f.bonded.bonded ? '' : 'NOT BONDED: '}${fmt(f.bonded.total_mbit)} (${f.bonded.paths.map((p) => fmt(p.mbit)).join(' + ')})` : 'failed')],
      ['  kernel MPTCP', (f) => (f.mptcp ? `${fmt(f.mptcp.total_mbit)} (${f.mptcp.links_used} links, eff ${fmt(f.mptcp.efficiency, 3)})` : 'failed')],
      ['  QuicEther bonded, cut', (f) => (f.cut.bonded ? `${fmt(f.cut.bonded.cut?.pre_mbit ?? null)} → ${fmt(f.cut.bonded.cut?.post_mbit ?? null)}` : 'failed')],
      ['  CPU s/Gbit bonded vs alone', (f) => (f.bonded ? `${fmt(f.bonded.cpu.bonded_s_per_gbit, 3)} vs ${fmt(f.bonded.cpu.single_s_per_gbit, 3)} (+${fmt(f.bonded.cpu.extra_s_per_gbit, 3)})` : 'failed')],
      ['  kernel MPTCP, cut', (f) => (f.cut.mptcp ? `${fmt(f.cut.mptcp.cut?.pre_mbit ?? null)} → ${fmt(f.cut.mptcp.cut?.post_mbit ?? null)}` : 'failed')],
    ]
    out.push(...table(head, rows.map(([k, get]) => [k, ...s.streams.map((f) => cell(f, get))])))
    const b = s.streams.flatMap((f) => bars(s, f))
    out.push('', ...table(['  bar', 'streams', 'target', 'measured', 'verdict'], b.map((r) => [`  ${r.what}`, `-P${r.streams}`, r.bar, r.measured, r.verdict])))
    const nb = s.streams.find((f) => f.bonded && !f.bonded.bonded)?.bonded
    if (nb) out.push(`  ${nb.bond_detection}`)
    out.push(`  emulation: ${emulationText(s.emulation)}`)
  }
  return out.join('\n')
}

/** One mix's rows: uplinks, raw check, each direction set and -P, the cuts. */
function renderMix(m: MixResult): string {
  const out = [`mix ${m.index} (run ${m.run_id})${m.mix.scaled < 1 ? `, rates scaled ×${m.mix.scaled} to the budget` : ''}: ${m.uplinks.join('; ')}`]
  if (!m.ok) out.push(`  failed: ${m.error}`)
  for (const r of m.raw) out.push(`  raw ${r.direction}: ${r.links.map((l) => fmt(l.ratio, 2)).join(' ')} of each link's rate${r.pass ? '' : ' (the emulation fell short)'}`)
  const rows = m.figures.map((f) => [
    `  ${f.set === 'both' ? 'both: ' : ''}${f.direction}`,
    `-P${f.streams}`,
    `${fmt(f.total_mbit)} / ${fmt(f.single_sum_mbit)}`,
    fmt(f.efficiency, 3),
    `${fmt(f.rate_efficiency, 3)}${f.rate_judged ? '' : ' (lossy)'}`,
    `${fmt(f.interactive_delta_ms, 2)} / ${fmt(f.interactive_outside_stalls_delta_ms, 2)}`,
    `${fmt(f.cpu_bonded_s_per_gbit, 2)} / ${fmt(f.cpu_single_s_per_gbit, 2)}`,
    String(f.resets),
    fmt(f.daemons_wait_ms_per_s, 0),
    f.saturated ? 'yes' : '',
  ])
  out.push(...table(['  direction', 'streams', 'bonded / alone Mbit/s', 'efficiency', 'of rates', 'ping Δ ms (outside stalls)', 'CPU s/Gbit', 'resets', 'core wait ms/s', 'saturated'], rows))
  for (const c of m.cuts) out.push(`  cut uplink ${c.uplink} at ${c.at_s} s, ${c.direction} -P${c.streams}: dip ${c.dip_ms ?? '—'} ms${c.recovered === false ? ' (never recovered)' : ''} (${c.dip_beyond_noise_ms ?? '—'} beyond the noise before it), ${fmt(c.pre_mbit)} → ${fmt(c.post_mbit)} Mbit/s (surviving ${fmt(c.surviving_mbit)}), ${c.resets} resets`)
  out.push(`  emulation: ${emulationText(m.emulation)}`)
  return out.join('\n')
}

function renderMixes(ms: readonly MixResult[], bars: readonly MixBar[], o: { seed: number; count: number; seconds: number }): string {
  const out = [`random mixes: ${o.count} from seed ${o.seed}, ${o.seconds} s per transfer`, '']
  for (const m of ms) out.push(renderMix(m), '')
  out.push(...table(['  bar (all mixes)', 'target', 'measured', 'where', 'verdict'], bars.map((b) => [`  ${b.what}`, b.bar, b.measured, b.worst, b.pass === null ? 'n/a' : b.pass ? 'PASS' : 'FAIL'])))
  return out.join('\n')
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      streams: { type: 'string' },
      mode: { type: 'string', default: 'aggregate' },
      congestion: { type: 'string', default: 'cubic' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      random: { type: 'string' },
      seed: { type: 'string' },
      mix: { type: 'string' },
      directions: { type: 'string' },
      'random-seconds': { type: 'string' },
      budget: { type: 'string' },
    },
  })
  const quick = values.quick ?? false
  const seconds = parsePositiveInt(values.seconds ?? (quick ? '6' : '20'), '--seconds', 600)
  if (seconds < 4) throw new Error('--seconds: at least 4 (the cut comes half-way, after the warm-up)')
  const streams = (values.streams ?? (quick ? '4' : '1,4')).split(',').map((x) => parsePositiveInt(x.trim(), '--streams', 64))
  const only = values.only === 'none' ? [] : values.only ? values.only.split(',').map((x) => x.trim()) : Object.keys(SCENARIOS)
  const randomCount = values.random === undefined ? 0 : parsePositiveInt(values.random, '--random', 1000)
  const seed = values.seed === undefined ? freshSeed() : Number(values.seed)
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`--seed: '${values.seed}' is not an integer in 0..4294967295`)
  const mixOnly = values.mix === undefined ? null : parsePositiveInt(values.mix, '--mix', randomCount || 1)
  const sets: DirectionSet[] = (values.directions ?? 'up,down,both').split(',').map((x) => parseDirection(x))
  const randomSeconds = parsePositiveInt(values['random-seconds'] ?? (quick ? '6' : '10'), '--random-seconds', 600)
  const budget = parsePositiveInt(values.budget ?? '400', '--budget', 100_000)
  for (const n of only) if (!SCENARIOS[n]) throw new Error(`--only: unknown scenario '${n}' (${Object.keys(SCENARIOS).join(', ')})`)
  const mode = parseMode(values.mode ?? 'aggregate')
  const congestion = parseCongestion(values.congestion ?? 'cubic')
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/multipath needs root (network namespaces)\n')
    return 2
  }
  requireMptcpize()
  const say = (s: string): void => void process.stderr.write(`bench: ${s}\n`)
  const mixes = randomCount ? drawMixes(seed, randomCount, budget).filter((m) => mixOnly === null || m.index === mixOnly) : []
  if (randomCount) say(`random mixes: ${randomCount} drawn from seed ${seed} (replay: --random ${randomCount} --seed ${seed}${mixOnly ? ` --mix ${mixOnly}` : ''})`)
  const results: ScenarioResult[] = []
  const mixResults: MixResult[] = []
  const file = values.out ?? join(tmpdir(), 'quicether-multipath.json')
  // The report of what has finished so far: written after every scenario and mix (a long run that is
  // interrupted keeps what it measured, marked incomplete), and printed at the end or on an interrupt.
  const report = (complete: boolean): { doc: object; text: string } => {
    const mixBars = mixResults.length ? summarizeMixes(mixResults) : []
    const doc = {
      bench: 'multipath',
      date: new Date().toISOString(),
      complete,
      machine: { cpus: cpus().length, kernel: release() },
      seconds,
      streams,
      mode,
      congestion,
      bars: BAR,
      results,
      summary: results.flatMap((sc) => sc.streams.flatMap((f) => bars(sc, f))),
      ...(randomCount ? { random: { seed, count: randomCount, mix: mixOnly, seconds: randomSeconds, directions: sets, budget_mbit: budget, mixes: mixResults, bars: mixBars } } : {}),
    }
    let text = render(results, { seconds, mode, congestion })
    if (randomCount) text += '\n\n' + renderMixes(mixResults, mixBars, { seed, count: randomCount, seconds: randomSeconds })
    if (!complete) text += `\n\nINCOMPLETE: interrupted after ${results.length} of ${only.length} scenarios and ${mixResults.length} of ${mixes.length} mixes`
    return { doc, text }
  }
  const save = (complete: boolean): void => {
    if (!values.json) writeFileSync(file, JSON.stringify(report(complete).doc, null, 2) + '\n')
  }
  try {
    await withInterrupts(async (signal) => {
      for (const name of only) {
        results.push(await scenario(name, { seconds, streams, mode, congestion, signal, say }))
        save(false)
      }
      for (const m of mixes) {
        mixResults.push(await runMix(m, { seconds: randomSeconds, streams, sets, mode, congestion, signal, say, seed }))
        process.stderr.write(renderMix(mixResults[mixResults.length - 1]!) + '\n')
        save(false)
      }
    })
  } catch (err) {
    if (results.length || mixResults.length) {
      save(false)
      process.stderr.write(report(false).text + (values.json ? '' : `\n\nJSON (incomplete): ${file}`) + '\n')
    }
    throw err
  }
  const { doc, text } = report(true)
  if (values.json) {
    process.stderr.write(text + '\n')
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  } else {
    save(true)
    process.stdout.write(text + `\n\nJSON: ${file}\n`)
  }
  const failed = mixResults.some((m) => !m.ok) || results.some((s) => !s.ok || s.streams.some((f) => f.singles_error || f.bonded_error || f.mptcp_error || f.cut.bonded_error || f.cut.mptcp_error))
  return failed ? 1 : 0
}

// An interrupt tears the lab down and says so (what was measured is saved above); no stack.
process.exitCode = await main().catch((err: unknown) => {
  if (!(err instanceof LabAbortedError)) throw err
  process.stderr.write(`${err.message}\n`)
  return 130
})
