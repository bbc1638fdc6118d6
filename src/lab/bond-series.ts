/**
 * Throughput over time, and what a cut does to it (pure).
 *
 * The series comes from the receiving iperf3 server's text report (`-i 0.1
 * --forceflush`): one line per stream per interval, plus a [SUM] line with
 * several streams, each flushed when its interval ends. The lab stamps every
 * line with its arrival time, so the series is tied to the wall clock the
 * cut is timed on: the series' zero is the earliest `arrival - end` over the
 * lines (a line is never early, only late).
 *
 * A cut's dip is the time, after the cut, during which throughput stayed
 * under a threshold (half the capacity that survives the cut): every such
 * interval counts, not only the first stretch, and an early end of the
 * transfer counts as zero throughput until its planned end. The receiver's
 * 100 ms intervals also dip without a cut (the reorder buffer releases in
 * bursts; TCP's own sawtooth): `underShare` measures that share before the
 * cut, so a reader can tell the cut's stall from the series' noise.
 */

export interface IntervalLine {
  /** The stream id in brackets, or 'SUM'. */
  readonly stream: string
  readonly startS: number
  readonly endS: number
  readonly bytes: number
  readonly bitsPerSecond: number
  /** The warm-up (`-O`) reports these; they are left out of every figure. */
  readonly omitted: boolean
}

const SCALE: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }
const BYTE_SCALE: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }

// [  5]   0.00-0.10   sec   202 KBytes  16555 Kbits/sec                  (omitted)
const LINE = /^\[\s*(SUM|[0-9]+)\]\s+([0-9.]+)-([0-9.]+)\s+sec\s+([0-9.]+)\s+([KMGT]?)Bytes\s+([0-9.]+)\s+([KMGT]?)bits\/sec(.*)$/

/** One interval line of an iperf3 text report, or null for any other line (headers, the end-of-test summary). */
export function parseIntervalLine(line: string): IntervalLine | null {
  const m = LINE.exec(line.trim())
  if (!m) return null
  const tail = m[8] ?? ''
  // The summary after the test ends with the side's role.
  if (/\b(sender|receiver)\b/.test(tail)) return null
  return {
    stream: m[1]!,
    startS: Number(m[2]),
    endS: Number(m[3]),
    bytes: Number(m[4]) * BYTE_SCALE[m[5] ?? '']!,
    bitsPerSecond: Number(m[6]) * SCALE[m[7] ?? '']!,
    omitted: /omitted/.test(tail),
  }
}

export interface TimedLine {
  readonly line: IntervalLine
  /** Wall clock (ms) when the line was read. */
  readonly arrivalMs: number
}

/** One interval of the whole transfer (all streams), times in ms from the series' zero. */
export interface SeriesPoint {
  readonly startMs: number
  readonly endMs: number
  readonly mbit: number
}

export interface Series {
  readonly points: readonly SeriesPoint[]
  /** Wall clock (ms) of the series' zero: when the measured (non-omitted) transfer began; NaN when empty. */
  readonly zeroWallMs: number
}

/** Sums each interval's streams (or takes its [SUM] line) and ties the series to the wall clock. */
export function buildSeries(lines: readonly TimedLine[]): Series {
  const kept = lines.filter((l) => !l.line.omitted)
  const byInterval = new Map<string, { startS: number; endS: number; sum: number | null; streams: number }>()
  let zero = Infinity
  for (const { line, arrivalMs } of kept) {
    zero = Math.min(zero, arrivalMs - line.endS * 1000)
    const key = `${line.startS.toFixed(3)}-${line.endS.toFixed(3)}`
    const e = byInterval.get(key) ?? { startS: line.startS, endS: line.endS, sum: null, streams: 0 }
    if (line.stream === 'SUM') e.sum = line.bitsPerSecond
    else e.streams += line.bitsPerSecond
    byInterval.set(key, e)
  }
  const points = [...byInterval.values()]
    .sort((a, b) => a.startS - b.startS)
    .map((e) => ({ startMs: round3(e.startS * 1000), endMs: round3(e.endS * 1000), mbit: (e.sum ?? e.streams) / 1e6 }))
  return { points, zeroWallMs: points.length ? zero : NaN }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}

