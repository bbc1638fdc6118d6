import t from 'tap'
import { formatBitrate, formatDuration, formatSize, parseBitrate, parseDuration, parseSize } from '../../src/config/units.js'

t.test('bit rates → bits/s', async (t) => {
  const cases: Array<[unknown, number]> = [
    ['25Mbps', 25_000_000],
    ['1.5Gbit', 1_500_000_000],
    ['100mbit', 100_000_000],
    ['1Gbps', 1_000_000_000],
    ['500kbps', 500_000],
    ['500Kbps', 500_000],
    ['64bps', 64],
    ['2 Mbit/s', 2_000_000],
    ['1Mibps', 1_048_576],
    ['100.1Mbps', 100_100_000],
    [25_000_000, 25_000_000],
  ]
  for (const [input, want] of cases) t.equal(parseBitrate(input).value, want, String(input))
})

t.test('bad bit rates say why', async (t) => {
  t.match(parseBitrate('25MBps').error, /bytes per second.*200Mbps/)
  t.match(parseBitrate(2 ** 53).error, /too large/, 'a plain number past 2^53 is refused, not rendered back unloadable')
  t.match(parseSize(2 ** 53).error, /too large/)
  t.match(parseBitrate('25 Mbsp').error, /is not a bit rate/)
  t.match(parseBitrate('fast').error, /like 25Mbps/)
  t.match(parseBitrate('0Mbps').error, /zero/)
  t.match(parseBitrate(0).error, /≥ 1/)
  t.match(parseBitrate(1.5).error, /whole number/)
  t.match(parseBitrate(true).error, /not a bit rate/)
  t.match(parseBitrate('-5Mbps').error, /not a bit rate/)
})

t.test('durations → milliseconds', async (t) => {
  const cases: Array<[unknown, number]> = [
    ['500ms', 500],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    ['0.1s', 100],
    [250, 250],
    [0, 0],
  ]
  for (const [input, want] of cases) t.equal(parseDuration(input).value, want, String(input))
  t.match(parseDuration('5 sec').error, /not a duration/)
  t.match(parseDuration('2').error, /not a duration/, 'a unitless string is refused (a plain number is fine)')
  t.match(parseDuration('').error, /not a duration/)
  t.match(parseDuration(-1).error, /≥ 0/)
  t.match(parseDuration(Infinity).error, /not a duration/)
})

t.test('sizes → bytes', async (t) => {
  const cases: Array<[unknown, number]> = [
    ['4MB', 4_000_000],
    ['64KiB', 65_536],
    ['4MiB', 4_194_304],
    ['1.5GB', 1_500_000_000],
    ['512B', 512],
    ['10 bytes', 10],
    [4096, 4096],
  ]
  for (const [input, want] of cases) t.equal(parseSize(input).value, want, String(input))
  t.match(parseSize('4Mb').error, /in bits/)
  t.match(parseSize('lots').error, /not a size/)
  t.match(parseSize(1.5).error, /whole number/)
})

t.test('formatting reads back to the same number', async (t) => {
  for (const bps of [1, 999, 1000, 25_000_000, 1_500_000_000, 123_456_789, 5_000_000_000_000]) {
    const text = formatBitrate(bps)
    t.equal(parseBitrate(text).value, bps, `${bps} → ${text}`)
  }
  t.equal(formatBitrate(25_000_000), '25Mbps')
  t.equal(formatBitrate(1_500_000_000), '1.5Gbps')
  for (const ms of [0, 1, 500, 1000, 90_000, 60_000, 3_600_000, 0.5, 1500]) {
    t.equal(parseDuration(formatDuration(ms)).value, ms, `${ms} → ${formatDuration(ms)}`)
  }
  t.equal(formatDuration(2000), '2s')
  t.equal(formatDuration(150), '150ms')
  for (const b of [0, 1, 1000, 1024, 4_194_304, 65_536, 4_000_000, 123_457]) {
    t.equal(parseSize(formatSize(b)).value, b, `${b} → ${formatSize(b)}`)
  }
  t.equal(formatSize(4_194_304), '4MiB')
})
