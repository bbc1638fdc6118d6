import t from 'tap'
import { drawExitMixes, exitTopology, failoverTopology, gapAround, replyTimes, summarizeExits, type ExitResult } from '../../src/lab/gateways.js'
import { parseUplinks } from '../../src/lab/bond-spec.js'
import { seededRandom } from '../../src/lab/random.js'
import { checkTopology } from '../../src/lab/topology.js'

t.test('ping -D replies and the gap around a death', async (t) => {
  const out = ['PING 192.168.77.10 (192.168.77.10) 56(84) bytes of data.', '[1000.000000] 64 bytes from 192.168.77.10: icmp_seq=1 ttl=63 time=0.3 ms', '[1000.020000] 64 bytes from 192.168.77.10: icmp_seq=2 ttl=63 time=0.3 ms', '[1001.400000] 64 bytes from 192.168.77.10: icmp_seq=72 ttl=63 time=0.4 ms', '[1001.420000] 64 bytes from 192.168.77.10: icmp_seq=73 ttl=63 time=0.4 ms'].join('\n')
  const times = replyTimes(out)
  t.same(times, [1_000_000, 1_000_020, 1_001_400, 1_001_420])
  t.equal(gapAround(times, 1_000_010), 1380, 'a reply that trickled in after the death does not hide the outage')
  t.equal(gapAround(times, 999_000), null, 'nothing before: no gap to tell')
})

t.test('the worlds are valid topologies', async (t) => {
  t.doesNotThrow(() => checkTopology(exitTopology(parseUplinks(['50mbit,10ms', '100mbit,20ms']))))
  t.doesNotThrow(() => checkTopology(failoverTopology()))
  t.equal(exitTopology(parseUplinks(['50mbit'])).links.at(-1)?.name, 'wan', 'the internet link comes after the uplinks')
})

t.test('drawn mixes: seeded, within their ranges, parseable', async (t) => {
  const a = drawExitMixes(seededRandom(7), 20)
  t.same(a, drawExitMixes(seededRandom(7), 20), 'the same seed draws the same mixes')
  t.notSame(a, drawExitMixes(seededRandom(8), 20))
  for (const mix of a) {
    t.ok(mix.length >= 1 && mix.length <= 4)
    for (const u of parseUplinks(mix)) {
      t.ok(u.up.rate! >= 5e6 && u.up.rate! <= 150e6, `rate ${u.up.rate}`)
      t.ok(u.up.delay >= 2 && u.up.delay <= 60)
      t.ok(u.up.loss <= 0.02)
    }
  }
})

t.test('the summary reports the worst of each figure', async (t) => {
  const run = (ratio: number | null, leaks: number, fallback: number | null) => ({ ratio, leaks, fallback_ms: fallback, mix: ['x'] }) as unknown as ExitResult & { mix: string[] }
  t.same(summarizeExits(1, [run(0.99, 0, 1200), run(0.96, 2, 1500)]).worst, { ratio: 0.96, leaks: 2, fallback_ms: 1500 })
  t.same(summarizeExits(1, [run(null, 0, null), run(0.96, 0, 900)]).worst, { ratio: null, leaks: 0, fallback_ms: null }, 'a failed run makes the worst unknown, never better')
})
