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

/** One metric family of the per-scrape part, written straight in the text format. */
interface Family {
  readonly name: string
  readonly help: string
  readonly type: 'gauge' | 'counter'
  readonly rows: string[]
}

/** A label value in the text format: backslash, double quote and newline escaped. */
function esc(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v
}

function num(v: number): string {
  return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'
}

export class Metrics {
  /** What lives across scrapes (apply histogram and counters, the process); the snapshot's families are written per scrape. */
  readonly registry = new Registry()
  readonly #src: MetricsSource
  readonly #meter = new RateMeter()
  readonly #apply
  #lastScrapeMs = 0

  constructor(src: MetricsSource) {
    this.#src = src
    const r = this.registry
    this.#apply = {
      duration: new Histogram({
        name: 'quicether_apply_duration_seconds',
        help: 'Time to apply desired state (kernel, firewall and engine tables), by what started it.',
        labelNames: ['trigger'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [r],
      }),
      errors: new Counter({ name: 'quicether_apply_errors_total', help: 'Applies that failed (a desired apply is rolled back), by what started them.', labelNames: ['trigger'], registers: [r] }),
      driftRepairs: new Counter({ name: 'quicether_drift_repairs_total', help: 'Drift checks that found the kernel changed behind our back and put it back.', registers: [r] }),
      lastSuccess: new Gauge({ name: 'quicether_last_apply_success_timestamp_seconds', help: 'When an apply last succeeded (Unix time).', registers: [r] }),
    }
    collectDefaultMetrics({ register: r })
  }

  /** An apply finished: its duration and outcome; `changed` = it changed something (a drift repair). */
  observeApply(kind: ApplyKind, ok: boolean, durationMs: number, changed: boolean, at = this.#now()): void {
    const a = this.#apply
    a.duration.observe({ trigger: kind }, durationMs / 1000)
    if (!ok) a.errors.inc({ trigger: kind })
    else a.lastSuccess.set(at / 1000)
    if (ok && changed && (kind === 'drift' || kind === 'periodic')) a.driftRepairs.inc()
  }

