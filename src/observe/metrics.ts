/**
 * Prometheus metrics of a running node, from the typed status snapshot.
 *
 * One scrape reads one status snapshot (one engine stats snapshot) and fills
 * every family from it: nothing is counted in the data path, and a peer or a
 * path that went away leaves the output with the next scrape. Counters mirror
 * the engine's own totals (they restart from zero when the engine is rebuilt,
 * which Prometheus's rate() reads as a counter reset). Label values are
 * bounded by the config: peer names (the short key for a peer the config does
 * not name), uplink names, and fixed reason lists.
 *
 * Apply timings come from the reconciler as applies finish (`observeApply`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { NodeStatus, PeerView } from './status.js'
import { RateMeter } from './rates.js'
import { shortKey } from '../state/engine.js'

export type ApplyKind = 'desired' | 'drift' | 'periodic' | 'cleanup'

export interface MetricsSource {
  /** One status snapshot; called once per scrape. */
  readonly snapshot: () => NodeStatus
  readonly now?: () => number
  readonly version: string
}

const PEER_DROPS = [
  ['congestion', 'congestion'],
  ['tooBig', 'too_big'],
  ['spoofed', 'spoofed'],
  ['notUp', 'not_up'],
] as const

const ENGINE_DROPS = [
  ['garbage', 'garbage'],
  ['noRoute', 'no_route'],
  ['noPeer', 'no_peer'],
  ['spoofed', 'spoofed'],
  ['tooBig', 'too_big'],
  ['malformed', 'malformed'],
  ['udpTxDropped', 'udp_send_failed'],
  ['tunTxErrors', 'tun_write_failed'],
] as const

export class Metrics {
  readonly registry = new Registry()
  readonly #src: MetricsSource
  readonly #meter = new RateMeter()
  readonly #m
  #lastScrapeMs = 0

