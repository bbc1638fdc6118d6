import t from 'tap'
import { bondDelta, bondVerdict, daemonBond, daemonPaths, linksCarrying, pathForLink, pathLoss, pathsUp } from '../../src/lab/bond-paths.js'

const path = (uplink: string, addr: string, extra: Record<string, unknown> = {}) => ({ uplink, remote: { address: addr, port: 7443 }, up: true, rttMs: 12.5, rttMinMs: 10, bytesOut: 1000, bytesIn: 50, datagramsLost: 2, datagramsAcked: 98, ...extra })
const status = (stats: unknown, name = 'gateway') => ({ node: {}, peers: [{ key: 'k', name, remote: { address: '10.251.0.130', port: 7443 }, stats }] })

t.test("the daemon's paths to a peer, from `status` (peers[].stats.paths)", async (t) => {
  const s = status({ rttMs: 10, paths: [path('qel-abcd-l0a', '10.251.0.130'), path('qel-abcd-l1a', '10.251.1.130', { up: false })] })
  const p = daemonPaths(s, 'gateway')!
  t.equal(p.length, 2)
  t.same(p[0], { uplink: 'qel-abcd-l0a', remoteAddress: '10.251.0.130', up: true, rttMs: 12.5, rttMinMs: 10, bytesOut: 1000, bytesIn: 50, packetsOut: null, datagramsLost: 2, datagramsAcked: 98 })
  t.equal(pathsUp(p), 1)
  t.same(daemonPaths({ peers: [{ name: 'gateway', paths: [{ remote: '10.251.2.130:7443', rttMs: 5 }] }] }, 'gateway')?.map((x) => [x.remoteAddress, x.up, x.bytesOut]), [['10.251.2.130', null, null]], 'paths beside stats, remote as a string, missing numbers null')
  t.equal(pathsUp(daemonPaths({ peers: [{ name: 'gateway', paths: [{ rttMs: 5 }, {}] }] }, 'gateway')!), 1, 'no `up` field: a path with an RTT counts as up')
})

t.test("the engine's PathStats as the daemon reports them (alive, packetsOut, no acks)", async (t) => {
  const engine = { uplink: 'qel-abcd-l1a', index: 1, remote: { address: '10.251.1.130', port: 7443 }, alive: false, rttMs: 41, cwnd: 1e5, deliveryRate: 6e6, bytesOut: 9e6, bytesIn: 1e4, packetsOut: 6400, packetsIn: 90, datagramsLost: 32 }
  const [p] = daemonPaths(status({ paths: [engine] }), 'gateway')!
  t.equal(p!.up, false, '`alive` is the up flag')
  t.equal(p!.rttMinMs, null)
  t.equal(pathLoss(null, p!), 0.005, 'lost / sent without acks')
  const [earlier] = daemonPaths(status({ paths: [{ ...engine, packetsOut: 2400, datagramsLost: 12 }] }), 'gateway')!
  t.equal(pathLoss(earlier!, p!), 0.005)
})

t.test("the daemon's reorder and re-send counts, between two readings", async (t) => {
  const before = daemonBond(status({ paths: [], bond: { mode: 'aggregate', reordered: 10, late: 1, dropped: 0, resent: 0 } }), 'gateway')
  const after = daemonBond(status({ paths: [], bond: { mode: 'aggregate', reordered: 510, late: 3, dropped: 2, resent: 40 } }), 'gateway')
  t.same(bondDelta(before, after), { mode: 'aggregate', reordered: 500, late: 2, dropped: 2, resent: 40 })
  t.same(bondDelta(null, after), after)
  t.equal(daemonBond(status({ rttMs: 3 }), 'gateway'), null)
  t.equal(bondDelta(before, null), null)
})

t.test('no per-path stats is null, not an empty bond', async (t) => {
  t.equal(daemonPaths(status({ rttMs: 10, bytesOut: 5 }), 'gateway'), null, 'a daemon that does not bond')
  t.equal(daemonPaths(status(null), 'gateway'), null, 'no stats at all')
  t.equal(daemonPaths(status({ paths: [] }, 'other'), 'gateway'), null, 'another peer')
  t.equal(daemonPaths(null, 'gateway'), null)
  t.same(daemonPaths({ peers: [{ name: null, hello: { name: 'gateway' }, stats: { paths: [] } }] }, 'gateway'), [], 'found by the name the peer said hello with')
})

t.test('a link’s path: by uplink name, else by the gateway address', async (t) => {
  const p = daemonPaths(status({ paths: [path('qel-abcd-l0a', '10.251.0.130'), path('other', '10.251.1.130')] }), 'gateway')!
  t.equal(pathForLink(p, 'qel-abcd-l0a', '10.251.9.130')?.remoteAddress, '10.251.0.130')
  t.equal(pathForLink(p, 'qel-abcd-l1a', '10.251.1.130')?.uplink, 'other')
  t.equal(pathForLink(p, 'qel-abcd-l2a', '10.251.2.130'), null)
})

t.test("a path's loss between two readings", async (t) => {
  const [before] = daemonPaths(status({ paths: [path('a', 'x', { datagramsLost: 10, datagramsAcked: 990 })] }), 'gateway')!
  const [after] = daemonPaths(status({ paths: [path('a', 'x', { datagramsLost: 30, datagramsAcked: 1970 })] }), 'gateway')!
  t.equal(pathLoss(before!, after!), 0.02)
  t.equal(pathLoss(null, after!), 30 / 2000, 'without a reading before: since the path began')
  t.equal(pathLoss(after!, after!), null, 'no traffic in between')
  t.equal(pathLoss(null, null), null)
})

t.test('links that carried the transfer: at least 5% of the bytes', async (t) => {
  t.same(linksCarrying([1000, 1000]), [0, 1])
  t.same(linksCarrying([1000, 40, 0]), [0], '40 of 1040 is under 5%')
  t.same(linksCarrying([0, 0]), [])
})

t.test('verdict: bonded on the daemon’s word or on the counters’; otherwise plainly not', async (t) => {
  const names = ['dsl', 'lte']
  const two = daemonPaths(status({ paths: [path('a', 'x'), path('b', 'y')] }), 'gateway')
  const v1 = bondVerdict({ paths: two, carrying: [0], uplinks: 2, names })
  t.equal(v1.bonded, true, 'failover: two paths, one carries')
  t.match(v1.why, /reports 2 paths.*1 of 2 uplinks \(dsl/)
  const v2 = bondVerdict({ paths: null, carrying: [0, 1], uplinks: 2, names })
  t.equal(v2.bonded, true)
  t.match(v2.why, /crossed 2 of 2 uplinks.*no per-path stats/)
  const v3 = bondVerdict({ paths: null, carrying: [0], uplinks: 2, names })
  t.equal(v3.bonded, false)
  t.match(v3.why, /^not bonded: the daemon reports no per-path stats .* 1 of 2 uplinks \(dsl/)
  t.equal(bondVerdict({ paths: [], carrying: [1], uplinks: 2, names }).bonded, false)
  t.match(bondVerdict({ paths: null, carrying: [], uplinks: 2, names }).why, /no uplink carried traffic/)
  const redial = bondVerdict({ paths: null, carrying: [0], uplinks: 2, names, window: 'before the cut' })
  t.equal(redial.bonded, false, 'a daemon that redials over the other uplink after a cut failed over; it did not bond')
  t.match(redial.why, /1 of 2 uplinks before the cut \(dsl/)
})
