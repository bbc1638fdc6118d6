/**
 * The engine slice of desired state: every table the forwarding plane
 * enforces, as one pure function of the config and what the mesh has learned.
 *
 *   engineFromConfig(config, facts) → EngineState
 *   diffEngine(want, have)          → EngineAction[]  (people's rendering for `plan`)
 *
 * The engine takes the whole state at once (one versioned command, swapped
 * atomically), so the actions are for people and for the decision to send;
 * they are never applied one by one. Plain data, JSON in and out, like the
 * kernel slice.
 */
import { createHash } from 'node:crypto'
import type { Config, TrafficClassConfig, UplinkConfig } from '../config/types.js'
import type { FibEntry } from './routes.js'

export type EngineBondMode = 'aggregate' | 'failover' | 'redundant' | 'weighted'

/** One uplink as the engine takes it (its index in the list is the path index both ends see). */
export interface EngineUplink {
  readonly name: string
  /** In hundredths, as the engine keeps it (at least 0.01). */
  readonly weight: number
  readonly role: 'primary' | 'backup'
  readonly priority: number
  /** 0..255: a costlier uplink carries bulk only when every cheaper live path is full or dead (aggregate mode). */
  readonly cost: number
  /** Bytes/s it can send (`bandwidth.up` / 8): seeds its paths' rate until measured; absent: unknown. */
  readonly rateBps?: number
}

/** A traffic class as the engine takes it (first match wins, so order matters). */
export interface EngineClass {
  readonly dscp: readonly number[]
  readonly ports: readonly (readonly [number, number])[]
  readonly maxPacketSize?: number
  /** An uplink's name; absent: the lowest-latency live path. */
  readonly uplink?: string
}

/**
 * Every table the engine enforces. Sorted where order carries no meaning
 * (peers, routes), so equal states are equal JSON.
 */
export interface EngineState {
  /** Keys (base64) allowed to hold a tunnel with this node, sorted; never this node's own. */
  readonly allowedPeers: readonly string[]
  /** The forwarding table (also the anti-spoofing table), sorted by prefix. */
  readonly routes: readonly FibEntry[]
  readonly uplinks: readonly EngineUplink[]
  readonly classes: readonly EngineClass[]
  /** `multipath.accept`: bonded paths from peers are accepted. */
  readonly acceptBonded: boolean
  /** `multipath.reorder`, live. */
  readonly reorder: { readonly maxDelayMs: number; readonly maxBytes: number }
  /** The policy, packed (src/policy/pack.ts); absent: no policy. */
  readonly acl?: string
}

/** What the mesh learned that the engine slice depends on. */
export interface EngineFacts {
  /** This node's own key: never an allowed peer. */
  readonly selfKey: string
  /** The forwarding table computed from connected peers' hellos (`computeMeshRoutes`). */
  readonly fib: readonly FibEntry[]
  /** The packed policy ('' or absent: none). */
  readonly acl?: string
}

/** The slice of `Config` the engine state depends on. */
export type EngineConfig = Pick<Config, 'peers' | 'interfaces' | 'multipath'>

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

export function engineFromConfig(config: EngineConfig, facts: EngineFacts): EngineState {
  const allowed = new Set(config.peers.map((p) => p.key))
  allowed.delete(facts.selfKey)
  return {
    allowedPeers: [...allowed].sort(byString),
    routes: [...facts.fib].map((e) => ({ prefix: e.prefix, peer: e.peer })).sort((a, b) => byString(a.prefix, b.prefix)),
    uplinks: config.interfaces.map(engineUplink),
    classes: engineClasses(config.multipath.trafficClasses),
    acceptBonded: config.multipath.accept,
    reorder: { maxDelayMs: config.multipath.reorder.maxDelay, maxBytes: config.multipath.reorder.maxBytes },
    ...(facts.acl ? { acl: facts.acl } : {}),
  }
}

/** The largest send rate the engine takes, bytes/s. */
const MAX_RATE_BPS = 2 ** 32 - 1

/** An uplink as the engine keeps it: weight in hundredths, rate in bytes/s. */
export function engineUplink(u: Pick<UplinkConfig, 'name' | 'weight' | 'role' | 'priority' | 'cost' | 'bandwidth'>): EngineUplink {
  const up = u.bandwidth.up
  return {
    name: u.name,
    weight: Math.max(1, Math.round(u.weight * 100)) / 100,
    role: u.role,
    priority: u.priority,
    cost: u.cost,
    ...(up !== null && up > 0 ? { rateBps: Math.min(MAX_RATE_BPS, Math.max(1, Math.round(up / 8))) } : {}),
  }
}

