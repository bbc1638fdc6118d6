import t from 'tap'
import { parseStalls, StallMeter } from '../../src/lab/stall.js'
import { stallText } from '../../src/lab/bond-report.js'

t.test('the meter exit line parses; anything else is null', async (t) => {
  const line = '{"event":"stalls","rt":"fifo","samples":9000,"over_5ms":3,"over_20ms":2,"over_50ms":1,"worst_ms":99.8,"late_ms":140.2}'
  t.same(parseStalls(`ready\n${line}\n`), { rt: 'fifo', samples: 9000, over_5ms: 3, over_20ms: 2, over_50ms: 1, worst_ms: 99.8, late_ms: 140.2 })
  t.equal(parseStalls('ready\n'), null, 'no exit line')
  t.equal(parseStalls('{"event":"stalls","rt":"fifo"}'), null, 'fields missing')
  t.equal(parseStalls('{"event":"stalls", nonsense'), null, 'not JSON')
})

t.test('in words: the stalls over 20 ms, and that pings wait them out', async (t) => {
  const none = { rt: 'fifo' as const, samples: 9000, over_5ms: 1, over_20ms: 0, over_50ms: 0, worst_ms: 6.2, late_ms: 10 }
  t.match(stallText(none), /never stalled over 20 ms meanwhile \(worst 6\.2 ms\)/)
  t.match(stallText({ ...none, over_20ms: 2, worst_ms: 99.8 }), /stalled 2 time\(s\) over 20 ms meanwhile \(worst 99\.8 ms\): pings in a stall wait it out/)
  t.match(stallText({ ...none, rt: 'other', over_20ms: 1, worst_ms: 30 }), /without real-time priority/)
})

t.test('a running meter counts its wake-ups and stops with figures', async (t) => {
  const m = await StallMeter.start()
  await new Promise((r) => setTimeout(r, 300))
  const f = await m.stop()
  if (f === null) {
    t.fail('the stall meter did not run (make -C native/lab builds it)')
    return
  }
  // 300 ms of 1 ms sleeps: well over a hundred wake-ups even on a busy machine.
  t.ok(f.samples > 100, `${f.samples} wake-ups in 300 ms`)
  t.ok(f.worst_ms >= 0 && f.over_20ms <= f.over_5ms, 'the counts nest: every stall over 20 ms is one over 5 ms')
  t.equal(await m.stop(), null, 'a second stop has nothing more to say')
})
