import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildSeries, computeDip, meanMbit, parseIntervalLine, RECOVERED_MS, underShare, type SeriesPoint, type TimedLine } from '../../src/lab/bond-series.js'

const fixture = readFileSync(new URL('./fixtures/iperf3-server-intervals.txt', import.meta.url), 'utf8')

t.test('interval lines of a server report: streams, [SUM], warm-up; not headers or the summary', async (t) => {
  t.same(parseIntervalLine('[  5]   0.20-0.40   sec  2.38 MBytes  99614 Kbits/sec                  '), {
    stream: '5',
    startS: 0.2,
    endS: 0.4,
    bytes: 2.38 * 1024 * 1024,
    bitsPerSecond: 99_614_000,
    omitted: false,
  })
  t.equal(parseIntervalLine('[SUM]   0.00-0.10   sec   402 KBytes  32896 Kbits/sec')?.stream, 'SUM')
  t.equal(parseIntervalLine('[SUM]   0.00-0.10   sec   402 KBytes  32896 Kbits/sec')?.bytes, 402 * 1024)
  t.equal(parseIntervalLine('[  5]   3.00-3.10   sec  0.00 Bytes  0.00 Kbits/sec')?.bitsPerSecond, 0)
  t.equal(parseIntervalLine('[  5]   1.00-2.00   sec  6.46 MBytes  54.2 Mbits/sec')?.bitsPerSecond, 54_200_000)
  t.equal(parseIntervalLine('[  8]   0.00-0.20   sec  2.38 MBytes  99573 Kbits/sec                  (omitted)')?.omitted, true)
  t.equal(parseIntervalLine('[SUM]   0.00-1.00   sec  23.8 MBytes  199229 Kbits/sec                  receiver'), null)
  t.equal(parseIntervalLine('[  5] local 127.0.0.1 port 5977 connected to 127.0.0.1 port 42828'), null)
  t.equal(parseIntervalLine('- - - - - - - - - - - - - - - - - - - - - - - - -'), null)
  const lines = fixture.split('\n').map(parseIntervalLine).filter((x) => x !== null)
  t.equal(lines.length, 30, '10 intervals × (2 streams + SUM)')
  t.equal(lines.filter((l) => l.omitted).length, 15)
})

function timed(text: string, arrivals: (endS: number) => number): TimedLine[] {
  return text
    .split('\n')
    .map(parseIntervalLine)
    .filter((x) => x !== null)
    .map((line) => ({ line, arrivalMs: arrivals(line.endS) }))
}

t.test('a series: one point per interval, [SUM] preferred, warm-up left out, tied to the wall clock', async (t) => {
  // Lines arrive 0-7 ms late after each interval's end; the series' zero is the earliest estimate.
  const jitter = [3, 0, 7, 2, 5]
  let k = 0
  const s = buildSeries(timed(fixture, (endS) => 1_000_000 + endS * 1000 + (jitter[k++ % jitter.length] ?? 0)))
  t.equal(s.points.length, 5)
  t.same(s.points.map((p) => [p.startMs, p.endMs]), [[0, 200], [200, 400], [400, 600], [600, 800], [800, 1000]])
  t.same(s.points.map((p) => p.mbit), [199.164, 199.228, 199.215, 199.244, 199.239], 'the [SUM] lines, not the warm-up’s')
  t.equal(s.zeroWallMs, 1_000_000)
  // Without [SUM] lines (one stream), the streams are summed.
  const one = buildSeries(timed('[  5]   0.00-0.10   sec  1 MBytes  80000 Kbits/sec\n[  5]   0.10-0.20   sec  1 MBytes  40000 Kbits/sec', (e) => 5000 + e * 1000))
  t.same(one.points.map((p) => p.mbit), [80, 40])
  const two = buildSeries(timed('[  5]   0.00-0.10   sec  1 MBytes  30000 Kbits/sec\n[  7]   0.00-0.10   sec  1 MBytes  20000 Kbits/sec', (e) => e))
  t.same(two.points.map((p) => p.mbit), [50])
  t.ok(Number.isNaN(buildSeries([]).zeroWallMs))
})

