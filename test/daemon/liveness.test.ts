import t from 'tap'
import { Liveness, silenceLimitMs } from '../../src/daemon/liveness.js'
import type { PeerStats } from '../../src/engine/types.js'

const stat = (peer: string, silentMs: number, rttMs = 2, rttVarMs = 1, up = true, bytesInFlight = 0): PeerStats =>
  ({ peer, up, silentMs, rttMs, rttVarMs, bytesInFlight }) as unknown as PeerStats

t.test('the silence limit follows the measured RTT: three probe timeouts, plus the keep-alive interval when nothing is in flight', async (t) => {
  t.equal(silenceLimitMs({ rttMs: 1, rttVarMs: 0.5, bytesInFlight: 0 }, 1000), 1250, 'an idle LAN peer: keep-alive and the floor')
  t.equal(silenceLimitMs({ rttMs: 100, rttVarMs: 10, bytesInFlight: 0 }, 1000), 1000 + 3 * 140, 'a long path waits longer')
  t.equal(silenceLimitMs({ rttMs: 1, rttVarMs: 0.5, bytesInFlight: 1200 }, 1000), 250, 'with packets in flight the answer is due within probe timeouts')
  t.equal(silenceLimitMs({ rttMs: 100, rttVarMs: 10, bytesInFlight: 1200 }, 1000), 3 * 140)
})

t.test('onChange fires when a peer turns silent and when it is heard again, not on every poll', async (t) => {
  let peers: PeerStats[] = [stat('a', 100), stat('b', 300)]
  let changes = 0
  const l = new Liveness({ stats: () => peers, keepaliveMs: 1000, onChange: () => changes++ })
  l.poll()
  t.equal(changes, 0, 'all alive: nothing to say')
  t.same(l.of('a'), { stale: false, rttMs: 2 })
  peers = [stat('a', 1400), stat('b', 100, 2, 1, true, 5000)]
  l.poll()
  l.poll()
  t.equal(changes, 1, 'a went silent: once')
  t.equal(l.of('a')?.stale, true)
  peers = [stat('a', 20), stat('b', 300)]
  l.poll()
  t.equal(changes, 2, 'heard again')
  peers = [stat('a', 0, 2, 1, false)]
  l.poll()
  t.equal(l.of('a'), undefined, 'a peer that is down has no liveness (it is gone from the facts anyway)')
  t.equal(changes, 2)
})

t.test('an engine that cannot be read counts as no peers, without throwing', async (t) => {
  const l = new Liveness({ stats: () => { throw new Error('stopping') }, keepaliveMs: 1000, onChange: () => undefined })
  t.doesNotThrow(() => l.poll())
  t.equal(l.of('x'), undefined)
})