  constructor(src: MetricsSource) {
    this.#src = src
    const r = this.registry
    const g = (name: string, help: string, labelNames: readonly string[] = []) => new Gauge({ name, help, labelNames, registers: [r] })
    const c = (name: string, help: string, labelNames: readonly string[] = []) => new Counter({ name, help, labelNames, registers: [r] })
    this.#m = {
      build: g('quicether_build_info', 'Always 1; the version of this node.', ['version']),
      generation: g('quicether_config_generation', 'Generation of the config the node runs (1 at start, +1 per applied change).'),
      configErrors: g('quicether_config_errors', 'Errors of the last config edit that was not applied (0 when the file on disk runs).'),
      configWarnings: g('quicether_config_warnings', 'Warnings of the running config (keys this version does not act on, …).'),
      applyDuration: new Histogram({
        name: 'quicether_apply_duration_seconds',
        help: 'Time to apply desired state (kernel, firewall and engine tables), by what started it.',
        labelNames: ['trigger'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [r],
      }),
      applyErrors: c('quicether_apply_errors_total', 'Applies that failed (a desired apply is rolled back), by what started them.', ['trigger']),
      driftRepairs: c('quicether_drift_repairs_total', 'Drift checks that found the kernel changed behind our back and put it back.'),
      lastSuccess: g('quicether_last_apply_success_timestamp_seconds', 'When an apply last succeeded (Unix time).'),
      peerUp: g('quicether_peer_up', '1 when the tunnel to the peer is up.', ['peer']),
      peerPath: g('quicether_peer_path', '1 for how the tunnel in use goes: direct, lan or relay.', ['peer', 'kind']),
      peerRtt: g('quicether_peer_rtt_seconds', 'Smoothed QUIC round trip to the peer.', ['peer']),
      peerRx: c('quicether_peer_received_bytes_total', 'Tunnelled (inner) bytes received from the peer.', ['peer']),
      peerTx: c('quicether_peer_sent_bytes_total', 'Tunnelled (inner) bytes sent to the peer.', ['peer']),
      peerRxPackets: c('quicether_peer_received_packets_total', 'Tunnelled packets received from the peer.', ['peer']),
      peerTxPackets: c('quicether_peer_sent_packets_total', 'Tunnelled packets sent to the peer.', ['peer']),
      peerLost: c('quicether_peer_lost_datagrams_total', 'Datagrams to the peer that QUIC declared lost.', ['peer']),
      peerDrops: c('quicether_peer_dropped_packets_total', 'Packets to or from the peer dropped, by reason.', ['peer', 'reason']),
      pathUp: g('quicether_path_up', '1 while a bonded path (one uplink to the peer) is alive.', ['peer', 'uplink']),
      pathRate: g('quicether_path_delivery_rate_bytes_per_second', 'What the path delivered lately, by its own measure from acknowledgements.', ['peer', 'uplink']),
      pathRtt: g('quicether_path_rtt_seconds', 'Smoothed round trip of the path (includes the bottleneck queue).', ['peer', 'uplink']),
      pathRttMin: g('quicether_path_rtt_min_seconds', 'Lowest round trip seen on the path.', ['peer', 'uplink']),
      pathCwnd: g('quicether_path_cwnd_bytes', 'Congestion window of the path.', ['peer', 'uplink']),
      pathInFlight: g('quicether_path_in_flight_bytes', 'Bytes sent on the path and not yet acknowledged or lost.', ['peer', 'uplink']),
      pathQueued: g('quicether_path_queued_packets', 'Packets waiting in the path\'s queue.', ['peer', 'uplink']),
      pathShare: g('quicether_path_share_ratio', 'The path\'s part of the bytes its bond sent since the previous scrape (0..1).', ['peer', 'uplink']),
      pathTx: c('quicether_path_sent_bytes_total', 'Tunnelled bytes sent on the path.', ['peer', 'uplink']),
      pathRx: c('quicether_path_received_bytes_total', 'Tunnelled bytes received on the path.', ['peer', 'uplink']),
      pathLost: c('quicether_path_lost_datagrams_total', 'Datagrams on the path that QUIC declared lost.', ['peer', 'uplink']),
      pathDropped: c('quicether_path_queue_dropped_packets_total', 'Packets dropped from the path\'s queue (full, or early drop under a standing queue).', ['peer', 'uplink']),
      bondReordered: c('quicether_bond_reordered_packets_total', 'Packets that arrived ahead of a gap and were held back.', ['peer']),
      bondLate: c('quicether_bond_late_packets_total', 'Packets that arrived after their gap was given up (delivered anyway).', ['peer']),
      bondResent: c('quicether_bond_resent_packets_total', 'Packets sent again on another path: their path died, or QUIC declared them lost.', ['peer', 'cause']),
      bondDropped: c('quicether_bond_dropped_packets_total', 'Duplicates and reorder-buffer overflow dropped by the receiver.', ['peer']),
      engineDrops: c('quicether_engine_dropped_packets_total', 'Packets the forwarding plane dropped before any peer, by reason.', ['reason']),
      handshakes: c('quicether_handshakes_rejected_total', 'QUIC handshakes not completed, by reason.', ['reason']),
      tunPackets: c('quicether_tun_packets_total', 'Packets read from / written to the TUN device.', ['direction']),
      members: g('quicether_discovery_members', 'Members known from discovery records (certified by the network CA).'),
      discoveryRefusals: c('quicether_discovery_refused_total', 'Discovery records and revocation lists refused, by reason.', ['reason']),
      dhtLookups: c('quicether_discovery_dht_lookups_total', 'DHT lookups made for member records.'),
      traversal: c('quicether_traversal_events_total', 'NAT traversal events (punches, introductions, relays), by kind.', ['event']),
      routesRefused: c('quicether_routes_refused_total', 'Route claims from peers refused (spoofing guard, conflicts).'),
      scrapeDuration: g('quicether_scrape_duration_seconds', 'How long the previous scrape took to build.'),
    }
    collectDefaultMetrics({ register: r })
  }

  /** An apply finished: its duration and outcome; `changed` = it changed something (a drift repair). */
  observeApply(kind: ApplyKind, ok: boolean, durationMs: number, changed: boolean, at = this.#now()): void {
    const m = this.#m
    m.applyDuration.observe({ trigger: kind }, durationMs / 1000)
    if (!ok) m.applyErrors.inc({ trigger: kind })
    else m.lastSuccess.set(at / 1000)
    if (ok && changed && (kind === 'drift' || kind === 'periodic')) m.driftRepairs.inc()
  }

