/**
 * Whether the daemon bonds, judged from what it reports and from what the
 * links carried (pure). Nothing here assumes bonding works: a daemon that
 * reports no paths and sends everything over one uplink is "not bonded",
 * and the figures say so.
 *
 * What the lab reads from the daemon: `quicether status --json` (the control
 * socket's `status`), the gateway's `peers[]` entry, `stats.paths` (the
 * engine's `PathStats`, src/engine/types.ts) — one object per path:
 *
 *   { uplink: "qel-3f2a-l0a",                      // the uplink's interface name
 *     remote: { address: "10.251.0.130", port: 7443 },
 *     alive: true,                                 // (or `up`)
 *     rttMs,                                       // smoothed RTT, ms (rttMinMs if given)
 *     bytesOut, bytesIn, packetsOut,               // tunnelled traffic on this path
 *     datagramsLost (, datagramsAcked) }           // the path's loss rate
 *
 * and `stats.bond` ({ mode, reordered, late, dropped, resent }: the receive
 * side's reorder buffer and failover re-sends). Missing numbers read as
 * null; paths may also sit at `peers[].paths`.
 */

export interface DaemonPath {
  readonly uplink: string | null
  readonly remoteAddress: string | null
  readonly up: boolean | null
  readonly rttMs: number | null
  readonly rttMinMs: number | null
  readonly bytesOut: number | null
  readonly bytesIn: number | null
  readonly packetsOut: number | null
  readonly datagramsLost: number | null
  readonly datagramsAcked: number | null
}

type Raw = Record<string, unknown>

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

function obj(v: unknown): Raw | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Raw) : null
}

/** The `peers[]` entry of `status` for the peer named `peerName` (by config name, or the name it said hello with). */
function peerEntry(status: unknown, peerName: string): Raw | null {
  const peers = obj(status)?.['peers']
  if (!Array.isArray(peers)) return null
  return peers.map(obj).find((p) => p !== null && (p['name'] === peerName || obj(p['hello'])?.['name'] === peerName)) ?? null
}

/** The per-path stats the daemon reports for peer `peerName`; null when it reports none (no bonding support). */
export function daemonPaths(status: unknown, peerName: string): DaemonPath[] | null {
  const peer = peerEntry(status, peerName)
  if (!peer) return null
  const list = obj(peer['stats'])?.['paths'] ?? peer['paths']
  if (!Array.isArray(list)) return null
  return list.map(obj).filter((p): p is Raw => p !== null).map((p) => {
    const remote = p['remote']
    const remoteAddress = typeof remote === 'string' ? remote.replace(/:[0-9]+$/, '') : typeof obj(remote)?.['address'] === 'string' ? (obj(remote)!['address'] as string) : null
    return {
      uplink: typeof p['uplink'] === 'string' ? p['uplink'] : null,
      remoteAddress,
      up: typeof p['up'] === 'boolean' ? p['up'] : typeof p['alive'] === 'boolean' ? p['alive'] : null,
      rttMs: num(p['rttMs']),
      rttMinMs: num(p['rttMinMs']),
      bytesOut: num(p['bytesOut']),
      bytesIn: num(p['bytesIn']),
      packetsOut: num(p['packetsOut']),
      datagramsLost: num(p['datagramsLost']),
      datagramsAcked: num(p['datagramsAcked']),
    }
  })
}

/** The daemon's path for a link: by uplink interface name (null: by address only, as on the accepting side), else by the far end's address on the link. */
export function pathForLink(paths: readonly DaemonPath[], ifname: string | null, remoteAddr: string): DaemonPath | null {
  return (ifname === null ? undefined : paths.find((p) => p.uplink === ifname)) ?? paths.find((p) => p.remoteAddress === remoteAddr) ?? null
}

/** Paths the daemon counts as up (a path without an `up` field counts when it reports an RTT). */
export function pathsUp(paths: readonly DaemonPath[]): number {
  return paths.filter((p) => p.up ?? p.rttMs !== null).length
}

/**
 * Loss rate of a path between two readings: lost / (lost + acked) datagrams,
 * or lost / sent when the daemon counts no acks; null without the counters
 * or traffic.
 */
