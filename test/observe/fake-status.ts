/**
 * Hand-made status snapshots: N peers, some bonded over several uplinks, with
 * counters that grow as `tick` advances. For the metrics and UI tests and for
 * bench/metrics (a scrape of 100 peers without 100 real ones).
 */
import type { NodeStatus, PeerView } from '../../src/observe/status.js'
import type { GlobalStats, PathStats, PeerStats } from '../../src/engine/types.js'

export const keyOf = (i: number): string => Buffer.alloc(32, i + 1).toString('base64')

export interface FakeOptions {
  readonly peers: number
  /** Every `bondEvery`-th peer is bonded (0: none). */
  readonly bondEvery?: number
  readonly uplinks?: readonly string[]
  /** Counters grow with it: bytes = tick × a per-peer rate. */
  readonly tick?: number
  /** Uplinks that are dead (alive: false). */
  readonly dead?: readonly string[]
  /** Peers (by index) that are down. */
  readonly down?: readonly number[]
  readonly errors?: NodeStatus['config']['errors']
}

const GLOBAL: GlobalStats = {
  garbage: 3, refused: 1, handshakeFailed: 2, halfOpenDropped: 0, noRoute: 5, noPeer: 0, spoofed: 4, tooBig: 0, malformed: 0,
  tunRx: 1000, tunTx: 900, tunTxErrors: 0, udpRx: 2000, udpTx: 1900, udpTxDropped: 0, resetsSent: 0, icmpSent: 0, duplicates: 0,
  connections: 0, tablesVersion: 7, bondRefused: 0, rawRx: 0, rawDropped: 0, rawTx: 0,
}

function path(uplink: string, index: number, tick: number, alive: boolean, weight: number): PathStats {
  return {
    uplink, index, remote: { address: `198.51.100.${index + 1}`, port: 7443 }, alive,
    rttMs: 20 + index * 10, rttMinMs: 18 + index * 10, cwnd: 64_000 * weight, deliveryRate: 1_000_000 * weight,
    bytesOut: tick * 1_000_000 * weight, bytesIn: tick * 500_000 * weight, packetsOut: tick * 800 * weight, packetsIn: tick * 400 * weight,
    datagramsLost: tick * weight, bytesInFlight: 30_000 * weight, queued: 3 * weight, dropped: tick,
    // the first uplink's peer echoes no stamps (an older version): no queue split for it
    ...(index > 0 ? { queueOutMs: 2.5 * index, queueBackMs: 4 * index } : {}),
  }
}

export function fakeStatus(o: FakeOptions): NodeStatus {
  const tick = o.tick ?? 1
  const uplinks = o.uplinks ?? ['dsl', 'lte']
  const peers: PeerView[] = []
  for (let i = 0; i < o.peers; i++) {
    const key = keyOf(i)
    const up = !(o.down ?? []).includes(i)
    const bonded = (o.bondEvery ?? 0) > 0 && i % o.bondEvery! === 0
    const paths = bonded ? uplinks.map((u, j) => path(u, j, tick, up && !(o.dead ?? []).includes(u), j + 1)) : undefined
    const stats: PeerStats = {
      ...(paths ? { paths, bond: { mode: 'aggregate' as const, reordered: tick * 2, late: tick, dropped: 0, resent: tick, lostResent: 2 * tick, moved: 0, classedOut: 0, classedIn: 0, acksOut: 0 } } : {}),
      peer: key, up, rttMs: 25, rttMinMs: 20, rttVarMs: 2, silentMs: 0, cwnd: 100_000, bytesInFlight: 10_000, deliveryRate: 2_000_000, maxDatagram: 1350,
      bytesIn: tick * 1000 * (i + 1), bytesOut: tick * 2000 * (i + 1), packetsIn: tick * (i + 1), packetsOut: tick * 2 * (i + 1),
      datagramsLost: tick, datagramsAcked: tick * 10, drops: { congestion: tick, tooBig: 0, spoofed: i, notUp: 0 },
    }
    peers.push({
      key, name: `peer-${i}`, state: up ? 'up' : 'connecting', since: '2026-12-04T00:00:00.000Z', lastError: up ? null : 'dial failed',
      remote: up ? { address: `203.0.113.${(i % 250) + 1}`, port: 7443 } : null,
      hello: up ? { type: 'hello', v: 1, name: `peer-${i}`, role: 'client', overlay: { ipv4: `100.88.${i >> 8}.${i & 255}`, ipv6: null }, subnets: [] } : null,
      stats: up ? stats : null,
      groups: i % 2 === 0 ? ['staff'] : [],
    })
  }
  return {
    node: { name: 'hq', key: keyOf(250), overlay: { ipv4: '100.88.255.1', ipv6: 'fd00::1' }, tun: 'qe0', tunMtu: 1400 },
    config: { file: '/etc/quicether.yaml', generation: 3, errors: o.errors ?? [], warnings: [], pendingConfirm: null },
    lastApply: { at: '2026-12-04T00:00:00.000Z', ok: true, trigger: 'desired', plan: ['+ engine peer peer-0'], failure: null, rolledBack: false, durationMs: 12 },
    peers,
    routes: { fib: [], learned: [], rejected: [], refusedTotal: 2 },
    engine: { listenPort: 7443, tablesVersion: 7, global: GLOBAL },
    discovery: null,
    traversal: {
      reflexive: [], nat: 'unknown' as never, punching: [], relay: null, counters: { punches: 4 }, refused: {} as never,
      peers: peers.filter((p) => p.state === 'up').map((p, i) => ({ key: p.key, name: p.name, path: i % 3 === 1 ? 'relay' : i % 3 === 2 ? 'lan' : 'direct', via: i % 3 === 1 ? 'relay-1' : null, local: null, remote: '203.0.113.1:7443', nat: 'unknown' })),
    },
    observe: null,
    uptimeS: 60,
  }
}