  /** The text exposition format, built from one fresh status snapshot. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const t0 = performance.now()
    this.#fill(this.#src.snapshot())
    const body = await this.registry.metrics()
    this.#lastScrapeMs = performance.now() - t0
    return { contentType: this.registry.contentType, body }
  }

  get lastScrapeMs(): number {
    return this.#lastScrapeMs
  }

  #now(): number {
    return this.#src.now?.() ?? Date.now()
  }

  #fill(s: NodeStatus): void {
    const m = this.#m
    // Per-peer and per-path families are rebuilt: a peer gone from the snapshot leaves the output.
    for (const f of [m.peerUp, m.peerPath, m.peerRtt, m.peerRx, m.peerTx, m.peerRxPackets, m.peerTxPackets, m.peerLost, m.peerDrops,
      m.pathUp, m.pathRate, m.pathRtt, m.pathRttMin, m.pathCwnd, m.pathInFlight, m.pathQueued, m.pathShare, m.pathTx, m.pathRx, m.pathLost, m.pathDropped,
      m.bondReordered, m.bondLate, m.bondResent, m.bondDropped, m.engineDrops, m.handshakes, m.tunPackets, m.discoveryRefusals, m.dhtLookups, m.traversal, m.routesRefused]) f.reset()
    m.build.set({ version: this.#src.version }, 1)
    m.generation.set(s.config.generation)
    m.configErrors.set(s.config.errors.length)
    m.configWarnings.set(s.config.warnings.length)
    m.scrapeDuration.set(this.#lastScrapeMs / 1000)

    const rates = this.#meter.sample(s, this.#now())
    const kinds = new Map((s.traversal?.peers ?? []).map((t) => [t.key, t.path]))
    for (const p of s.peers) {
      const peer = peerLabel(p)
      const up = p.state === 'up'
      m.peerUp.set({ peer }, up ? 1 : 0)
      if (up) m.peerPath.set({ peer, kind: kinds.get(p.key) ?? (p.stats?.relayed ? 'relay' : 'direct') }, 1)
      const st = p.stats
      if (!st) continue
      m.peerRtt.set({ peer }, st.rttMs / 1000)
      m.peerRx.inc({ peer }, st.bytesIn)
      m.peerTx.inc({ peer }, st.bytesOut)
      m.peerRxPackets.inc({ peer }, st.packetsIn)
      m.peerTxPackets.inc({ peer }, st.packetsOut)
      m.peerLost.inc({ peer }, st.datagramsLost)
      for (const [field, reason] of PEER_DROPS) m.peerDrops.inc({ peer, reason }, st.drops[field])
      const shares = rates.paths.get(p.key)
      for (const path of st.paths ?? []) {
        const l = { peer, uplink: path.uplink }
        m.pathUp.set(l, path.alive ? 1 : 0)
        m.pathRate.set(l, path.deliveryRate)
        m.pathRtt.set(l, path.rttMs / 1000)
        m.pathRttMin.set(l, path.rttMinMs / 1000)
        m.pathCwnd.set(l, path.cwnd)
        m.pathInFlight.set(l, path.bytesInFlight)
        m.pathQueued.set(l, path.queued)
        m.pathShare.set(l, shares?.get(path.uplink)?.share ?? 0)
        m.pathTx.inc(l, path.bytesOut)
        m.pathRx.inc(l, path.bytesIn)
        m.pathLost.inc(l, path.datagramsLost)
        m.pathDropped.inc(l, path.dropped)
      }
      if (st.bond) {
        m.bondReordered.inc({ peer }, st.bond.reordered)
        m.bondLate.inc({ peer }, st.bond.late)
        m.bondResent.inc({ peer, cause: 'path_died' }, st.bond.resent)
        m.bondResent.inc({ peer, cause: 'lost' }, st.bond.lostResent)
        m.bondDropped.inc({ peer }, st.bond.dropped)
      }
    }
    const gl = s.engine?.global
    if (gl) {
      for (const [field, reason] of ENGINE_DROPS) m.engineDrops.inc({ reason }, gl[field])
      m.handshakes.inc({ reason: 'key_not_allowed' }, gl.refused)
      m.handshakes.inc({ reason: 'failed' }, gl.handshakeFailed)
      m.handshakes.inc({ reason: 'half_open_limit' }, gl.halfOpenDropped)
      m.tunPackets.inc({ direction: 'rx' }, gl.tunRx)
      m.tunPackets.inc({ direction: 'tx' }, gl.tunTx)
    }
    const d = s.discovery
    m.members.set(d?.members.length ?? 0)
    for (const [reason, n] of Object.entries(d?.refusals ?? {})) if (n > 0) m.discoveryRefusals.inc({ reason }, n)
    m.dhtLookups.inc(d?.dht?.stats.lookups ?? 0)
    for (const [event, n] of Object.entries(s.traversal?.counters ?? {})) if (n > 0) m.traversal.inc({ event }, n)
    m.routesRefused.inc(s.routes.refusedTotal ?? 0)
  }
}

/** A peer's label: its config name, else its short key (bounded: only admitted or connected peers appear). */
export function peerLabel(p: Pick<PeerView, 'name' | 'key'>): string {
  return p.name ?? shortKey(p.key)
}
