/**
 * What the web UI is told: each tunnel's health and kind, live rates in
 * bits/s, each uplink's share and a dead one marked, key fingerprints,
 * groups, and config errors as FILE:LINE:COL.
 */
import t from 'tap'
import { RateMeter } from '../../src/observe/rates.js'
import { fingerprint, uiView } from '../../src/observe/ui-view.js'
import { fakeStatus, keyOf } from './fake-status.js'

t.test('health, kind, rates, shares and the cut uplink', async (t) => {
  const meter = new RateMeter()
  meter.sample(fakeStatus({ peers: 4, bondEvery: 2, tick: 1 }), 0)
  const v = uiView(fakeStatus({ peers: 4, bondEvery: 2, tick: 3, dead: ['dsl'], down: [1] }), meter.sample(fakeStatus({ peers: 4, bondEvery: 2, tick: 3, dead: ['dsl'], down: [1] }), 2000))
  const p0 = v.peers.find((p) => p.name === 'peer-0')!
  t.equal(p0.health, 'degraded', 'an up bond with a dead uplink is degraded')
  t.equal(p0.kind, 'direct')
  t.same(p0.groups, ['staff'])
  t.equal(p0.fingerprint, fingerprint(keyOf(0)))
  t.match(p0.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/)
  // 2000 bytes per tick, 2 ticks in 2 s: 2000 B/s = 16 kbit/s out.
  t.equal(p0.outBps, 16_000)
  const dsl = p0.paths.find((x) => x.uplink === 'dsl')!
  t.equal(dsl.alive, false)
  t.equal(Number(dsl.share.toFixed(4)), 0.3333)
  t.equal(dsl.outBps, 8_000_000, '1 MB/s on dsl = 8 Mbit/s')
  const p1 = v.peers.find((p) => p.name === 'peer-1')!
  t.equal(p1.health, 'down')
  t.equal(p1.kind, null)
  t.equal(v.peers.find((p) => p.name === 'peer-3')!.health, 'up', 'a plain tunnel that is up')
  t.same(v.uplinks.map((u) => [u.name, u.alive]), [['dsl', false], ['lte', true]], 'uplinks summed over bonds; a dead one stays dead')
})

t.test('config errors carry FILE:LINE:COL', async (t) => {
  const st = fakeStatus({ peers: 1, errors: [{ file: '/etc/quicether.yaml', line: 12, col: 5, path: 'peers[0].key', severity: 'error', code: 'QE_BAD_KEY', message: 'not a key' }] })
  const v = uiView(st, new RateMeter().sample(st, 0))
  t.same(v.config.errors.map((e) => e.where), ['/etc/quicether.yaml:12:5'])
  t.equal(v.audit.enabled, false, 'no audit log given: the view says so')
})
