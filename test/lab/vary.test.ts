import t from 'tap'
import { DEFAULT_VARY_SHAPE, RateVariation, drawSchedule, drawSteps, meanRate, varyParams, varyTargets, type VaryBase } from '../../src/lab/vary.js'
import { bondTopology, parseUplinks } from '../../src/lab/bond-spec.js'
import { linkAddressing } from '../../src/lab/link.js'
import type { LinkHandle } from '../../src/lab/types.js'

const BASES: VaryBase[] = [
  { link: 0, dir: 'up', baseBps: 50e6 },
  { link: 0, dir: 'down', baseBps: 10e6 },
  { link: 2, dir: 'up', baseBps: 100e6 },
]

t.test('the same seed draws the same schedule; another seed another', async (t) => {
  const a = drawSchedule(7, 60_000, BASES)
  t.same(drawSchedule(7, 60_000, BASES), a)
  t.notSame(drawSchedule(8, 60_000, BASES), a)
  t.same(a.map((s) => [s.link, s.dir, s.baseBps]), BASES.map((b) => [b.link, b.dir, b.baseBps]), 'one schedule per direction, in order')
})

t.test('up and down draw independently, and a link does not depend on which others vary', async (t) => {
  const [up, down, other] = drawSchedule(7, 60_000, BASES)
  t.notSame(up!.steps.map((s) => s.atMs), down!.steps.map((s) => s.atMs), 'up and down change at other times')
  t.same(drawSchedule(7, 60_000, [BASES[2]!])[0], other, 'link 3 draws the same alone')
})

t.test('steps: one at 0, then every 2-5 s until the end, each at 0.5-1.5× the base', async (t) => {
  for (let seed = 0; seed < 200; seed++) {
    const steps = drawSteps(seed, 30_000, 40e6)
    if (steps[0]?.atMs !== 0) t.fail(`seed ${seed}: the first step is at ${steps[0]?.atMs}`)
    for (let i = 1; i < steps.length; i++) {
      const gap = steps[i]!.atMs - steps[i - 1]!.atMs
      if (gap < 2000 || gap > 5000) t.fail(`seed ${seed}: a gap of ${gap} ms`)
    }
    if (steps.at(-1)!.atMs >= 30_000 || steps.at(-1)!.atMs + 5000 < 30_000) t.fail(`seed ${seed}: the last step at ${steps.at(-1)!.atMs} ms`)
    for (const s of steps) if (s.rateBps < 20e6 || s.rateBps > 60e6 || !Number.isInteger(s.rateBps)) t.fail(`seed ${seed}: rate ${s.rateBps}`)
  }
  const all = Array.from({ length: 200 }, (_, seed) => drawSteps(seed, 30_000, 40e6)).flat()
  const factors = all.map((s) => s.rateBps / 40e6)
  t.ok(Math.min(...factors) < 0.55 && Math.max(...factors) > 1.45, 'the factors span the range')
  const mean = factors.reduce((a, b) => a + b, 0) / factors.length
  t.ok(Math.abs(mean - 1) < 0.03, `the factors average about 1 (${mean.toFixed(3)})`)
  t.same(drawSteps(1, 0, 40e6).length, 1, 'a zero duration still sets a rate at 0')
  t.same(drawSteps(3, 1000, 8e6, { intervalMs: [100, 100], factor: [2, 2] }), Array.from({ length: 10 }, (_, i) => ({ atMs: i * 100, rateBps: 16e6 })), 'a fixed shape')
  t.throws(() => drawSteps(1, 1000, 1e6, { ...DEFAULT_VARY_SHAPE, factor: [0, 1] }), { code: 'QE_LAB_SPEC' })
  t.throws(() => drawSteps(1, 1000, 1e6, { ...DEFAULT_VARY_SHAPE, intervalMs: [5, 1] }), { code: 'QE_LAB_SPEC' })
})

t.test('the time-weighted mean over a window', async (t) => {
  const steps = [
    { atMs: 1000, rateBps: 20 },
    { atMs: 3000, rateBps: 40 },
  ]
  t.equal(meanRate(steps, 10, 0, 1000), 10, 'the base before the first step')
  t.equal(meanRate(steps, 10, 0, 2000), 15)
  t.equal(meanRate(steps, 10, 1000, 3000), 20)
  t.equal(meanRate(steps, 10, 2000, 4000), 30)
  t.equal(meanRate(steps, 10, 500, 5000), (10 * 500 + 20 * 2000 + 40 * 2000) / 4500)
  t.equal(meanRate(steps, 10, 3500, 3500), 40, 'an empty window is the rate at that time')
  t.equal(meanRate([], 10, 0, 9000), 10, 'no steps: the base')
  t.throws(() => meanRate(steps, 10, 5, 4), { code: 'QE_LAB_SPEC' })
})

