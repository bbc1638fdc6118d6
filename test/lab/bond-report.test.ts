import t from 'tap'
import { attribute, cutFigures, ratio, renderBond, renderRaw, sumOrNull, survivingCapacity, type BondResult, type RawResult } from '../../src/lab/bond-report.js'
import { parseUplinks } from '../../src/lab/bond-spec.js'
import type { SeriesPoint } from '../../src/lab/bond-series.js'

t.test('efficiency math: ratios, sums that refuse to flatter, goodput split by bytes', async (t) => {
  t.equal(ratio(95, 100), 0.95)
  t.equal(ratio(2, 3), 0.667)
  t.equal(ratio(null, 100), null)
  t.equal(ratio(50, 0), null)
  t.equal(ratio(50, null), null)
  t.equal(sumOrNull([45.5, 46.25]), 91.75)
  t.equal(sumOrNull([45.5, null]), null, 'a missing single-uplink figure makes no sum')
  t.equal(sumOrNull([]), null)
  t.same(attribute(90, [2000, 1000, 0]), [60, 30, 0])
  t.same(attribute(null, [1, 1]), [null, null])
  t.same(attribute(90, [0, 0]), [null, null])
  t.equal(survivingCapacity([20, 40, 90], 2), 60)
  t.equal(survivingCapacity([20, null, 90], 2), null)
})

function pts(ms: number, rate: (s: number) => number): SeriesPoint[] {
  const out: SeriesPoint[] = []
  for (let s = 0; s < ms; s += 100) out.push({ startMs: s, endMs: s + 100, mbit: rate(s) })
  return out
}

t.test('cut figures: dip under half the surviving capacity, throughput before and after', async (t) => {
  const points = pts(10_000, (s) => (s < 5000 ? 140 : s < 5400 ? 10 : 45))
  const { cut, dipMs } = cutFigures({ points, cutMs: 5000, index: 1, survivingMbit: 50, endMs: 10_000, warmupMs: 2000 })
  t.equal(dipMs, 400)
  t.same(cut, { uplink: 2, at_s: 5, surviving_mbit: 50, threshold_mbit: 25, pre_mbit: 140, post_mbit: 42.2, recovery_ms: 400, recovered: true, noise_share: 0, dip_beyond_noise_ms: 400 })
  // The same cut in a noisy series: one interval in ten under the threshold before the cut as after it.
  const noisy = pts(10_000, (s) => (s % 1000 === 500 ? 5 : s < 5000 ? 140 : s < 5400 ? 10 : 45))
  const n = cutFigures({ points: noisy, cutMs: 5000, index: 1, survivingMbit: 50, endMs: 10_000, warmupMs: 2000 })
  t.equal(n.dipMs, 900, 'the dip counts every interval under the threshold after the cut: the stall (400 ms) and the noise (5 x 100 ms)')
  t.equal(n.cut.noise_share, 0.1, 'a tenth of the steady state before the cut was under it')
  t.equal(n.cut.dip_beyond_noise_ms, 400, 'beyond the noise: 900 ms less a tenth of the 5 s after the cut, the stall')
  const short = cutFigures({ points: pts(10_000, (s) => (s < 5000 ? 20 : 45)), cutMs: 5000, index: 1, survivingMbit: 50, endMs: 10_000, warmupMs: 2000 })
  t.equal(short.cut.noise_share, null, 'a bond under the threshold before the cut was short, not noisy: no noise to subtract')
  t.equal(short.cut.dip_beyond_noise_ms, null)
  const none = cutFigures({ points, cutMs: null, index: 0, survivingMbit: 50, endMs: 10_000, warmupMs: 2000 })
  t.equal(none.dipMs, null, 'a cut that never happened has no dip')
  t.equal(none.cut.at_s, null)
  t.equal(cutFigures({ points, cutMs: 5000, index: 0, survivingMbit: null, endMs: 10_000, warmupMs: 2000 }).dipMs, null, 'no surviving capacity measured: no threshold, no dip')
})

const uplinks = parseUplinks(['50mbit,5ms', '100mbit,20ms'])
const base: BondResult = {
  direction: 'up',
  bonded: false,
  bond_detection: 'not bonded: the daemon reports no per-path stats and traffic crossed 1 of 2 uplinks',
  daemon_paths: null,
  mode: 'aggregate',
  streams: 1,
  seconds: 10,
  congestion: 'cubic',
  tcp_buffer: null,
  total_mbit: 45.1,
  single_sum_mbit: 137,
  sum_mbit: 150,
  efficiency: 0.329,
  rate_efficiency: 0.301,
  cpu: { bonded_s_per_gbit: 1.2, single_s_per_gbit: 1.1, extra_s_per_gbit: 0.1, machine_busy: 0.5 },
  paths: uplinks.map((u, i) => ({ uplink: i + 1, name: u.name, ifname: `qel-abcd-l${i}a`, rate_mbit: u.up.rate! / 1e6, rate_up_mbit: u.up.rate! / 1e6, rate_down_mbit: u.down.rate! / 1e6, delay_ms: u.up.delay, loss_cfg: 0, single_mbit: i ? 91 : 46, mbit: i ? 0 : 45.1, wire_mbit: i ? 0 : 47.5, rtt_ms: 10.2, rtt_source: 'link-ping', loss: 0, loss_source: 'router' })),
  dip_ms: null,
  resets: 0,
  reset_counters: {},
  cut: null,
  retransmits: 3,
  error: null,
  interactive: { idle_p99_ms: 10.6, loaded_p99_ms: 40.1, delta_ms: 29.5, loaded_received: 400, loaded_sent: 400 },
  bond_stats: null,
  series: [],
  run_id: 'abcd',
}

