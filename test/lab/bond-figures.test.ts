import t from 'tap'
import { bondResult, goodput, mptcpFigures, rawResult, warmupFor, type BondedRun, type MptcpRun } from '../../src/lab/bond-figures.js'
import { parseUplinks } from '../../src/lab/bond-spec.js'
import type { SeriesPoint } from '../../src/lab/bond-series.js'
import type { TransferResult } from '../../src/lab/bond-transfer.js'

function pts(ms: number, rate: (s: number) => number): SeriesPoint[] {
  const out: SeriesPoint[] = []
  for (let s = 0; s < ms; s += 100) out.push({ startMs: s, endMs: s + 100, mbit: rate(s) })
  return out
}

function transferOf(points: SeriesPoint[], extra: Partial<TransferResult> = {}): TransferResult {
  return { iperf: { mbit: 1, bytes: 1, seconds: 10, retransmits: 7, streams: 1 }, error: null, points, cutMs: null, cutApplied: false, startWallMs: 0, endWallMs: 10_000, zeroWallMs: 0, cutWallMs: null, ...extra }
}

t.test('goodput: the receiver’s report after the warm-up; an early end counts as zero', async (t) => {
  t.equal(warmupFor(20), 2)
  t.equal(warmupFor(4), 1)
  const slowStart = pts(10_000, (s) => (s < 2000 ? 20 : 90))
  t.equal(goodput({ points: slowStart }, 10), 90, 'slow start is left out')
  t.equal(goodput({ points: pts(6000, () => 80) }, 10), 40, 'a transfer that died at 6 s of 10')
  t.equal(goodput({ points: [] }, 10), null)
})

const uplinks = parseUplinks(['50mbit,5ms', '100mbit,20ms'])

function run(points: SeriesPoint[], extra: Partial<TransferResult> = {}, bonded = true): BondedRun {
  return {
    direction: 'up',
    cpu: { seconds: 1.5, bytes: 1e9 / 8 },
    verdict: { bonded, why: bonded ? 'the daemon reports 2 paths' : 'not bonded' },
    daemonPaths: bonded ? 2 : null,
    bond: bonded ? { mode: 'aggregate', reordered: 120, late: 1, dropped: 0, resent: 0 } : null,
    transfer: transferOf(points, extra),
    resets: 0,
    links: [
      { txBytes: 3000, wireMbit: 50, rttMs: 11, rttSource: 'daemon', loss: 0.001, lossSource: 'daemon' },
      { txBytes: 6000, wireMbit: 99, rttMs: 41, rttSource: 'daemon', loss: 0, lossSource: 'daemon' },
    ],
    interactive: null,
  }
}

t.test('bond result: efficiency against the singles, rate efficiency, per-path split', async (t) => {
  const r = bondResult({ run: run(pts(10_000, () => 135)), uplinks, ifnames: ['a', 'b'], singles: [46, 92], mode: 'aggregate', streams: 4, seconds: 10, congestion: 'cubic', cut: null, runId: 'abcd' })
  t.equal(r.total_mbit, 135)
  t.equal(r.single_sum_mbit, 138)
  t.equal(r.sum_mbit, 150)
  t.equal(r.efficiency, 0.978)
  t.equal(r.rate_efficiency, 0.9)
  t.same(r.paths.map((p) => [p.uplink, p.mbit, p.single_mbit, p.rtt_ms, p.rtt_source]), [[1, 45, 46, 11, 'daemon'], [2, 90, 92, 41, 'daemon']])
  t.equal(r.dip_ms, null)
  t.equal(r.cut, null)
  t.equal(r.retransmits, 7)
  t.equal(r.bonded, true)
  t.same(r.bond_stats, { mode: 'aggregate', reordered: 120, late: 1, dropped: 0, resent: 0 }, "the daemon's reorder counts are passed on")
  t.equal(r.series.length, 100)
  const missing = bondResult({ run: run(pts(10_000, () => 135)), uplinks, ifnames: ['a', 'b'], singles: [46, null], mode: 'aggregate', streams: 4, seconds: 10, congestion: 'cubic', cut: null, runId: 'abcd' })
  t.equal(missing.efficiency, null, 'no efficiency from half the singles')
})

