/**
 * Jitter and rate variation on a real link (root): the delay line's jitter
 * spreads RTTs over [delay, delay + jitter] without reordering a burst, and a
 * RateVariation moves the link's tbf rate and puts it back on stop. One small
 * lab (its own namespaces, torn down by name even on failure), a few seconds.
 */
import t from 'tap'
import { whenRootWith } from './root-gate.js'
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { Lab } from '../../src/lab/topology.js'
import { delayLineSeed } from '../../src/lab/delay.js'
import { linkIfname } from '../../src/lab/names.js'
import { ping } from '../../src/lab/traffic.js'
import { run, runIn } from '../../src/lab/exec.js'
import { tbfParams } from '../../src/lab/shaping.js'
import { RateVariation } from '../../src/lab/vary.js'
import type { DirectionSpec, TopologySpec } from '../../src/lab/types.js'

const NONE: DirectionSpec = { rate: null, delay: 0, jitter: 0, loss: 0 }
const RATE = 20e6
const DELAY = 5
const JITTER = 10
/** b → a: a constant delay, which must stay exactly constant. */
const BACK = 2
const BURST = 200

const spec: TopologySpec = {
  nodes: [
    { name: 'alpha', daemon: false, config: null },
    { name: 'beta', daemon: false, config: null },
  ],
  // a → b: 5 ms + up to 10 ms of jitter; b → a: 2 ms, no jitter. Both rate-limited, so both can vary.
  links: [{ name: 'l', a: 'alpha', b: 'beta', aToB: { ...NONE, rate: RATE, delay: DELAY, jitter: JITTER }, bToA: { ...NONE, rate: RATE, delay: BACK }, queue: null, nat: 'none' }],
}

/** The rate (bits/s, as tbf enforces it on frames) of the root tbf on `dev` in `ns`. */
async function tbfRate(ns: string, dev: string): Promise<number> {
  const r = await run('tc', ['-j', '-n', ns, 'qdisc', 'show', 'dev', dev])
  const q = (JSON.parse(r.stdout) as { kind: string; options?: { rate?: number } }[]).find((x) => x.kind === 'tbf')
  if (q?.options?.rate === undefined) throw new Error(`no tbf on ${dev}: ${r.stdout}`)
  return q.options.rate * 8 // tc -j gives bytes/s
}

/** Sends `n` numbered datagrams from alpha to beta back to back; returns the numbers beta got, in arrival order. */
async function burst(lab: Lab, n: number): Promise<number[]> {
  const to = lab.link(0).addrB.ipv4
  const recvJs = `const s=require('dgram').createSocket('udp4');const got=[];let t;` +
    `const done=()=>{process.stdout.write(JSON.stringify(got)+'\\n');s.close()};` +
    `s.on('message',m=>{got.push(m.readUInt32BE(0));clearTimeout(t);t=setTimeout(done,300);if(got.length===${n})done()});` +
    `s.bind(7998,'${to}',()=>console.log('ready'));setTimeout(done,5000)`
  const recv = spawn('ip', ['netns', 'exec', lab.node('beta').netns, process.execPath, '-e', recvJs], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  recv.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exited = new Promise<void>((resolve) => recv.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    recv.stdout.once('data', () => resolve())
    recv.once('exit', (c) => reject(new Error(`receiver exited ${c}`)))
  })
  const sendJs = `const s=require('dgram').createSocket('udp4');let i=0;` +
    `const next=()=>{if(i===${n})return s.close();const b=Buffer.alloc(64);b.writeUInt32BE(i++,0);s.send(b,7998,'${to}',next)};next()`
  await runIn(lab.node('alpha').netns, process.execPath, ['-e', sendJs], { timeoutMs: 10_000 })
  await exited
  return JSON.parse(out.split('\n')[1] ?? '[]') as number[]
}

