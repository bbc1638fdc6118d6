import t from 'tap'
import { outsideStalls, parseStallWindows, parseStalls, StallMeter } from '../../src/lab/stall.js'
import { stallText } from '../../src/lab/bond-report.js'
import { labProgram } from '../../src/lab/delay.js'
import { spawn } from 'node:child_process'

t.test('the meter exit line parses; anything else is null', async (t) => {
  const line = '{"event":"stalls","rt":"fifo","samples":9000,"over_5ms":3,"over_20ms":2,"over_50ms":1,"worst_ms":99.8,"late_ms":140.2}'
  t.same(parseStalls(`ready\n${line}\n`), { rt: 'fifo', samples: 9000, over_5ms: 3, over_20ms: 2, over_50ms: 1, worst_ms: 99.8, late_ms: 140.2 })
  t.equal(parseStalls('ready\n'), null, 'no exit line')
  t.equal(parseStalls('{"event":"stalls","rt":"fifo"}'), null, 'fields missing')
  t.equal(parseStalls('{"event":"stalls", nonsense'), null, 'not JSON')
})

t.test('stall lines become spans in wall-clock time; torn or foreign lines are left out', async (t) => {
  const text = 'ready\n{"event":"stall","end_ms":1000100.5,"ms":99.5}\n{"event":"stall","end_ms":2000,"ms":6}\n{"event":"stall", torn\n{"event":"stalls","rt":"fifo","samples":1,"over_5ms":2,"over_20ms":1,"over_50ms":1,"worst_ms":99.5,"late_ms":100}\n'
  t.same(parseStallWindows(text), [{ startMs: 1000001, endMs: 1000100.5 }, { startMs: 1994, endMs: 2000 }])
  t.same(parseStallWindows('ready\n'), [])
})

t.test('a ping is left out only when its flight overlaps a stall', async (t) => {
  const stall = [{ startMs: 1000, endMs: 1100 }]
  const r = (sentMs: number, rttMs: number): { atMs: number; rttMs: number } => ({ atMs: sentMs + rttMs, rttMs })
  const replies = [r(900, 20), r(990, 20), r(1050, 5), r(1090, 30), r(1110, 20), r(850, 300)]
  t.same(outsideStalls(replies, stall), [r(900, 20), r(1110, 20)], 'before it, and after it with the margin; in flight across either edge or within: out')
  t.same(outsideStalls(replies, []), replies, 'no stall: every ping')
  t.same(outsideStalls([r(1100.5, 10)], stall), [], 'sent within the margin of its end: out')
})

t.test('in words: the stalls over 20 ms, and that pings wait them out', async (t) => {
  const none = { rt: 'fifo' as const, samples: 9000, over_5ms: 1, over_20ms: 0, over_50ms: 0, worst_ms: 6.2, late_ms: 10 }
  t.match(stallText(none), /never stalled over 20 ms meanwhile \(worst 6\.2 ms\)/)
  t.match(stallText({ ...none, over_20ms: 2, worst_ms: 99.8 }), /stalled 2 time\(s\) over 20 ms meanwhile \(worst 99\.8 ms\): pings in a stall wait it out/)
  t.match(stallText({ ...none, rt: 'other', over_20ms: 1, worst_ms: 30 }), /without real-time priority/)
})

t.test('a running meter counts its wake-ups and stops with figures', async (t) => {
  const from = Date.now()
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
  const w = m.windows()
  t.equal(w.length, f.over_5ms, 'each stall over 5 ms is placed in time, and only those')
  t.ok(w.every((x) => x.endMs - x.startMs > 5 && x.endMs >= from && x.endMs <= Date.now()), 'within the run, in wall-clock ms')
  t.equal(await m.stop(), null, 'a second stop has nothing more to say')
})

t.test('a meter stopped for 150 ms (SIGSTOP) reports that stall, placed when it happened', async (t) => {
  const { bin, error } = await labProgram('stallmeter', ['stallmeter.c'])
  if (!bin) {
    t.fail(`the stall meter is not built: ${error}`)
    return
  }
  const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  const closed = new Promise<void>((resolve) => child.stdout.once('close', () => resolve()))
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
  for (let i = 0; i < 200 && !out.includes('ready\n'); i++) await sleep(10)
  if (!out.includes('ready\n')) {
    child.kill('SIGKILL')
    t.fail('the stall meter did not start within 2 s')
    return
  }
  await sleep(50)
  const stoppedAt = Date.now()
  child.kill('SIGSTOP')
  await sleep(150)
  child.kill('SIGCONT')
  await sleep(50)
  child.kill('SIGTERM')
  await closed
  const f = parseStalls(out)
  const w = parseStallWindows(out)
  t.ok(f && f.over_50ms >= 1, 'counted as a stall over 50 ms')
  t.equal(w.length, f?.over_5ms, 'each stall over 5 ms is placed in time, and only those')
  const long = w.find((x) => x.endMs - x.startMs >= 100)
  t.ok(long, 'the stop is one span of at least 100 ms')
  if (long) t.ok(Math.abs(long.startMs - stoppedAt) < 100, `it starts when the meter was stopped (${(long.startMs - stoppedAt).toFixed(1)} ms off)`)
})