export interface DipResult {
  /** Time after the cut with throughput under the threshold, ms. */
  readonly dipMs: number
  /** From the cut to the end of the first under-threshold stretch, ms (0 when throughput never dipped). */
  readonly recoveryMs: number
  /**
   * False when the transfer was still under the threshold at its (planned)
   * end: over its last RECOVERED_MS (one 100 ms interval swings with the
   * reorder buffer's bursts; a stall that lasts is under it throughout).
   */
  readonly recovered: boolean
}

/**
 * How long throughput stayed under `thresholdMbit` after the cut at
 * `cutMs`, up to `endMs` (the planned end: a series that stops early counts
 * as zero from its last point on). Times are ms from the series' zero.
 */
export function computeDip(points: readonly SeriesPoint[], cutMs: number, thresholdMbit: number, endMs: number): DipResult {
  // Time-ordered stretches, each under the threshold or not, clipped to [cut, end].
  const spans: { from: number; to: number; under: boolean }[] = []
  let covered = cutMs
  for (const p of [...points].sort((a, b) => a.startMs - b.startMs)) {
    const from = Math.max(p.startMs, cutMs)
    const to = Math.min(p.endMs, endMs)
    if (to <= from) continue
    if (from > covered) spans.push({ from: covered, to: from, under: true }) // a gap in the report: nothing arrived
    spans.push({ from, to, under: p.mbit < thresholdMbit })
    covered = Math.max(covered, to)
  }
  if (endMs > covered) spans.push({ from: covered, to: endMs, under: true })
  let dipMs = 0
  for (const s of spans) if (s.under) dipMs += s.to - s.from
  let recoveryMs = 0
  for (const s of spans) {
    if (!s.under) break
    recoveryMs = s.to - cutMs
  }
  const tail = Math.max(cutMs, endMs - RECOVERED_MS)
  const recovered = endMs <= cutMs || coveredMbit(points, tail, endMs) >= thresholdMbit
  return { dipMs: round3(dipMs), recoveryMs: round3(recoveryMs), recovered }
}

/** The span at the transfer's end over which `recovered` is judged, ms. */
export const RECOVERED_MS = 300

/** Mean throughput over [fromMs, toMs), where nothing was reported counting as zero (the transfer stopped). */
function coveredMbit(points: readonly SeriesPoint[], fromMs: number, toMs: number): number {
  let bits = 0
  for (const { p, ms } of overlaps(points, fromMs, toMs)) bits += p.mbit * ms
  return toMs > fromMs ? bits / (toMs - fromMs) : 0
}

/** Each point that overlaps [fromMs, toMs), with the length of the overlap in ms. */
function* overlaps(points: readonly SeriesPoint[], fromMs: number, toMs: number): Generator<{ p: SeriesPoint; ms: number }> {
  for (const p of points) {
    const ms = Math.min(p.endMs, toMs) - Math.max(p.startMs, fromMs)
    if (ms > 0) yield { p, ms }
  }
}

/**
 * The share of [fromMs, toMs) whose intervals carried under `thresholdMbit`
 * (gaps in the report count as under); null when the span is shorter than
 * a second (too few intervals to say).
 */
export function underShare(points: readonly SeriesPoint[], fromMs: number, toMs: number, thresholdMbit: number): number | null {
  if (toMs - fromMs < 1000) return null
  let under = 0
  let covered = 0
  for (const { p, ms } of overlaps(points, fromMs, toMs)) {
    covered += ms
    if (p.mbit < thresholdMbit) under += ms
  }
  return (under + Math.max(0, toMs - fromMs - covered)) / (toMs - fromMs)
}

/** Mean throughput of the points inside [fromMs, toMs), weighted by interval length; NaN when none. */
export function meanMbit(points: readonly SeriesPoint[], fromMs: number, toMs: number): number {
  let bits = 0
  let covered = 0
  for (const { p, ms } of overlaps(points, fromMs, toMs)) {
    bits += p.mbit * ms
    covered += ms
  }
  return covered > 0 ? bits / covered : NaN
}
