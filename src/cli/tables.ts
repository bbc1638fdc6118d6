/**
 * The human tables of `quicether peers` and `quicether paths`: pure functions
 * of a `status` snapshot (and the time, for ages). Each table is rows of
 * plain values first (what `--json` prints), then text with aligned columns.
 */
import type { PathStats } from '../engine/types.js'
import type { NodeStatus } from '../observe/status.js'

/** One peer as `quicether peers` shows it. Numbers are null where the engine has none (the peer is down). */
export interface PeerRow {
  readonly name: string
  readonly key: string
  readonly state: string
  /** How the tunnel goes (status.traversal): direct, lan, relay; null when traversal does not know the peer. */
  readonly path: 'direct' | 'lan' | 'relay' | null
  /** The relay's name, when relayed. */
  readonly via: string | null
  readonly remote: string | null
  readonly rttMs: number | null
  readonly bytesIn: number | null
  readonly bytesOut: number | null
  readonly since: string
}

/** One path of a bonded peer as `quicether paths` shows it. */
export interface PathRow {
  readonly peer: string
  readonly uplink: string
  readonly alive: boolean
  readonly remote: string
  readonly rttMs: number
  /** Bytes per second (the engine's delivery rate). */
  readonly deliveryRate: number
  readonly cwnd: number
  readonly bytesInFlight: number
  readonly queued: number
  /** This path's part of the peer's bytes sent over all its paths, 0..1; null before anything was sent. */
  readonly share: number | null
}

function peerName(p: NodeStatus['peers'][number]): string {
  return p.name ?? p.hello?.name ?? p.key.slice(0, 8)
}

export function peerRows(st: NodeStatus): PeerRow[] {
  const traversal = new Map((st.traversal?.peers ?? []).map((t) => [t.key, t]))
  return st.peers.map((p) => {
    const t = traversal.get(p.key)
    const s = p.stats
    const remote = p.remote ? `${p.remote.address}:${p.remote.port}` : (t?.remote ?? null)
    return {
      name: peerName(p),
      key: p.key,
      state: p.state,
      path: t?.path ?? null,
      via: t?.via ?? null,
      remote,
      rttMs: s ? s.rttMs : null,
      bytesIn: s ? s.bytesIn : null,
      bytesOut: s ? s.bytesOut : null,
      since: p.since,
    }
  })
}

export function pathRows(st: NodeStatus): PathRow[] {
  const rows: PathRow[] = []
  for (const p of st.peers) {
    const paths: readonly PathStats[] = p.stats?.paths ?? []
    const total = paths.reduce((n, x) => n + x.bytesOut, 0)
    for (const x of paths) {
      rows.push({
        peer: peerName(p),
        uplink: x.uplink || '(accepted)',
        alive: x.alive,
        remote: `${x.remote.address}:${x.remote.port}`,
        rttMs: x.rttMs,
        deliveryRate: x.deliveryRate,
        cwnd: x.cwnd,
        bytesInFlight: x.bytesInFlight,
        queued: x.queued,
        share: total > 0 ? x.bytesOut / total : null,
      })
    }
  }
  return rows
}

/** `quicether peers`: the table text (a header even with no peers). */
export function renderPeers(st: NodeStatus, now: number): string {
  const rows = peerRows(st).map((r) => [
    r.name,
    r.state,
    r.path === 'relay' ? `relay via ${r.via ?? '?'}` : (r.path ?? '-'),
    r.remote ?? '-',
    r.rttMs === null ? '-' : formatMs(r.rttMs),
    r.bytesIn === null ? '-' : formatBytes(r.bytesIn),
    r.bytesOut === null ? '-' : formatBytes(r.bytesOut),
    formatAge(r.since, now),
  ])
  return renderTable(['NAME', 'STATE', 'PATH', 'REMOTE', 'RTT', 'IN', 'OUT', 'SINCE'], rows, [4, 5, 6])
}

/** `quicether paths`: the table text, or a line saying no peer is bonded. */
export function renderPaths(st: NodeStatus): string {
  const rows = pathRows(st).map((r) => [
    r.peer,
    r.uplink,
    r.alive ? 'alive' : 'DEAD',
    r.remote,
    formatMs(r.rttMs),
    formatRate(r.deliveryRate),
    formatBytes(r.cwnd),
    formatBytes(r.bytesInFlight),
    String(r.queued),
    r.share === null ? '-' : `${(r.share * 100).toFixed(0)}%`,
  ])
  if (rows.length === 0) return 'no bonded peers (paths are shown for peers with multipath bonding)\n'
  return renderTable(['PEER', 'UPLINK', 'STATE', 'REMOTE', 'RTT', 'RATE', 'CWND', 'IN FLIGHT', 'QUEUED', 'SHARE'], rows, [4, 5, 6, 7, 8, 9])
}

/** Columns separated by two spaces, padded to the widest cell; `right` lists right-aligned columns. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  const line = (r: readonly string[]) =>
    r
      .map((cell, i) => (right.includes(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return all.map(line).join('\n') + '\n'
}

/** 1023 B, 1.5 KiB, 12.0 MiB, 3.2 GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

/** Bytes per second as bits: 50.0 Mbit/s, 800 kbit/s. */
export function formatRate(bytesPerS: number): string {
  const bits = bytesPerS * 8
  if (bits >= 1e9) return `${(bits / 1e9).toFixed(2)} Gbit/s`
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(1)} Mbit/s`
  return `${Math.round(bits / 1e3)} kbit/s`
}

export function formatMs(ms: number): string {
  return `${ms.toFixed(1)} ms`
}

/** How long ago an ISO time was, coarsely: 42s, 5m12s, 3h04m, 2d05h. */
export function formatAge(iso: string, now: number): string {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return iso
  const s = Math.max(0, Math.floor((now - t) / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`
}
