import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { delayLineArgs, delayLineSeed, emulationFigures, type DelayLineStats } from '../../src/lab/delay.js'
import { emulationText } from '../../src/lab/bond-report.js'

t.test('delay line arguments: the seed first, a jitter only when there is one, in microseconds', async (t) => {
  const dirs = [
    { from: 'ra', tun: 'da', delayMs: 40, jitterMs: 10, table: 100 },
    { from: 'rb', tun: 'db', delayMs: 0, jitterMs: 2.5, table: 101 },
    { from: 'rc', tun: 'dc', delayMs: 7, jitterMs: 0, table: 102 },
    { from: 'rd', tun: 'dd', delayMs: 0.25, table: 103 },
  ]
  t.same(delayLineArgs(dirs, 123), ['--seed', '123', 'da:40000:10000', 'db:0:2500', 'dc:7000', 'dd:250'], 'no jitter keeps the old TUN:DELAY_US form')
  t.same(delayLineArgs([{ from: 'ra', tun: 'da', delayMs: 5, jitterMs: 0.0001, table: 100 }], 0), ['--seed', '0', 'da:5000'], 'a jitter that rounds to 0 µs is none')
  t.throws(() => delayLineArgs(dirs, -1), { code: 'QE_LAB_SPEC' })
  t.throws(() => delayLineArgs(dirs, 1.5), { code: 'QE_LAB_SPEC' })
})

t.test('delay line seeds: per link, from the lab seed when there is one, else from the run id', async (t) => {
  const s = delayLineSeed(42, 'ab12', 0)
  t.equal(s, delayLineSeed(42, 'cd34', 0), 'a lab seed replays whatever the run id')
  t.not(s, delayLineSeed(42, 'ab12', 1), 'each link draws its own')
  t.not(s, delayLineSeed(43, 'ab12', 0))
  t.not(delayLineSeed(null, 'ab12', 0), delayLineSeed(null, 'cd34', 0), 'without a seed, each run draws its own')
  t.equal(delayLineSeed(null, 'ab12', 3), delayLineSeed(null, 'ab12', 3))
  for (const x of [s, delayLineSeed(null, 'ab12', 0)]) t.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32, `${x} is a 32-bit seed`)
})

t.test("the delay line's own unit test (jitter.h) passes", (t) => {
  const dir = fileURLToPath(new URL('../../native/lab', import.meta.url))
  const out = execFileSync('make', ['-s', '-C', dir, 'check'], { encoding: 'utf8' })
  const m = /(\d+) passed, (\d+) failed/.exec(out)
  t.ok(m && Number(m[1]) > 20, `ran its cases: ${out.trim()}`)
  t.equal(m?.[2], '0', 'no failures')
  t.end()
})

t.test("a run's emulation figures: the worst of the links that carried packets", async (t) => {
  const line = (packets: number) => ({ tun: 'd', delay_us: 5000, jitter_us: 0, packets, bytes: packets * 1500, drops_full: 0, drops_write: 0, held_max: 3, applied_us: { min: 5000, mean: 5000, max: 5000 }, fifo_raised: 0 })
  const stats = (within: number, p99: number, max: number, packets: number, rt?: string): DelayLineStats => ({
    lines: [line(packets), line(0)],
    seed: 1,
    late_us: { min: -120, p50: 10, p99, max },
    within_200us: within,
    ...(rt ? { rt } : {}),
  })
  t.equal(emulationFigures([]), null, 'no delay line: nothing to report')
  t.equal(emulationFigures([stats(0.5, 9000, 9000, 0)]), null, 'a line that held nothing says nothing')
  const e = emulationFigures([stats(0.99, 150, 700, 1000, 'other'), stats(0.93, 1800, 24000, 500, 'other'), stats(0.2, 9000, 90000, 0, 'fifo')])
  t.same(e, { scheduler: 'other', lines: 2, packets: 1500, within_200us: 0.93, late_p99_ms: 1.8, late_max_ms: 24 })
  t.equal(emulationFigures([stats(0.99, 150, 700, 10, 'fifo'), stats(0.99, 150, 700, 10)])?.scheduler, 'fifo+other', 'mixed scheduling is said')
  t.match(emulationText(e), /93(\.0)?% of packets within 0\.2 ms of due \(worst of 2 link\(s\); p99 1\.80 ms late, worst 24(\.0)? ms; normal scheduling\)/)
  t.equal(emulationText(null), 'no delayed link')
})