/** The config's traffic classes as the engine takes them (`lowest-latency` is the engine's default path). */
export function engineClasses(classes: readonly TrafficClassConfig[]): EngineClass[] {
  return classes.map((k) => ({
    dscp: [...k.match.dscp],
    ports: k.match.ports.map((r): [number, number] => [r.from, r.to]),
    ...(k.match.maxPacketSize !== null ? { maxPacketSize: k.match.maxPacketSize } : {}),
    ...(k.path !== 'lowest-latency' ? { uplink: k.path } : {}),
  }))
}

/** One difference between two engine states, for people (`quicether plan`, the apply log). */
export interface EngineAction {
  readonly table: 'peer' | 'route' | 'uplink' | 'class' | 'setting'
  readonly op: 'add' | 'del' | 'change'
  /** `+ engine peer office (k3Jd…)`, `~ engine uplink lte weight 1 → 2`. */
  readonly text: string
}

/** Names peers for people: the config name with a short key, or the short key alone. */
export type PeerNamer = (key: string) => string

export function shortKey(key: string): string {
  return key.length > 8 ? `${key.slice(0, 8)}…` : key
}

const SIGN = { add: '+', del: '-', change: '~' } as const

function act(table: EngineAction['table'], op: EngineAction['op'], what: string): EngineAction {
  return { table, op, text: `${SIGN[op]} engine ${table} ${what}` }
}

/**
 * What turns `have` into `want`, for people; empty when they are equal.
 * `have === null` (an engine that has no tables yet, or a fresh one after a
 * restart) lists everything `want` holds.
 */
export function diffEngine(want: EngineState, have: EngineState | null, name: PeerNamer = shortKey): EngineAction[] {
  const out: EngineAction[] = []
  const h: EngineState = have ?? { allowedPeers: [], routes: [], uplinks: [], classes: [], acceptBonded: want.acceptBonded, reorder: want.reorder }

  const hadPeers = new Set(h.allowedPeers)
  const wantPeers = new Set(want.allowedPeers)
  for (const k of want.allowedPeers) if (!hadPeers.has(k)) out.push(act('peer', 'add', name(k)))
  for (const k of h.allowedPeers) if (!wantPeers.has(k)) out.push(act('peer', 'del', name(k)))

  const hadRoutes = new Map(h.routes.map((r) => [r.prefix, r.peer]))
  const wantRoutes = new Map(want.routes.map((r) => [r.prefix, r.peer]))
  for (const r of want.routes) {
    const prev = hadRoutes.get(r.prefix)
    if (prev === undefined) out.push(act('route', 'add', `${r.prefix} → ${name(r.peer)}`))
    else if (prev !== r.peer) out.push(act('route', 'change', `${r.prefix} → ${name(r.peer)} (was ${name(prev)})`))
  }
  for (const r of h.routes) if (!wantRoutes.has(r.prefix)) out.push(act('route', 'del', `${r.prefix} → ${name(r.peer)}`))

  const hadUplinks = new Map(h.uplinks.map((u, i) => [u.name, { u, i }]))
  const wantUplinks = new Set(want.uplinks.map((u) => u.name))
  want.uplinks.forEach((u, i) => {
    const prev = hadUplinks.get(u.name)
    if (prev === undefined) out.push(act('uplink', 'add', describeUplink(u)))
    else {
      const changed = uplinkChanges(prev.u, u, prev.i, i)
      if (changed.length > 0) out.push(act('uplink', 'change', `${u.name} ${changed.join(', ')}`))
    }
  })
  for (const u of h.uplinks) if (!wantUplinks.has(u.name)) out.push(act('uplink', 'del', u.name))

  // Classes are an ordered list (first match wins): compare by position.
  const n = Math.max(want.classes.length, h.classes.length)
  for (let i = 0; i < n; i++) {
    const w = want.classes[i]
    const p = h.classes[i]
    if (w !== undefined && p === undefined) out.push(act('class', 'add', `#${i + 1} ${describeClass(w)}`))
    else if (w === undefined && p !== undefined) out.push(act('class', 'del', `#${i + 1} ${describeClass(p)}`))
    else if (w !== undefined && p !== undefined && describeClass(w) !== describeClass(p)) {
      out.push(act('class', 'change', `#${i + 1} ${describeClass(w)} (was ${describeClass(p)})`))
    }
  }

  if (have !== null && want.acceptBonded !== h.acceptBonded) out.push(act('setting', 'change', `multipath.accept ${h.acceptBonded} → ${want.acceptBonded}`))
  if (have !== null && (want.reorder.maxDelayMs !== h.reorder.maxDelayMs || want.reorder.maxBytes !== h.reorder.maxBytes)) {
    out.push(act('setting', 'change', `multipath.reorder ${describeReorder(h.reorder)} → ${describeReorder(want.reorder)}`))
  }
  if ((want.acl ?? '') !== (h.acl ?? '')) {
    const op = !h.acl ? 'add' : !want.acl ? 'del' : 'change'
    out.push(act('setting', op, `policy ${describeAcl(want.acl ?? h.acl ?? '')}${op === 'change' ? ` (was ${describeAcl(h.acl ?? '')})` : ''}`))
  }
  return out
}

