import t from 'tap'
import { MIX_LIMITS, drawMixes, lossAtMost, mixUplinkFlags } from '../../src/lab/bond-mixes.js'
import { mixUplinks, summarizeMixes, type MixFigure, type MixResult } from '../../src/lab/bond-random.js'
import { biggestUplinkOf, directionsOf, parseDirection, rateSumOf } from '../../src/lab/bond-direction.js'
import { parseUplinks } from '../../src/lab/bond-spec.js'

t.test('the same seed draws the same mixes; another seed others', async (t) => {
  t.same(drawMixes(42, 8, 400), drawMixes(42, 8, 400))
  t.notSame(drawMixes(42, 8, 400), drawMixes(43, 8, 400))
  t.same(drawMixes(42, 3, 400), drawMixes(42, 8, 400).slice(0, 3), 'a mix does not depend on how many come after it')
})

t.test('every drawn mix stays within the issue\'s ranges', async (t) => {
  const mixes = drawMixes(20261205, 200, 1e9)
  const L = MIX_LIMITS
  let cuts = 0
  let asym = 0
  for (const m of mixes) {
    t.ok(m.uplinks.length >= L.minUplinks && m.uplinks.length <= L.maxUplinks, `mix ${m.index}: ${m.uplinks.length} uplinks`)
    for (const u of m.uplinks) {
      if (!(u.upMbit >= L.minMbit && u.upMbit <= L.maxMbit && u.downMbit >= L.minMbit && u.downMbit <= L.maxMbit)) t.fail(`mix ${m.index} ${u.name}: rate ${u.upMbit}/${u.downMbit}`)
      if (!(u.delayMs >= L.minDelayMs && u.delayMs <= L.maxDelayMs)) t.fail(`mix ${m.index} ${u.name}: delay ${u.delayMs}`)
      if (!(u.lossUp >= 0 && u.lossUp <= L.maxLoss && u.lossDown >= 0 && u.lossDown <= L.maxLoss)) t.fail(`mix ${m.index} ${u.name}: loss`)
      if (!(u.jitterMs >= 0 && u.jitterMs <= L.maxJitterMs && u.jitterMs <= u.delayMs / 2 + 0.1)) t.fail(`mix ${m.index} ${u.name}: jitter ${u.jitterMs}`)
      if (u.upMbit !== u.downMbit) asym++
    }
    if (m.cut) {
      cuts++
      t.ok(m.cut.index < m.uplinks.length && m.cut.atFrac >= 0.35 && m.cut.atFrac <= 0.65, `mix ${m.index}: cut ${JSON.stringify(m.cut)}`)
    }
  }
  t.equal(cuts, 100, 'every other mix has a cut')
  t.ok(asym > 300, `most uplinks are asymmetric (${asym})`)
  const all = mixes.flatMap((m) => m.uplinks)
  t.ok(all.some((u) => u.vary) && all.some((u) => !u.vary), 'some uplinks vary, some do not')
  t.ok(all.some((u) => u.jitterMs > 0) && all.some((u) => u.lossUp > 0.02) && all.some((u) => u.lossUp === 0), 'jitter and loss are drawn')
})

t.test('a mix over the budget is scaled down, its shape kept', async (t) => {
  const [big] = drawMixes(7, 1, 1e9)
  const [scaled] = drawMixes(7, 1, 50)
  if (!big || !scaled) throw new Error('no mix')
  const sum = (m: typeof big, k: 'upMbit' | 'downMbit'): number => m.uplinks.reduce((s, u) => s + u[k], 0)
  t.ok(scaled.scaled < 1)
  for (const k of ['upMbit', 'downMbit'] as const) t.ok(sum(scaled, k) <= 50 + 5 * scaled.uplinks.length, `${k} sum ${sum(scaled, k)} fits the budget (each at least 5)`)
  t.same(scaled.uplinks.map((u) => u.delayMs), big.uplinks.map((u) => u.delayMs), 'delays are not scaled')
})

t.test('a mix becomes lab uplinks with its rates, delay, loss and jitter', async (t) => {
  const [m] = drawMixes(99, 1, 400)
  if (!m) throw new Error('no mix')
  const specs = mixUplinks(m)
  t.equal(specs.length, m.uplinks.length)
  specs.forEach((s, i) => {
    const u = m.uplinks[i]!
    t.equal(s.up.rate, u.upMbit * 1e6)
    t.equal(s.down.rate, u.downMbit * 1e6)
    t.equal(s.up.delay, u.delayMs)
    t.ok(Math.abs(s.up.loss - u.lossUp) < 1e-9 && Math.abs(s.down.loss - u.lossDown) < 1e-9)
  })
  t.same(parseUplinks(mixUplinkFlags(m)).map((u) => u.name), m.uplinks.map((u) => u.name))
  for (const x of drawMixes(5, 300, 400)) t.doesNotThrow(() => mixUplinks(x), `mix ${x.index} is valid lab input`)
  t.equal(lossAtMost({ ...m, uplinks: m.uplinks.map((u) => ({ ...u, lossUp: 0.005, lossDown: 0.02 })) }, 'up', 0.01), true)
  t.equal(lossAtMost({ ...m, uplinks: m.uplinks.map((u) => ({ ...u, lossUp: 0.005, lossDown: 0.02 })) }, 'down', 0.01), false)
})

