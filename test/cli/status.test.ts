import t from 'tap'
import { renderStatus } from '../../src/cli/control.js'

const node = { name: 'desk', key: 'k', overlay: { ipv4: '10.77.0.1', ipv6: 'fd00::1' }, tun: 'qe0', tunMtu: 1420 }
const config = { file: '/etc/quicether.yaml', generation: 3, errors: [], pendingConfirm: null }
const peer = (stats: Record<string, unknown> | null) => ({ key: 'gwkey', name: 'gateway', remote: { address: '192.0.2.1', port: 7443 }, since: '2026-11-26T10:00:00Z', hello: null, stats })
const status = (stats: Record<string, unknown> | null) => ({ node, config, lastApply: null, uptimeS: 5, peers: [peer(stats)], routes: { fib: [] } })

t.test('a plain peer: one line, no paths', async (t) => {
  const out = renderStatus(status({ rttMs: 12.345, bytesIn: 10, bytesOut: 20 }))
  t.match(out, /gateway .* rtt 12\.35 ms {2}in 10 B {2}out 20 B/)
  t.notMatch(out, /path|bond/)
})

t.test('a bonded peer: a line per path (queue, drops, losses) and the reorder counters', async (t) => {
  const paths = [
    { uplink: 'eth0', alive: true, remote: { address: '192.0.2.1', port: 7443 }, rttMs: 25.04, rttMinMs: 19.9, deliveryRate: 6_250_000, bytesInFlight: 150_400, queued: 12, dropped: 7, datagramsLost: 3 },
    { uplink: 'wwan0', alive: false, remote: { address: '198.51.100.1', port: 7443 }, rttMs: 80, rttMinMs: 0, deliveryRate: 0, bytesInFlight: 0, queued: 0, dropped: 0, datagramsLost: 0 },
    { uplink: 'lte0', alive: true, remote: { address: '203.0.113.9', port: 7443 }, rttMs: 71.2, rttMinMs: 60, queueOutMs: 3.21, queueBackMs: 7.04, deliveryRate: 1_000_000, bytesInFlight: 0, queued: 0, dropped: 0, datagramsLost: 0 },
  ]
  const bond = { mode: 'aggregate', reordered: 100, late: 2, dropped: 1, resent: 5, lostResent: 9, moved: 12, classedOut: 40, classedIn: 41, acksOut: 7 }
  const lines = renderStatus(status({ rttMs: 25, bytesIn: 1, bytesOut: 2, paths, bond })).split('\n')
  const eth0 = lines.find((l) => l.includes('path eth0'))
  const wwan0 = lines.find((l) => l.includes('path wwan0'))
  t.ok(eth0, 'a line for eth0')
  t.match(eth0!, /alive {2}→ 192\.0\.2\.1:7443 {2}rtt 25\.0 ms \(min 19\.9\) {2}50\.0 Mbit\/s {2}in flight 150 kB {2}queued 12 {2}dropped 7 {2}lost 3/)
  t.match(wwan0!, /DEAD .*rtt 80\.0 ms {2}0\.0 Mbit\/s/, 'a dead path says so; an unknown lowest RTT is left out')
  t.match(lines.find((l) => l.includes('path lte0')) ?? '', /rtt 71\.2 ms \(min 60\.0; queue out 3\.2, back 7\.0\)/, "each direction's queue, where the peer echoes our stamps")
  t.match(lines.find((l) => l.includes('bond ')) ?? '', /bond aggregate: reordered 100 {2}late 2 {2}dropped 1 {2}re-sent 5 \(dead path\) \+ 9 \(lost\) {2}moved 12 {2}classed out\/in 40\/41 {2}ACKs out 7/)
})
