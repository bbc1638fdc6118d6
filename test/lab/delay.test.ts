import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { delayLineArgs, delayLineSeed } from '../../src/lab/delay.js'

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
