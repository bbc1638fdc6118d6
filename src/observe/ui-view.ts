/**
 * What the web UI shows, shaped from one status snapshot and the rates since
 * the previous one: a pure function, so what the page is told is tested
 * without a browser. The page only draws this.
 */
import { createHash } from 'node:crypto'
import type { NodeStatus, PeerView } from './status.js'
import type { Rates } from './rates.js'
import { peerLabel } from './metrics.js'

export type Health = 'up' | 'degraded' | 'down'

export interface UiPath {
  readonly uplink: string
  readonly alive: boolean
  readonly rttMs: number
  /** What the path delivered lately by its own measure, bits/s. */
  readonly capacityBps: number
  /** Bits per second sent / received on it over the last period. */
  readonly outBps: number
  readonly inBps: number
  /** Its part of the bond's bytes sent over the last period (0..1). */
  readonly share: number
  readonly queued: number
  readonly inFlight: number
  readonly lost: number
}

export interface UiPeer {
  readonly name: string
  readonly key: string
  readonly fingerprint: string
  readonly groups: readonly string[]
  readonly state: PeerView['state']
  readonly health: Health
  /** How the tunnel goes (null while it is not up). */
  readonly kind: 'direct' | 'lan' | 'relay' | null
  readonly via: string | null
  readonly remote: string | null
  readonly overlay: readonly string[]
  readonly subnets: readonly string[]
  readonly role: string | null
  readonly rttMs: number | null
  /** Bits per second over the last period. */
  readonly inBps: number
  readonly outBps: number
  readonly bytesIn: number
  readonly bytesOut: number
  readonly lastError: string | null
  readonly since: string
  /** Bonded peers: one entry per uplink. */
  readonly paths: readonly UiPath[]
}

export interface UiProblem {
  readonly file: string
  readonly line: number
  readonly col: number
  readonly code: string
  readonly message: string
  /** FILE:LINE:COL, as an editor opens it. */
  readonly where: string
}

export interface UiView {
  readonly at: string
  readonly node: { readonly name: string; readonly key: string; readonly fingerprint: string; readonly overlay: readonly string[]; readonly tun: string } | null
  readonly uptimeS: number
  readonly config: {
    readonly file: string | null
    readonly generation: number
    readonly errors: readonly UiProblem[]
    readonly warnings: readonly UiProblem[]
    readonly pendingConfirm: boolean
  }
  readonly lastApply: { readonly at: string; readonly ok: boolean; readonly trigger: string; readonly plan: readonly string[]; readonly failure: string | null; readonly durationMs: number } | null
  readonly peers: readonly UiPeer[]
  /** The node's uplinks, each summed over the bonds that use it. */
  readonly uplinks: readonly { readonly name: string; readonly alive: boolean; readonly outBps: number; readonly inBps: number }[]
  readonly totals: { readonly inBps: number; readonly outBps: number }
  readonly audit: { readonly enabled: boolean; readonly note: string; readonly lines: readonly string[] }
}

/** `SHA256:` and the base64 of the key's SHA-256, as ssh prints a host key's fingerprint. */
export function fingerprint(keyBase64: string): string {
  const raw = Buffer.from(keyBase64, 'base64')
  return `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`
}

function problem(d: { file: string; line: number; col: number; code: string; message: string }): UiProblem {
  return { file: d.file, line: d.line, col: d.col, code: d.code, message: d.message, where: `${d.file}:${d.line}:${d.col}` }
}

export function uiView(s: NodeStatus, rates: Rates, audit: UiView['audit'] = NO_AUDIT): UiView {
  const kinds = new Map((s.traversal?.peers ?? []).map((t) => [t.key, t]))
  const uplinks = new Map<string, { name: string; alive: boolean; outBps: number; inBps: number }>()
  const peers: UiPeer[] = s.peers.map((p) => {
    const st = p.stats
    const r = rates.peers.get(p.key)
    const pr = rates.paths.get(p.key)
    const paths: UiPath[] = (st?.paths ?? []).map((x) => {
      const pathRate = pr?.get(x.uplink)
      const row: UiPath = {
        uplink: x.uplink,
        alive: x.alive,
        rttMs: x.rttMs,
        capacityBps: x.deliveryRate * 8,
        outBps: (pathRate?.outBps ?? 0) * 8,
        inBps: (pathRate?.inBps ?? 0) * 8,
        share: pathRate?.share ?? 0,
        queued: x.queued,
        inFlight: x.bytesInFlight,
        lost: x.datagramsLost,
      }
      const u = uplinks.get(x.uplink) ?? { name: x.uplink, alive: false, outBps: 0, inBps: 0 }
      uplinks.set(x.uplink, { name: x.uplink, alive: u.alive || x.alive, outBps: u.outBps + row.outBps, inBps: u.inBps + row.inBps })
      return row
    })
    const up = p.state === 'up'
    // Degraded: up, but a bonded uplink is dead, or nothing was heard lately while data waited.
    const health: Health = !up ? 'down' : paths.some((x) => !x.alive) || (st?.silentMs ?? 0) > 2000 ? 'degraded' : 'up'
    const t = kinds.get(p.key)
    const hello = p.hello
    return {
      name: peerLabel(p),
      key: p.key,
      fingerprint: fingerprint(p.key),
      groups: p.groups,
      state: p.state,
      health,
      kind: up ? (t?.path ?? (st?.relayed ? 'relay' : 'direct')) : null,
      via: t?.via ?? null,
      remote: p.remote ? `${p.remote.address.includes(':') ? `[${p.remote.address}]` : p.remote.address}:${p.remote.port}` : null,
      overlay: hello ? [hello.overlay.ipv4, hello.overlay.ipv6].filter((a): a is string => a !== null) : [],
      subnets: hello?.subnets ?? [],
      role: hello?.role ?? null,
      rttMs: st && up ? st.rttMs : null,
      inBps: (r?.inBps ?? 0) * 8,
      outBps: (r?.outBps ?? 0) * 8,
      bytesIn: st?.bytesIn ?? 0,
      bytesOut: st?.bytesOut ?? 0,
      lastError: p.lastError,
      since: p.since,
      paths,
    }
  })
  const la = s.lastApply
  return {
    at: new Date().toISOString(),
    node: s.node ? { name: s.node.name, key: s.node.key, fingerprint: fingerprint(s.node.key), overlay: [s.node.overlay.ipv4, s.node.overlay.ipv6], tun: s.node.tun } : null,
    uptimeS: s.uptimeS,
    config: {
      file: s.config.file,
      generation: s.config.generation,
      errors: s.config.errors.map(problem),
      warnings: s.config.warnings.map(problem),
      pendingConfirm: s.config.pendingConfirm !== null,
    },
    lastApply: la ? { at: la.at, ok: la.ok, trigger: la.trigger, plan: la.plan, failure: la.failure, durationMs: la.durationMs } : null,
    peers,
    uplinks: [...uplinks.values()],
    totals: { inBps: peers.reduce((a, p) => a + p.inBps, 0), outBps: peers.reduce((a, p) => a + p.outBps, 0) },
    audit,
  }
}

export const NO_AUDIT: UiView['audit'] = { enabled: false, note: 'no audit log is shown here (quicether audit tail reads it)', lines: [] }