t.test('directions', async (t) => {
  t.same(directionsOf('both'), ['up', 'down'])
  t.same(directionsOf('down'), ['down'])
  t.equal(parseDirection(' down '), 'down')
  t.throws(() => parseDirection('sideways'), /--direction: 'sideways' is not one of up, down, both/)
  const u = parseUplinks(['a=5/25mbit', 'b=20/100mbit', 'c=40/50mbit'])
  t.equal(rateSumOf(u, 'up'), 65e6)
  t.equal(rateSumOf(u, 'down'), 175e6)
  t.equal(biggestUplinkOf(u, 'up'), 2)
  t.equal(biggestUplinkOf(u, 'down'), 1)
})

function fig(over: Partial<MixFigure>): MixFigure {
  return { mix: 1, set: 'up', direction: 'up', streams: 4, total_mbit: 98, single_sum_mbit: 100, sum_mbit: 110, efficiency: 0.98, rate_efficiency: 0.89, rate_judged: true, interactive_delta_ms: 2, interactive_outside_stalls_delta_ms: 1.5, resets: 0, bonded: true, cpu_bonded_s_per_gbit: 1.1, cpu_single_s_per_gbit: 1.05, saturated: false, daemons_wait_ms_per_s: 120, ...over }
}

t.test('the summary takes the worst mix per direction and -P, and the medians', async (t) => {
  const mixes = drawMixes(1, 2, 400)
  const res = (i: number, figures: MixFigure[], cuts: MixResult['cuts'] = []): MixResult => ({ index: i, uplinks: [], flags: [], mix: mixes[i - 1]!, run_id: 'x', ok: true, raw: [], figures, cuts, bonded: [], emulation: null })
  const bars = summarizeMixes([
    res(1, [fig({}), fig({ direction: 'down', efficiency: 0.93, streams: 4 }), fig({ streams: 1, efficiency: 0.91 })]),
    res(2, [fig({ mix: 2, direction: 'down', streams: 1, efficiency: 0.99, rate_efficiency: 0.7, rate_judged: false, interactive_delta_ms: 12.5, interactive_outside_stalls_delta_ms: 4.25 })], [
      { mix: 2, direction: 'up', streams: 4, uplink: 1, at_s: 4, dip_ms: 200, recovered: true, dip_beyond_noise_ms: 100, pre_mbit: 1, post_mbit: 1, surviving_mbit: 1, resets: 0 },
      { mix: 2, direction: 'down', streams: 4, uplink: 1, at_s: 4, dip_ms: 1200, recovered: true, dip_beyond_noise_ms: 1100, pre_mbit: 1, post_mbit: 1, surviving_mbit: 1, resets: 1 },
    ]),
  ])
  const bar = (w: RegExp): (typeof bars)[number] => bars.find((b) => w.test(b.what))!
  t.equal(bar(/worst mix, down -P4/).measured, '0.930')
  t.equal(bar(/worst mix, down -P4/).pass, false)
  t.equal(bar(/worst mix, down -P4/).worst, 'mix 1 down -P4')
  t.equal(bar(/worst mix, up -P1/).pass, true, '0.91 meets the -P1 bar of 0.90')
  t.equal(bar(/median of all/).measured, '0.955', 'the median of 0.98, 0.93, 0.91, 0.99')
  t.equal(bar(/rate efficiency/).measured, '0.890', 'a lossy mix is not judged on rate efficiency')
  t.equal(bar(/dip after a cut, worst/).measured, '1200')
  t.equal(bar(/dip after a cut, worst/).pass, false)
  t.equal(bar(/dip after a cut, median/).measured, '700')
  t.equal(bar(/beyond the series' own noise/).measured, '1100 / 600', 'the worst and the median dip beyond the noise, beside the dip')
  t.equal(bar(/beyond the series' own noise/).pass, null, 'read beside the bar, not judged')
  t.equal(bar(/resets/).measured, '1')
  t.equal(bar(/interactive/).pass, false)
  t.equal(bar(/outside the machine's stalls/).measured, '4.25', 'the worst over the pings outside the stalls, beside it')
  t.equal(bar(/outside the machine's stalls/).worst, 'mix 2 down -P1')
  t.equal(bar(/outside the machine's stalls/).pass, null, 'read beside the bar, not judged')
  t.equal(bar(/CPU/).measured, '0.050')
})
