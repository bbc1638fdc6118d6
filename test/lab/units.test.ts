import t from 'tap'
import { formatRate, parseDelay, parseLoss, parsePositiveInt, parseRate } from '../../src/lab/units.js'

t.test('rates in bits/s', async (t) => {
  t.equal(parseRate('100mbit'), 100_000_000)
  t.equal(parseRate('1.5Gbit'), 1_500_000_000)
  t.equal(parseRate('25Mbps'), 25_000_000)
  t.equal(parseRate(8000), 8000)
  t.throws(() => parseRate('100'), { code: 'QE_LAB_SPEC', message: /^rate:/ })
  t.throws(() => parseRate('12MBps', '--rate'), { code: 'QE_LAB_SPEC', message: /--rate: .*bytes per second/ })
})

t.test('delays in ms, including microseconds and fractions', async (t) => {
  t.equal(parseDelay('10ms'), 10)
  t.equal(parseDelay('250us'), 0.25)
  t.equal(parseDelay('1.5ms'), 1.5)
  t.equal(parseDelay('0.2s'), 200)
  t.equal(parseDelay(35), 35)
  t.throws(() => parseDelay('10'), { code: 'QE_LAB_SPEC' })
  t.throws(() => parseDelay('11s'), { code: 'QE_LAB_SPEC', message: /limit/ })
  t.throws(() => parseDelay('-1ms'), { code: 'QE_LAB_SPEC' })
})

t.test('loss as a percentage, returned as a fraction', async (t) => {
  t.equal(parseLoss('1%'), 0.01)
  t.equal(parseLoss('0.5%'), 0.005)
  t.equal(parseLoss('2'), 0.02)
  t.equal(parseLoss(0), 0)
  t.throws(() => parseLoss('100%'), { code: 'QE_LAB_SPEC' })
  t.throws(() => parseLoss('-1%'), { code: 'QE_LAB_SPEC' })
  t.throws(() => parseLoss('a lot'), { code: 'QE_LAB_SPEC' })
})

t.test('positive integers from the command line', async (t) => {
  t.equal(parsePositiveInt('10', '--seconds'), 10)
  t.throws(() => parsePositiveInt('0', '--seconds'), { message: /--seconds/ })
  t.throws(() => parsePositiveInt('1.5', '--streams'), { code: 'QE_LAB_SPEC' })
  t.throws(() => parsePositiveInt('200', '--streams', 128), { code: 'QE_LAB_SPEC' })
})

t.test('rates for people', async (t) => {
  t.equal(formatRate(100e6), '100 Mbit/s')
  t.equal(formatRate(1.5e9), '1.50 Gbit/s')
  t.equal(formatRate(25.5e6), '25.5 Mbit/s')
  t.equal(formatRate(512e3), '512 kbit/s')
})