export function pathLoss(before: DaemonPath | null, after: DaemonPath | null): number | null {
  if (!after || after.datagramsLost === null) return null
  const lost = after.datagramsLost - (before?.datagramsLost ?? 0)
  if (after.datagramsAcked !== null) {
    const acked = after.datagramsAcked - (before?.datagramsAcked ?? 0)
    return lost + acked > 0 ? lost / (lost + acked) : null
  }
  if (after.packetsOut === null) return null
  const sent = after.packetsOut - (before?.packetsOut ?? 0)
  return sent > 0 ? Math.min(1, lost / sent) : null
}

/** The receive side's reordering and the failover re-sends, as the daemon counts them for a bonded peer. */
export interface DaemonBond {
  readonly mode: string | null
  readonly reordered: number
  readonly late: number
  readonly dropped: number
  readonly resent: number
}

/** `stats.bond` of peer `peerName`; null when the daemon reports none. */
export function daemonBond(status: unknown, peerName: string): DaemonBond | null {
  const b = obj(obj(peerEntry(status, peerName)?.['stats'])?.['bond'])
  if (!b) return null
  return { mode: typeof b['mode'] === 'string' ? b['mode'] : null, reordered: num(b['reordered']) ?? 0, late: num(b['late']) ?? 0, dropped: num(b['dropped']) ?? 0, resent: num(b['resent']) ?? 0 }
}

/** Counts between two readings (a reading missing before counts from zero). */
export function bondDelta(before: DaemonBond | null, after: DaemonBond | null): DaemonBond | null {
  if (!after) return null
  const d = (k: 'reordered' | 'late' | 'dropped' | 'resent'): number => after[k] - (before?.[k] ?? 0)
  return { mode: after.mode, reordered: d('reordered'), late: d('late'), dropped: d('dropped'), resent: d('resent') }
}

/** A link "carried" the transfer when it sent at least this share of all bytes the uplinks sent. */
export const CARRY_SHARE = 0.05

/** 0-based indices of the links that carried the transfer, from the bytes each sent. */
export function linksCarrying(txBytes: readonly number[], share = CARRY_SHARE): number[] {
  const total = txBytes.reduce((s, b) => s + Math.max(0, b), 0)
  if (total <= 0) return []
  return txBytes.flatMap((b, i) => (b / total >= share ? [i] : []))
}

export interface BondVerdict {
  readonly bonded: boolean
  /** One sentence for people, naming the evidence. */
  readonly why: string
}

/**
 * Bonded when the daemon reports two or more paths to the gateway, or when
 * two or more uplinks carried the transfer at once (the interface counters
 * do not lie, even when the stats are missing). With a cut, the counters'
 * window ends at the cut: a daemon that redials over another uplink after
 * losing its one path has failed over, not bonded.
 */
export function bondVerdict(o: {
  paths: readonly DaemonPath[] | null
  carrying: readonly number[]
  uplinks: number
  names: readonly string[]
  /** The counters' window when it is not the whole transfer ("before the cut"). */
  window?: string
}): BondVerdict {
  const used = o.carrying.map((i) => o.names[i] ?? `uplink${i + 1}`)
  const when = o.window ? ` ${o.window}` : ''
  const usedText = used.length === 0 ? `no uplink carried traffic${when}` : `traffic crossed ${used.length} of ${o.uplinks} uplinks${when} (${used.join(', ')}; interface counters)`
  const n = o.paths === null ? null : o.paths.length
  if (n !== null && n >= 2) return { bonded: true, why: `the daemon reports ${n} paths to the gateway (${pathsUp(o.paths!)} up); ${usedText}` }
  if (o.carrying.length >= 2) return { bonded: true, why: `${usedText}; the daemon reports ${n === null ? 'no per-path stats' : `${n} path(s)`}` }
  const stats = n === null ? 'reports no per-path stats (status peers[].stats.paths)' : `reports ${n} path(s)`
  return { bonded: false, why: `not bonded: the daemon ${stats} and ${usedText}` }
}