t.test('bond result with a cut: dip against half of what the other uplinks carry alone', async (t) => {
  const points = pts(10_000, (s) => (s < 5000 ? 135 : s < 5600 ? 5 : 88))
  const r = bondResult({ run: run(points, { cutMs: 5000, cutApplied: true }), uplinks, ifnames: ['a', 'b'], singles: [46, 92], mode: 'aggregate', streams: 1, seconds: 10, congestion: 'cubic', cut: { index: 1, atS: 5 }, runId: 'abcd' })
  t.equal(r.cut?.surviving_mbit, 46)
  t.equal(r.cut?.threshold_mbit, 23)
  t.equal(r.dip_ms, 600)
  t.equal(r.cut?.pre_mbit, 135)
})

t.test('raw result: each link against 95% of its rate', async (t) => {
  const ok = rawResult({ runs: [{ mbit: 48.3, iperfMbit: 48, retransmits: 0, error: null }, { mbit: 96.5, iperfMbit: 96, retransmits: 2, error: null }], uplinks, streams: 1, seconds: 10, congestion: 'cubic', runId: 'abcd' })
  t.same(ok.links.map((l) => l.ratio), [0.966, 0.965])
  t.equal(ok.pass, true)
  t.equal(ok.total_mbit, 144.8)
  const low = rawResult({ runs: [{ mbit: 48.3, iperfMbit: 48, retransmits: 0, error: null }, { mbit: null, iperfMbit: null, retransmits: null, error: 'unable to connect' }], uplinks, streams: 1, seconds: 10, congestion: null, runId: 'abcd' })
  t.equal(low.pass, false)
  t.equal(low.total_mbit, null)
  const lossyUplinks = parseUplinks(['50mbit,0ms,2%', '100mbit,30ms'])
  const lossy = rawResult({ runs: [{ mbit: 33.8, iperfMbit: 33, retransmits: 900, error: null }, { mbit: 96.5, iperfMbit: 96, retransmits: 2, error: null }], uplinks: lossyUplinks, streams: 1, seconds: 10, congestion: 'cubic', runId: 'abcd' })
  t.same(lossy.links.map((l) => l.lossy), [true, false])
  t.equal(lossy.pass, true, 'TCP over a lossy link is loss-bound; the bar judges the loss-free links')
  const slow = rawResult({ runs: [{ mbit: 33.8, iperfMbit: 33, retransmits: 900, error: null }, { mbit: 80, iperfMbit: 80, retransmits: 2, error: null }], uplinks: lossyUplinks, streams: 1, seconds: 10, congestion: 'cubic', runId: 'abcd' })
  t.equal(slow.pass, false)
})

t.test("MPTCP figures: its goodput over plain TCP's per link, and its own dip", async (t) => {
  const m: MptcpRun = { transfer: transferOf(pts(10_000, (s) => (s < 5000 ? 140 : s < 5300 ? 0 : 47))), txBytes: [1, 1], connections: 2, joined: 2, carrying: [0, 1], resets: 0, subflowFailures: 1 }
  const plain = mptcpFigures({ ...m, transfer: transferOf(pts(10_000, () => 141)) }, [48, 96], null, 10)
  t.equal(plain.efficiency, 0.979)
  t.equal(plain.dip_ms, null)
  const cut = mptcpFigures({ ...m, transfer: { ...m.transfer, cutMs: 5000, cutApplied: true } }, [48, 96], { index: 1, atS: 5 }, 10)
  t.equal(cut.dip_ms, 300)
  t.equal(cut.cut?.surviving_mbit, 48)
  t.equal(cut.links_used, 2)
})