async function tests(): Promise<void> {
  const lab = new Lab({ spec, seed: 1 })
  t.teardown(() => lab.stop().then(() => undefined))
  await lab.start()

  t.test('jitter spreads RTTs over [delay, delay + jitter] (both ways: 5 + 2 ms, up to 10 ms of jitter)', async (t) => {
    // 50 ms apart over 2 s: the extra delay wanders through the range in segments of 20-80 ms (jitter.h).
    const r = await ping(lab.node('alpha').netns, lab.link(0).addrB.ipv4, { count: 40, intervalMs: 50 })
    t.equal(r.received, 40, 'every echo answered')
    // The bounds are the middle 80%: a busy machine (two cores, shared) can add a late outlier to ping's own timing.
    const sorted = [...r.rttsMs].sort((a, b) => a - b)
    const lo = Math.min(...sorted)
    const p10 = sorted[Math.floor(sorted.length * 0.1)]!
    const p90 = sorted[Math.floor(sorted.length * 0.9)]!
    t.ok(lo >= DELAY + BACK - 0.5, `the shortest RTT ${lo} ms is at least the delays`)
    t.ok(p90 <= DELAY + BACK + JITTER + 1.5, `the 90th percentile RTT ${p90} ms is at most the delays + jitter`)
    // About 30 wandering segments over 10 ms in 2 s: the middle 80% spans most of it; under 4 ms would be a stuck line.
    t.ok(p90 - p10 >= JITTER * 0.4, `the middle 80% of RTTs spreads over ${(p90 - p10).toFixed(2)} ms (${p10}-${p90})`)
  })

  t.test('a burst through the jittered direction arrives in order', async (t) => {
    const got = await burst(lab, BURST)
    // The FIFO releases most of the burst in one tick; a slow receiver may drop some, which is not the point here.
    t.ok(got.length >= BURST / 2, `${got.length} of ${BURST} datagrams arrived`)
    const out = got.filter((x, i) => i > 0 && x < got[i - 1]!)
    t.same(out, [], 'none overtook one sent before it')
  })

  t.test('a RateVariation moves the tbf rates and puts them back on stop', async (t) => {
    const router = lab.link(0).router!
    const up = linkIfname(lab.runId, 0, 'rb')
    const down = linkIfname(lab.runId, 0, 'ra')
    const rtt = DELAY + JITTER + BACK
    const base = tbfParams(RATE, rtt, null).rateBps
    const close = (a: number, b: number): boolean => Math.abs(a - b) <= 0.01 * b
    t.ok(close(await tbfRate(router, up), base), 'the link starts at its rate')
    const v = new RateVariation({ lab, indices: [0], seed: 3, durationMs: 900, shape: { intervalMs: [300, 300], factor: [0.5, 1.5] } })
    const [sUp, sDown] = v.schedule()
    await v.start()
    t.teardown(() => v.stop())
    const want = (bps: number): number => tbfParams(bps, rtt, null).rateBps
    t.ok(close(await tbfRate(router, up), want(sUp!.steps[0]!.rateBps)), 'up runs at its first drawn rate')
    t.ok(close(await tbfRate(router, down), want(sDown!.steps[0]!.rateBps)), 'down runs at its own first drawn rate')
    // Until every step went through (at 300 and 600 ms, plus a tc call each; more on a busy machine).
    const deadline = Date.now() + 5000
    while (!v.report().directions.every((d) => d.applied.length === d.steps.length) && Date.now() < deadline) await sleep(50)
    const last = (s: typeof sUp): number => s!.steps.at(-1)!.rateBps
    t.ok(close(await tbfRate(router, up), want(last(sUp))), 'up moved on to its last drawn rate')
    t.ok(close(await tbfRate(router, down), want(last(sDown))), 'down moved on to its last drawn rate')
    await v.stop()
    await v.stop()
    t.ok(close(await tbfRate(router, up), base), 'stop puts the base rate back (up)')
    t.ok(close(await tbfRate(router, down), base), 'stop puts the base rate back (down)')
    const r = v.report()
    t.same(r.errors, [])
    t.same(r.directions.map((d) => d.applied.length), [sUp!.steps.length + 1, sDown!.steps.length + 1], 'every step and the restore applied')
    const mean = v.meanRates(0, 900)
    const expected = sUp!.steps.reduce((s, x) => s + x.rateBps * 300, 0) / 900
    // Each change lands a tc call after its time (the applied times count), so "about" the drawn mean.
    t.ok(Math.abs(mean[0]!.meanBps - expected) <= 0.15 * expected, `the mean up rate ${mean[0]!.meanBps} is about the schedule's ${Math.round(expected)}`)
  })

  t.test("the delay line's counters show the jitter it applied", async (t) => {
    const stats = await lab.stop()
    const line = stats[0]?.lines.find((l) => l.jitter_us > 0)
    t.ok(line, `a line with jitter in ${JSON.stringify(stats)}`)
    t.equal(line?.jitter_us, JITTER * 1000)
    t.ok((line?.applied_us.min ?? 0) >= DELAY * 1000 && (line?.applied_us.max ?? Infinity) <= (DELAY + JITTER) * 1000, `applied ${JSON.stringify(line?.applied_us)}`)
    t.equal(line?.fifo_raised, 0, 'the wandering delay moves slower than time: no packet had to be held back to keep the order')
    const back = stats[0]?.lines.find((l) => l.jitter_us === 0)
    t.same(back && [back.delay_us, back.applied_us.min, back.applied_us.max, back.fifo_raised], [BACK * 1000, BACK * 1000, BACK * 1000, 0], 'without jitter, every packet is held exactly the delay')
    t.ok((back?.packets ?? 0) >= 40, 'the echo replies went through it')
    t.equal(stats[0]?.seed, delayLineSeed(1, lab.runId, 0), "the link's seed, from the lab's")
  })
}

await whenRootWith(['ip', 'tc', 'nft', 'ping', 'make', 'cc'], tests)