/** `3 rules, default deny, a1b2c3d4` of a packed policy. */
function describeAcl(hex: string): string {
  const b = Buffer.from(hex, 'hex')
  if (b.length < 8) return 'none'
  return `${b.readUInt32BE(4)} rule(s), default ${b[0] === 1 ? 'allow' : 'deny'}, ${createHash('sha256').update(b).digest('hex').slice(0, 8)}`
}

/** True when the two states are the same tables (what a read-back is verified with). */
export function engineStateEqual(a: EngineState, b: EngineState): boolean {
  return JSON.stringify(normalizeEngineState(a)) === JSON.stringify(normalizeEngineState(b))
}

/** The canonical form: sorted peers and routes, classes and uplinks in order, fields in one order. */
export function normalizeEngineState(s: EngineState): EngineState {
  return {
    allowedPeers: [...s.allowedPeers].sort(byString),
    routes: s.routes.map((r) => ({ prefix: r.prefix, peer: r.peer })).sort((a, b) => byString(a.prefix, b.prefix)),
    uplinks: s.uplinks.map((u) => ({ name: u.name, weight: u.weight, role: u.role, priority: u.priority, cost: u.cost, ...(u.rateBps !== undefined ? { rateBps: u.rateBps } : {}) })),
    classes: s.classes.map((k) => ({
      dscp: [...k.dscp].sort((x, y) => x - y),
      ports: k.ports.map((r): [number, number] => [r[0], r[1]]),
      ...(k.maxPacketSize !== undefined ? { maxPacketSize: k.maxPacketSize } : {}),
      ...(k.uplink !== undefined ? { uplink: k.uplink } : {}),
    })),
    acceptBonded: s.acceptBonded,
    reorder: { maxDelayMs: s.reorder.maxDelayMs, maxBytes: s.reorder.maxBytes },
    ...(s.acl ? { acl: s.acl.toLowerCase() } : {}),
  }
}

function describeUplink(u: EngineUplink): string {
  return `${u.name} (${u.role}, weight ${u.weight}, priority ${u.priority}${u.cost ? `, cost ${u.cost}` : ''}${u.rateBps !== undefined ? `, ${formatRate(u.rateBps)}` : ''})`
}

function uplinkChanges(a: EngineUplink, b: EngineUplink, ai: number, bi: number): string[] {
  const c: string[] = []
  if (ai !== bi) c.push(`position ${ai + 1} → ${bi + 1}`)
  if (a.role !== b.role) c.push(`role ${a.role} → ${b.role}`)
  if (a.weight !== b.weight) c.push(`weight ${a.weight} → ${b.weight}`)
  if (a.priority !== b.priority) c.push(`priority ${a.priority} → ${b.priority}`)
  if (a.cost !== b.cost) c.push(`cost ${a.cost} → ${b.cost}`)
  if (a.rateBps !== b.rateBps) c.push(`rate ${a.rateBps === undefined ? 'measured' : formatRate(a.rateBps)} → ${b.rateBps === undefined ? 'measured' : formatRate(b.rateBps)}`)
  return c
}

function describeClass(k: EngineClass): string {
  const parts: string[] = []
  if (k.dscp.length > 0) parts.push(`dscp ${[...k.dscp].sort((x, y) => x - y).join(',')}`)
  if (k.ports.length > 0) parts.push(`ports ${k.ports.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',')}`)
  if (k.maxPacketSize !== undefined) parts.push(`size ≤ ${k.maxPacketSize}`)
  if (parts.length === 0) parts.push('any packet')
  parts.push(`on ${k.uplink ?? 'the lowest-latency path'}`)
  return parts.join(' ')
}

function formatRate(bytesPerS: number): string {
  return `${((bytesPerS * 8) / 1e6).toFixed(1)} Mbit/s`
}

function describeReorder(r: EngineState['reorder']): string {
  return `${r.maxDelayMs} ms / ${r.maxBytes} B`
}