/** 100 ms points from 0 to `ms`, with `rate(t)` Mbit/s. */
function series(ms: number, rate: (startMs: number) => number): SeriesPoint[] {
  const out: SeriesPoint[] = []
  for (let s = 0; s < ms; s += 100) out.push({ startMs: s, endMs: s + 100, mbit: rate(s) })
  return out
}

t.test('dip: the time after the cut under the threshold', async (t) => {
  // 100 Mbit/s, cut at 5 s, nothing for 300 ms, then 60 Mbit/s; half the surviving 60 is 30.
  const pts = series(10_000, (s) => (s < 5000 ? 100 : s < 5300 ? 0 : 60))
  t.same(computeDip(pts, 5000, 30, 10_000), { dipMs: 300, recoveryMs: 300, recovered: true })
  t.same(computeDip(pts, 5050, 30, 10_000), { dipMs: 250, recoveryMs: 250, recovered: true }, 'an interval the cut splits counts from the cut on')
  t.same(computeDip(series(10_000, () => 100), 5000, 30, 10_000), { dipMs: 0, recoveryMs: 0, recovered: true }, 'no dip at all')
})

t.test('dip: later dips count too; an early end counts as zero; a gap in the report counts', async (t) => {
  const twice = series(10_000, (s) => (s >= 5000 && s < 5200) || (s >= 7000 && s < 7400) ? 0 : 80)
  t.same(computeDip(twice, 5000, 30, 10_000), { dipMs: 600, recoveryMs: 200, recovered: true })
  const stopped = series(6000, (s) => (s < 5000 ? 80 : 10))
  t.same(computeDip(stopped, 5000, 30, 10_000), { dipMs: 5000, recoveryMs: 5000, recovered: false }, 'the report ended at 6 s of a planned 10 s')
  const gap = series(10_000, () => 80).filter((p) => p.startMs < 5500 || p.startMs >= 5800)
  t.same(computeDip(gap, 5000, 30, 10_000), { dipMs: 300, recoveryMs: 0, recovered: true })
})

t.test('dip: recovered is judged over the transfer\'s last 300 ms, not its last interval', async (t) => {
  t.equal(RECOVERED_MS, 300)
  const lastLow = series(10_000, (s) => (s >= 5000 && s < 5200) || s >= 9900 ? 10 : 80)
  t.equal(computeDip(lastLow, 5000, 30, 10_000).recovered, true, 'one low interval at the end (a burst of the reorder buffer): recovered')
  const tailLow = series(10_000, (s) => (s >= 5000 && s < 5200) || s >= 9700 ? 10 : 80)
  t.equal(computeDip(tailLow, 5000, 30, 10_000).recovered, false, 'the last 300 ms all under it: not recovered')
  const stalled = series(9800, (s) => (s < 5000 ? 80 : 60))
  t.equal(computeDip(stalled, 5000, 30, 10_000).recovered, false, 'the report ended 200 ms early: nothing for two thirds of the last 300 ms')
})

t.test('under share: the part of a span under the threshold, gaps included', async (t) => {
  const pts = series(5000, (s) => (s % 1000 === 0 ? 10 : 80))
  t.equal(underShare(pts, 0, 5000, 30), 0.1)
  t.equal(underShare(pts.filter((p) => p.startMs !== 2500), 0, 5000, 30), 0.12, 'a missing interval counts as under')
  t.equal(underShare(pts, 0, 900, 30), null, 'under a second: too few intervals')
})

t.test('mean throughput over a window, by interval length', async (t) => {
  const pts = series(1000, (s) => (s < 500 ? 100 : 50))
  t.equal(meanMbit(pts, 0, 1000), 75)
  t.equal(meanMbit(pts, 250, 750), 75)
  t.equal(meanMbit(pts, 500, 1000), 50)
  t.equal(meanMbit(pts, 450, 550), 75, 'partial intervals weigh by their covered part')
  t.ok(Number.isNaN(meanMbit(pts, 2000, 3000)))
})