  /** The text exposition format: the families of one fresh status snapshot, then the registry's. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const t0 = performance.now()
    const own = this.#render(this.#src.snapshot())
    const body = own + (await this.registry.metrics())
    this.#lastScrapeMs = performance.now() - t0
    return { contentType: this.registry.contentType, body }
  }

  #now(): number {
    return this.#src.now?.() ?? Date.now()
  }

  #render(s: NodeStatus): string {
    const families: Family[] = []
    const fam = (name: string, type: Family['type'], help: string): string[] => {
      const f: Family = { name, help, type, rows: [] }
      families.push(f)
      return f.rows
    }
    const build = fam('quicether_build_info', 'gauge', 'Always 1; the version of this node.')
    const generation = fam('quicether_config_generation', 'gauge', 'Generation of the config the node runs (1 at start, +1 per applied change).')
    const configErrors = fam('quicether_config_errors', 'gauge', 'Errors of the last config edit that was not applied (0 when the file on disk runs).')
    const configWarnings = fam('quicether_config_warnings', 'gauge', 'Warnings of the running config (keys this version does not act on, …).')
    const scrapeDuration = fam('quicether_scrape_duration_seconds', 'gauge', 'How long the previous scrape took to build.')
    const peerUp = fam('quicether_peer_up', 'gauge', '1 when the tunnel to the peer is up.')
    const peerPath = fam('quicether_peer_path', 'gauge', '1 for how the tunnel in use goes: direct, lan or relay.')
    const peerRtt = fam('quicether_peer_rtt_seconds', 'gauge', 'Smoothed QUIC round trip to the peer.')
    const peerRx = fam('quicether_peer_received_bytes_total', 'counter', 'Tunnelled (inner) bytes received from the peer.')
    const peerTx = fam('quicether_peer_sent_bytes_total', 'counter', 'Tunnelled (inner) bytes sent to the peer.')
    const peerRxP = fam('quicether_peer_received_packets_total', 'counter', 'Tunnelled packets received from the peer.')
    const peerTxP = fam('quicether_peer_sent_packets_total', 'counter', 'Tunnelled packets sent to the peer.')
    const peerLost = fam('quicether_peer_lost_datagrams_total', 'counter', 'Datagrams to the peer that QUIC declared lost.')
    const peerDrops = fam('quicether_peer_dropped_packets_total', 'counter', 'Packets to or from the peer dropped, by reason.')
    const pathUp = fam('quicether_path_up', 'gauge', '1 while a bonded path (one uplink to the peer) is alive.')
    const pathRate = fam('quicether_path_delivery_rate_bytes_per_second', 'gauge', 'What the path delivered lately, by its own measure from acknowledgements.')
    const pathRtt = fam('quicether_path_rtt_seconds', 'gauge', 'Smoothed round trip of the path (includes the bottleneck queue).')
    const pathRttMin = fam('quicether_path_rtt_min_seconds', 'gauge', 'Lowest round trip seen on the path.')
    const pathCwnd = fam('quicether_path_cwnd_bytes', 'gauge', 'Congestion window of the path.')
    const pathInFlight = fam('quicether_path_in_flight_bytes', 'gauge', 'Bytes sent on the path and not yet acknowledged or lost.')
    const pathQueued = fam('quicether_path_queued_packets', 'gauge', "Packets waiting in the path's queue.")
    const pathQueueOut = fam('quicether_path_queue_out_seconds', 'gauge', 'What our packets wait on the way to the peer, as the peer measures it from our timestamps (absent while it echoes none).')
    const pathQueueBack = fam('quicether_path_queue_back_seconds', 'gauge', 'What the peer\'s packets wait on the way to us beyond the lowest, from its timestamps: our ACKs behind the peer\'s own traffic (absent with the above).')
    const pathShare = fam('quicether_path_share_ratio', 'gauge', "The path's part of the bytes its bond sent since the previous scrape (0..1).")
    const pathTx = fam('quicether_path_sent_bytes_total', 'counter', 'Tunnelled bytes sent on the path.')
    const pathRx = fam('quicether_path_received_bytes_total', 'counter', 'Tunnelled bytes received on the path.')
    const pathLost = fam('quicether_path_lost_datagrams_total', 'counter', 'Datagrams on the path that QUIC declared lost.')
    const pathDropped = fam('quicether_path_queue_dropped_packets_total', 'counter', "Packets dropped from the path's queue (full, or early drop under a standing queue).")
    const bondReordered = fam('quicether_bond_reordered_packets_total', 'counter', 'Packets that arrived ahead of a gap and were held back.')
    const bondLate = fam('quicether_bond_late_packets_total', 'counter', 'Packets that arrived after their gap was given up (delivered anyway).')
    const bondResent = fam('quicether_bond_resent_packets_total', 'counter', 'Packets sent again on another path: their path died, or QUIC declared them lost.')
    const bondDropped = fam('quicether_bond_dropped_packets_total', 'counter', 'Duplicates and reorder-buffer overflow dropped by the receiver.')
    const engineDrops = fam('quicether_engine_dropped_packets_total', 'counter', 'Packets the forwarding plane dropped before any peer, by reason.')
    const handshakes = fam('quicether_handshakes_rejected_total', 'counter', 'QUIC handshakes not completed, by reason.')
    const tunPackets = fam('quicether_tun_packets_total', 'counter', 'Packets read from / written to the TUN device.')
    const members = fam('quicether_discovery_members', 'gauge', 'Members known from discovery records (certified by the network CA).')
    const discoveryRefusals = fam('quicether_discovery_refused_total', 'counter', 'Discovery records and revocation lists refused, by reason.')
    const dhtLookups = fam('quicether_discovery_dht_lookups_total', 'counter', 'DHT lookups made for member records.')
    const traversal = fam('quicether_traversal_events_total', 'counter', 'NAT traversal events (punches, introductions, relays), by kind.')
    const routesRefused = fam('quicether_routes_refused_total', 'counter', 'Route claims from peers refused (spoofing guard, conflicts).')
    const policyEnforced = fam('quicether_policy_enforced', 'gauge', '1 while a policy is enforced (policies.rules or policies.default written).')
    const policyHits = fam('quicether_policy_rule_hits_total', 'counter', 'Per policy rule: flows it admitted (allow) or packets it dropped (deny); rule="default" for the default.')
    const policyDrops = fam('quicether_policy_dropped_packets_total', 'counter', 'Packets the policy dropped, by reason (rule, default, no_flow, fragment, malformed, table_full).')
    const policyFlows = fam('quicether_policy_flows', 'gauge', 'Flows the policy tracks now.')

    build.push(`{version="${esc(this.#src.version)}"} 1`)
    generation.push(` ${s.config.generation}`)
    configErrors.push(` ${s.config.errors.length}`)
    configWarnings.push(` ${s.config.warnings.length}`)
    scrapeDuration.push(` ${num(this.#lastScrapeMs / 1000)}`)

    const rates = this.#meter.sample(s, this.#now())
    const kinds = new Map((s.traversal?.peers ?? []).map((t) => [t.key, t.path]))
    for (const p of s.peers) {
      const pl = `{peer="${esc(peerLabel(p))}"}`
      const peer = pl.slice(1, -1)
      const up = p.state === 'up'
      peerUp.push(`${pl} ${up ? 1 : 0}`)
      if (up) peerPath.push(`{${peer},kind="${kinds.get(p.key) ?? (p.stats?.relayed ? 'relay' : 'direct')}"} 1`)
      const st = p.stats
      if (!st) continue
      peerRtt.push(`${pl} ${num(st.rttMs / 1000)}`)
      peerRx.push(`${pl} ${st.bytesIn}`)
      peerTx.push(`${pl} ${st.bytesOut}`)
      peerRxP.push(`${pl} ${st.packetsIn}`)
      peerTxP.push(`${pl} ${st.packetsOut}`)
      peerLost.push(`${pl} ${st.datagramsLost}`)
      for (const [field, reason] of PEER_DROPS) peerDrops.push(`{${peer},reason="${reason}"} ${st.drops[field]}`)
      const shares = rates.paths.get(p.key)
      for (const path of st.paths ?? []) {
        const l = `{${peer},uplink="${esc(path.uplink)}"}`
        pathUp.push(`${l} ${path.alive ? 1 : 0}`)
        pathRate.push(`${l} ${num(path.deliveryRate)}`)
        pathRtt.push(`${l} ${num(path.rttMs / 1000)}`)
        pathRttMin.push(`${l} ${num(path.rttMinMs / 1000)}`)
        pathCwnd.push(`${l} ${path.cwnd}`)
        pathInFlight.push(`${l} ${path.bytesInFlight}`)
        pathQueued.push(`${l} ${path.queued}`)
        if (path.queueOutMs !== undefined) {
          pathQueueOut.push(`${l} ${num(path.queueOutMs / 1000)}`)
          pathQueueBack.push(`${l} ${num((path.queueBackMs ?? 0) / 1000)}`)
        }
        pathShare.push(`${l} ${num(shares?.get(path.uplink)?.share ?? 0)}`)
        pathTx.push(`${l} ${path.bytesOut}`)
        pathRx.push(`${l} ${path.bytesIn}`)
        pathLost.push(`${l} ${path.datagramsLost}`)
        pathDropped.push(`${l} ${path.dropped}`)
      }
      if (st.bond) {
        bondReordered.push(`${pl} ${st.bond.reordered}`)
        bondLate.push(`${pl} ${st.bond.late}`)
        bondResent.push(`{${peer},cause="path_died"} ${st.bond.resent}`)
        bondResent.push(`{${peer},cause="lost"} ${st.bond.lostResent}`)
        bondDropped.push(`${pl} ${st.bond.dropped}`)
      }
    }
    const gl = s.engine?.global
    if (gl) {
      for (const [field, reason] of ENGINE_DROPS) engineDrops.push(`{reason="${reason}"} ${gl[field]}`)
      handshakes.push(`{reason="key_not_allowed"} ${gl.refused}`, `{reason="failed"} ${gl.handshakeFailed}`, `{reason="half_open_limit"} ${gl.halfOpenDropped}`)
      tunPackets.push(`{direction="rx"} ${gl.tunRx}`, `{direction="tx"} ${gl.tunTx}`)
    }
    const d = s.discovery
    members.push(` ${d?.members.length ?? 0}`)
    for (const [reason, n] of Object.entries(d?.refusals ?? {})) if (n > 0) discoveryRefusals.push(`{reason="${esc(reason)}"} ${n}`)
    dhtLookups.push(` ${d?.dht?.stats.lookups ?? 0}`)
    for (const [event, n] of Object.entries(s.traversal?.counters ?? {})) if (n > 0) traversal.push(`{event="${esc(event)}"} ${n}`)
    routesRefused.push(` ${s.routes.refusedTotal ?? 0}`)
    const pol = s.policy
    policyEnforced.push(` ${pol ? 1 : 0}`)
    if (pol) {
      for (const r of pol.rules) policyHits.push(`{rule="${esc(`${r.number} ${r.name}`)}",action="${r.action}"} ${r.hits}`)
      policyHits.push(`{rule="default",action="${pol.default}"} ${pol.defaultHits}`)
      const d = pol.drops
      for (const [reason, n] of [['rule', d.rule], ['default', d.default], ['no_flow', d.noFlow], ['fragment', d.fragment], ['malformed', d.malformed], ['table_full', d.tableFull]] as const) policyDrops.push(`{reason="${reason}"} ${n}`)
      policyFlows.push(` ${pol.flows}`)
    }

    let out = ''
    for (const f of families) {
      out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`
      for (const r of f.rows) out += f.name + r + '\n'
      out += '\n'
    }
    return out
  }
}

/** A peer's label: its config name, else its short key (bounded: only admitted or connected peers appear). */
export function peerLabel(p: Pick<PeerView, 'name' | 'key'>): string {
  return p.name ?? shortKey(p.key)
}