/** A built bonding lab's handles, without building it (run id zzzz: never a real run's, which is hex). */
function fakeLab(specs: string[]): { runId: string; links: LinkHandle[] } {
  const topo = bondTopology(parseUplinks(specs))
  return {
    runId: 'zzzz',
    links: topo.links.map((spec, index) => {
      const ad = linkAddressing(index, true)
      return { index, spec, router: `qel-zzzz-r${index}`, ifA: `qel-zzzz-l${index}a`, ifB: `qel-zzzz-l${index}b`, addrA: ad.a, addrB: ad.b }
    }),
  }
}

t.test('targets: up is the veth facing the gateway, down the one facing the client, sized like the link', async (t) => {
  const lab = fakeLab(['50/10mbit,20ms', '100mbit,40/10ms'])
  const targets = varyTargets(lab, [1])
  t.same(targets, [
    { link: 1, dir: 'up', baseBps: 100e6, netns: 'qel-zzzz-r1', dev: 'qel-zzzz-l1rb', rttMs: 50, queueMs: null },
    { link: 1, dir: 'down', baseBps: 100e6, netns: 'qel-zzzz-r1', dev: 'qel-zzzz-l1ra', rttMs: 50, queueMs: null },
  ])
  t.throws(() => varyTargets(lab, [2]), { code: 'QE_LAB_SPEC', message: /link 3 does not exist/ })
  t.throws(() => varyTargets({ ...lab, links: [{ ...lab.links[0]!, router: null }] }, [0]), { code: 'QE_LAB_SPEC', message: /no router/ })
})

t.test('a RateVariation draws on construction, touches nothing until start, and stops safely unstarted', async (t) => {
  const lab = fakeLab(['50/10mbit,20ms', '100mbit'])
  const v = new RateVariation({ lab, indices: [0, 1], seed: 9, durationMs: 20_000 })
  const bases = [
    { link: 0, dir: 'up' as const, baseBps: 50e6 },
    { link: 0, dir: 'down' as const, baseBps: 10e6 },
    { link: 1, dir: 'up' as const, baseBps: 100e6 },
    { link: 1, dir: 'down' as const, baseBps: 100e6 },
  ]
  t.same(v.schedule(), drawSchedule(9, 20_000, bases))
  t.same(v.meanRates(0, 10_000).map((m) => m.meanBps), [50e6, 10e6, 100e6, 100e6], 'not started: the base rates')
  await v.stop()
  await v.stop()
  const r = v.report()
  t.equal(r.seed, 9)
  t.same(r.directions.map((d) => [d.dev, d.applied.length]), [['qel-zzzz-l0rb', 0], ['qel-zzzz-l0ra', 0], ['qel-zzzz-l1rb', 0], ['qel-zzzz-l1ra', 0]], 'nothing applied')
  t.same(r.errors, [])
  await t.rejects(v.start(), { code: 'QE_LAB_SPEC', message: /starts once/ }, 'stopped before start: it cannot start any more')
})

t.test('a rate step keeps the bucket the link was built with: a cut never leaves a queued packet too big to send', async (t) => {
  const { tbfParams } = await import('../../src/lab/shaping.js')
  for (const base of [5e6, 50e6, 194.8e6, 300e6]) {
    const target = { baseBps: base, rttMs: 27, queueMs: null }
    const built = tbfParams(base, 27, null)
    for (const f of [0.5, 0.83, 1, 1.5]) {
      const p = varyParams(target, Math.round(base * f))
      t.equal(p.burstBytes, built.burstBytes, `${base / 1e6} Mbit/s × ${f}: the bucket as built`)
      t.equal(p.rateBps, tbfParams(Math.round(base * f), 27, null).rateBps, 'the rate is the step\'s')
      t.ok(p.limitBytes >= p.burstBytes, 'the queue holds at least a bucket')
    }
  }
  // What it guards against: the bucket a plain tbfParams gives shrinks with the rate.
  t.ok(tbfParams(161e6, 27, null).burstBytes < tbfParams(290e6, 27, null).burstBytes)
})
