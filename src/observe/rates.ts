/**
 * Rates from counters: two status snapshots apart give each tunnel's and each
 * uplink path's bytes per second, and each path's share of what its bond
 * sent. The engine keeps only totals; whoever shows a rate (a scrape, the
 * UI's once-a-second push) keeps its own meter, so their periods never mix.
 */
import type { NodeStatus } from './status.js'

export interface FlowRate {
  /** Tunnelled bytes per second received from / sent to the peer, over the last period. */
  readonly inBps: number
  readonly outBps: number
}

export interface PathRate extends FlowRate {
  /** This path's part of the bond's bytes sent over the last period (0..1; 0 when the bond sent nothing). */
  readonly share: number
}

export interface Rates {
  /** Seconds the rates span (0 for the first sample: every rate is 0). */
  readonly periodS: number
  /** By peer key. */
  readonly peers: ReadonlyMap<string, FlowRate>
  /** By peer key, then uplink name. */
  readonly paths: ReadonlyMap<string, ReadonlyMap<string, PathRate>>
}

interface Totals {
  readonly at: number
  readonly peers: Map<string, { in: number; out: number }>
  readonly paths: Map<string, { in: number; out: number }>
}

export class RateMeter {
  #prev: Totals | null = null

  /** Rates since the previous call (`now` in ms). Counters that went back (a new engine) count from zero. */
  sample(status: Pick<NodeStatus, 'peers'>, now: number): Rates {
    const cur: Totals = { at: now, peers: new Map(), paths: new Map() }
    for (const p of status.peers) {
      if (!p.stats) continue
      cur.peers.set(p.key, { in: p.stats.bytesIn, out: p.stats.bytesOut })
      for (const path of p.stats.paths ?? []) cur.paths.set(`${p.key}\n${path.uplink}`, { in: path.bytesIn, out: path.bytesOut })
    }
    const prev = this.#prev
    this.#prev = cur
    const periodS = prev ? Math.max(0, (now - prev.at) / 1000) : 0
    const rate = (now: number, before: number | undefined) => (periodS > 0 && before !== undefined && now >= before ? (now - before) / periodS : 0)
    const peers = new Map<string, FlowRate>()
    for (const [key, t] of cur.peers) {
      const b = prev?.peers.get(key)
      peers.set(key, { inBps: rate(t.in, b?.in), outBps: rate(t.out, b?.out) })
    }
    const paths = new Map<string, Map<string, PathRate>>()
    for (const p of status.peers) {
      const list = p.stats?.paths ?? []
      if (list.length === 0) continue
      const rows = list.map((path) => {
        const id = `${p.key}\n${path.uplink}`
        const t = cur.paths.get(id)!
        const b = prev?.paths.get(id)
        return { uplink: path.uplink, inBps: rate(t.in, b?.in), outBps: rate(t.out, b?.out) }
      })
      const sum = rows.reduce((a, r) => a + r.outBps, 0)
      paths.set(p.key, new Map(rows.map((r) => [r.uplink, { inBps: r.inBps, outBps: r.outBps, share: sum > 0 ? r.outBps / sum : 0 }])))
    }
    return { periodS, peers, paths }
  }
}
