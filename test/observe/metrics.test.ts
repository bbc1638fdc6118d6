/**
 * The Prometheus exposition: one scrape of a status snapshot exports each
 * peer, each bonded path, the bond's counters, the reconciler and the engine
 * under Prometheus naming; a peer that leaves the snapshot leaves the output;
 * a path's share is its part of the bond's bytes since the previous scrape.
 */
import t from 'tap'
import { Metrics } from '../../src/observe/metrics.js'
import type { NodeStatus } from '../../src/observe/status.js'
import { fakeStatus } from './fake-status.js'

/** `name{labels} value` lines, as a map (the HELP/TYPE lines aside). */
function samples(body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

function types(body: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const m of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!)
  return out
}

function source(get: () => NodeStatus, now = { t: 1_000_000 }) {
  return { m: new Metrics({ snapshot: get, now: () => now.t, version: '9.9.9' }), now }
}

t.test('peers, paths and the bond under Prometheus names, from one snapshot', async (t) => {
  let calls = 0
  const st = fakeStatus({ peers: 3, bondEvery: 2, uplinks: ['dsl', 'lte'], tick: 5, down: [1] })
  const { m } = source(() => (calls++, st))
  const { body, contentType } = await m.scrape()
  t.equal(calls, 1, 'one status snapshot per scrape')
  t.match(contentType, /^text\/plain; version=0\.0\.4/)
  const s = samples(body)
  t.equal(s.get('quicether_build_info{version="9.9.9"}'), 1)
  t.equal(s.get('quicether_config_generation'), 3)
  t.equal(s.get('quicether_peer_up{peer="peer-0"}'), 1)
  t.equal(s.get('quicether_peer_up{peer="peer-1"}'), 0, 'a peer that is down is exported as 0')
  t.equal(s.get('quicether_peer_path{peer="peer-0",kind="direct"}'), 1)
  t.equal(s.get('quicether_peer_path{peer="peer-2",kind="relay"}'), 1, "the path kind traversal reports")
  t.equal(s.get('quicether_peer_rtt_seconds{peer="peer-0"}'), 0.025, 'RTT in seconds')
  t.equal(s.get('quicether_peer_sent_bytes_total{peer="peer-2"}'), 5 * 2000 * 3)
  t.equal(s.get('quicether_peer_received_bytes_total{peer="peer-2"}'), 5 * 1000 * 3)
  t.equal(s.get('quicether_peer_dropped_packets_total{peer="peer-2",reason="spoofed"}'), 2)
  t.equal(s.get('quicether_peer_dropped_packets_total{peer="peer-0",reason="congestion"}'), 5)
  t.equal(s.get('quicether_path_up{peer="peer-0",uplink="lte"}'), 1)
  t.equal(s.get('quicether_path_delivery_rate_bytes_per_second{peer="peer-0",uplink="lte"}'), 2_000_000)
  t.equal(s.get('quicether_path_rtt_seconds{peer="peer-0",uplink="lte"}'), 0.03)
  t.equal(s.get('quicether_path_cwnd_bytes{peer="peer-0",uplink="dsl"}'), 64_000)
  t.equal(s.get('quicether_path_queued_packets{peer="peer-0",uplink="lte"}'), 6)
  t.equal(s.get('quicether_path_in_flight_bytes{peer="peer-0",uplink="lte"}'), 60_000)
  t.equal(s.get('quicether_path_queue_out_seconds{peer="peer-0",uplink="lte"}'), 0.0025, "each direction's queue, in seconds")
  t.equal(s.get('quicether_path_queue_back_seconds{peer="peer-0",uplink="lte"}'), 0.004)
  t.notOk(s.has('quicether_path_queue_out_seconds{peer="peer-0",uplink="dsl"}'), 'absent for a path whose peer echoes no stamps')
  t.equal(s.get('quicether_path_lost_datagrams_total{peer="peer-0",uplink="lte"}'), 10)
  t.equal(s.get('quicether_bond_reordered_packets_total{peer="peer-0"}'), 10)
  t.equal(s.get('quicether_bond_resent_packets_total{peer="peer-0",cause="lost"}'), 10)
  t.equal(s.get('quicether_path_queue_dropped_packets_total{peer="peer-2",uplink="dsl"}'), 5)
  t.equal(s.get('quicether_engine_dropped_packets_total{reason="no_route"}'), 5)
  t.equal(s.get('quicether_handshakes_rejected_total{reason="key_not_allowed"}'), 1)
  t.equal(s.get('quicether_routes_refused_total'), 2)
  t.equal(s.get('quicether_traversal_events_total{event="punches"}'), 4)
  t.ok([...s.keys()].some((k) => k.startsWith('process_cpu_seconds_total')), 'the process')
  t.notOk([...s.keys()].some((k) => k.includes('peer="peer-1"') && k.startsWith('quicether_peer_sent')), 'no counters for a peer with no engine counters')

  const ty = types(body)
  for (const [name, type] of ty) {
    if (!name.startsWith('quicether_')) continue
    if (type === 'counter') t.ok(name.endsWith('_total'), `${name}: a counter ends in _total`)
    else t.notOk(name.endsWith('_total'), `${name}: only counters end in _total`)
  }
})

t.test("a path's share is its part of the bond's bytes since the previous scrape; a peer that left leaves the output", async (t) => {
  let st = fakeStatus({ peers: 3, bondEvery: 2, tick: 1 })
  const { m, now } = source(() => st)
  let s = samples((await m.scrape()).body)
  t.equal(s.get('quicether_path_share_ratio{peer="peer-0",uplink="dsl"}'), 0, 'nothing to compare on the first scrape')
  st = fakeStatus({ peers: 2, bondEvery: 2, tick: 3 })
  now.t += 1000
  s = samples((await m.scrape()).body)
  // dsl sends 1 MB per tick, lte 2 MB: a third and two thirds.
  t.equal(Number(s.get('quicether_path_share_ratio{peer="peer-0",uplink="dsl"}')!.toFixed(4)), 0.3333)
  t.equal(Number(s.get('quicether_path_share_ratio{peer="peer-0",uplink="lte"}')!.toFixed(4)), 0.6667)
  t.notOk([...s.keys()].some((k) => k.includes('peer="peer-2"')), 'peer-2 is gone from the snapshot and from the output')
})

t.test('applies: a duration histogram by trigger, errors, drift repairs, the last success', async (t) => {
  const { m } = source(() => fakeStatus({ peers: 0 }))
  m.observeApply('desired', true, 12, true, 1_700_000_000_000)
  m.observeApply('desired', false, 40, true, 1_700_000_001_000)
  m.observeApply('drift', true, 5, true, 1_700_000_002_000)
  m.observeApply('periodic', true, 1, false, 1_700_000_003_000)
  const s = samples((await m.scrape()).body)
  t.equal(s.get('quicether_apply_duration_seconds_count{trigger="desired"}'), 2)
  t.equal(s.get('quicether_apply_duration_seconds_bucket{le="0.025",trigger="desired"}'), 1)
  t.equal(s.get('quicether_apply_errors_total{trigger="desired"}'), 1)
  t.equal(s.get('quicether_drift_repairs_total'), 1, 'a periodic check that changed nothing is no repair')
  t.equal(s.get('quicether_last_apply_success_timestamp_seconds'), 1_700_000_003)
})