t.test('the bond table says plainly when the daemon does not bond', async (t) => {
  const text = renderBond(base, uplinks)
  t.match(text, /BONDED: NO — not bonded: the daemon reports no per-path stats/)
  t.match(text, /not bonding/)
  t.match(text, /efficiency\s+0\.329 \(total \/ single_sum\)/)
  t.match(text, /measured on the link/, 'link-measured RTT and loss are marked as such')
  t.match(text, /interactive\s+ping p99 40\.10 ms under load vs 10\.60 ms idle/)
  t.notMatch(text, /outside the stalls/, 'no stalls measured: no figure outside them')
  t.notMatch(text, /TCP buffers/, "the kernel's TCP buffers go unsaid")
  t.match(text, /^resets\s+0 \(TCP connections reset or failed\)$/m)
  t.match(renderBond({ ...base, resets: 2, reset_counters: { 'client Tcp.EstabResets': 2 } }, uplinks), /^resets\s+2 \(TCP connections reset or failed: client Tcp\.EstabResets \+2\)$/m, 'a reset says which counter moved on which end')
  t.match(renderBond({ ...base, tcp_buffer: 32 * 1024 ** 2 }, uplinks), /^QuicEther bonding, .*, cubic, TCP buffers up to 32 MiB; 2 uplinks/m, 'a buffer set with --tcp-buffer is in the header')
  const bonded = renderBond({ ...base, bonded: true, bond_detection: 'the daemon reports 2 paths', cut: { uplink: 2, at_s: 5, surviving_mbit: 46, threshold_mbit: 23, pre_mbit: 130, post_mbit: 44, recovery_ms: 300, recovered: true, noise_share: 0.05, dip_beyond_noise_ms: 50 }, dip_ms: 300 }, uplinks)
  t.match(bonded, /^bonded: yes — the daemon reports 2 paths/m)
  t.match(bonded, /dip_ms\s+300 \(time under 23\.0 Mbit\/s/)
  t.notMatch(text, /reordering/, 'no reorder line when the daemon reports no counts')
  t.match(renderBond({ ...base, cpu: { ...base.cpu, daemons_wait_ms_per_s: 640 } }, uplinks), /the daemons' threads waited 640 ms per second for a core/, "the cpu line says how long the daemons waited for a core")
  t.notMatch(renderBond(base, uplinks), /waited/, 'and says nothing when it was not measured')
  t.match(renderBond({ ...base, bond_stats: { mode: 'aggregate', reordered: 5, late: 1, dropped: 2, resent: 3 } }, uplinks), /reordering\s+5 held back, 1 late, 2 dropped at the gateway; 3 re-sent by the client after a path died/)
})

t.test('the raw table: each link against 95% of its rate', async (t) => {
  const r: RawResult = {
    direction: 'up',
    raw: true,
    streams: 1,
    seconds: 10,
    congestion: 'cubic',
    links: [
      { uplink: 1, name: 'uplink1', rate_mbit: 50, mbit: 48.3, ratio: 0.966, retransmits: 0, error: null, lossy: false },
      { uplink: 2, name: 'uplink2', rate_mbit: 100, mbit: 90, ratio: 0.9, retransmits: 9, error: null, lossy: false },
    ],
    total_mbit: 138.3,
    sum_mbit: 150,
    bar: 0.95,
    pass: false,
    run_id: 'abcd',
  }
  const text = renderRaw(r)
  t.match(text, /1\s+uplink1\s+50\.0\s+48\.3\s+96\.6%\s+ok/)
  t.match(text, /2\s+uplink2\s+100\.0\s+90\.0\s+90\.0%\s+LOW/)
  t.match(text, /stays under 95% of its rate/)
  t.match(renderRaw({ ...r, pass: true }), /the emulation is not the bottleneck/)
  const lossy = renderRaw({ ...r, links: [r.links[0]!, { ...r.links[1]!, lossy: true }], pass: true })
  t.match(lossy, /2\s+uplink2\s+100\.0\s+90\.0\s+90\.0%\s+loss-bound/, 'a lossy link under the bar is loss-bound, not LOW')
  t.match(lossy, /every loss-free link reaches 95%/)
  t.match(lossy, /backs off on every random drop/)
})

t.test('the interactive line gives the p99 outside the machine\'s stalls beside the one over all pings', async (t) => {
  const stalls = { rt: 'fifo' as const, samples: 9000, over_5ms: 2, over_20ms: 1, over_50ms: 1, worst_ms: 99.8, late_ms: 120 }
  const text = renderBond({ ...base, interactive: { ...base.interactive!, stalls, outside_stalls: { p99_ms: 18.2, delta_ms: 7.6, pings: 395, left_out: 5 } } }, uplinks)
  t.match(text, /\+29\.50 ms; 400\/400 answered\); the machine stalled 1 time\(s\) over 20 ms meanwhile \(worst 99\.8 ms\).*; outside the stalls: p99 18\.20 ms \(\+7\.60 ms over idle; 5 of 400 pings left out\)/)
})
