/**
 * The typed status snapshot of a running node: the one source for the
 * control socket's `status`, the CLI, and (as they land) metrics and the UI.
 * Built from the subsystems' slices by a pure function, so its shape is
 * tested without a daemon.
 */
import type { Diagnostic } from '../config/index.js'
import type { GlobalStats, PeerStats } from '../engine/types.js'
import type { DiscoveryStatus } from '../discovery/types.js'
import type { TraversalStatus } from '../traversal/traversal.js'
import type { AdmittedPeerStatus, PeerStatus } from '../mesh/mesh.js'
import type { HelloMessage } from '../mesh/messages.js'
import type { ApplyResult } from '../reconcile/types.js'
import type { EngineApplyInfo, NodeApplyResult } from '../reconcile/node.js'
import type { PendingConfirm } from '../reconcile/confirm.js'
import type { MeshRoutes } from '../state/routes.js'
import type { PolicyTable } from '../policy/policy.js'
import type { AuthStatus } from '../daemon/auth-host.js'
import type { AuditStatus } from '../daemon/audit-host.js'

export interface PeerView {
  readonly key: string
  /** The config name; for a connected peer the config does not name, null. */
  readonly name: string | null
  readonly state: AdmittedPeerStatus['state']
  /** When it entered its state (ISO). */
  readonly since: string
  readonly lastError: string | null
  readonly remote: { readonly address: string; readonly port: number } | null
  readonly hello: HelloMessage | null
  /** The engine's counters for this peer (null when it has none). */
  readonly stats: PeerStats | null
  /** Its groups: `peers[].groups` of the config, or its certificate's. */
  readonly groups: readonly string[]
}

export interface ApplySummary {
  readonly at: string
  readonly ok: boolean
  readonly trigger: ApplyResult['trigger']
  /** Kernel actions, then engine table changes, as `plan` prints them. */
  readonly plan: readonly string[]
  readonly failure: string | null
  readonly rolledBack: boolean
  readonly durationMs: number
}

export interface NodeStatus {
  readonly node: {
    readonly name: string
    readonly key: string
    readonly overlay: { readonly ipv4: string; readonly ipv6: string }
    readonly tun: string
    readonly tunMtu: number
  } | null
  readonly config: {
    readonly file: string | null
    readonly generation: number
    /** Why the last edit was not applied (the node runs the previous config). */
    readonly errors: readonly Diagnostic[]
    /** Warnings of the running config (keys this version does not act on, …). */
    readonly warnings: readonly Diagnostic[]
    readonly pendingConfirm: PendingConfirm | null
  }
  readonly lastApply: ApplySummary | null
  /** Every admitted peer, connected or not, by name. */
  readonly peers: readonly PeerView[]
  /** The mesh's routes; `refusedTotal`: claims refused since start (each once while it lasts). */
  readonly routes: MeshRoutes & { readonly refusedTotal?: number }
  readonly engine: { readonly listenPort: number; readonly tablesVersion: number; readonly global: GlobalStats } | null
  /** Members found, the certificate, the DHT and LAN, refusals; null when discovery does not run. */
  readonly discovery: DiscoveryStatus | null
  /** How each connected peer is reached (LAN, direct, relay via whom), this node's reflexive addresses and NAT, punching and relaying counters. */
  readonly traversal: TraversalStatus | null
  /** Where metrics and the web UI listen (null: off), and why one could not. */
  readonly observe: ObserveStatus | null
  /** The second factor: required here (sessions, gated clients), or nodes that asked this one to log in. */
  readonly auth?: AuthStatus | null
  /** The policy the engine enforces and its counters; null: no policy (every member admitted). */
  readonly policy?: PolicyStatus | null
  /** The audit log: where, lines written by this daemon, and why it cannot be written (changes are refused then); null when no daemon reports it. */
  readonly audit?: AuditStatus | null
  readonly uptimeS: number
}


export interface PolicyStatus {
  readonly enforced: boolean
  readonly hash: string
  readonly default: 'allow' | 'deny'
  /** Per rule of policies.rules: flows it admitted (allow) or packets it dropped (deny). */
  readonly rules: readonly { readonly number: number; readonly name: string; readonly action: 'allow' | 'deny'; readonly text: string; readonly hits: number }[]
  readonly defaultHits: number
  readonly passed: number
  readonly flows: number
  readonly drops: { readonly rule: number; readonly default: number; readonly noFlow: number; readonly fragment: number; readonly malformed: number; readonly tableFull: number }
}

export interface ObserveStatus {
  readonly metrics: { readonly listen: string; readonly error: string | null } | null
  readonly ui: { readonly listen: string; readonly error: string | null } | null
}

export interface StatusParts {
  readonly node: NodeStatus['node']
  readonly config: NodeStatus['config']
  readonly lastApply: NodeApplyResult | null
  readonly mesh: { readonly admitted: readonly AdmittedPeerStatus[]; readonly connected: readonly PeerStatus[] }
  readonly routes: MeshRoutes & { readonly refusedTotal?: number }
  readonly engine: { readonly listenPort: number; readonly tablesVersion: number; readonly stats: { readonly global: GlobalStats; readonly peers: readonly PeerStats[] } | null } | null
  readonly discovery?: DiscoveryStatus | null
  readonly traversal?: TraversalStatus | null
  readonly observe?: ObserveStatus | null
  readonly audit?: AuditStatus | null
  /** The compiled policy and the packed rules' origins (what the engine's hit counters are indexed by). */
  readonly policy?: { readonly table: PolicyTable; readonly origins: readonly number[] } | null
  readonly auth?: AuthStatus | null
  readonly startedAt: number
  readonly now: number
  /** A peer's groups by key (the effective config's peers). */
  readonly groupsOf?: (key: string) => readonly string[]
}

export function buildStatus(p: StatusParts): NodeStatus {
  const statsOf = (key: string) => p.engine?.stats?.peers.find((s) => s.peer === key) ?? null
  const connected = new Map(p.mesh.connected.map((c) => [c.key, c]))
  const peers: PeerView[] = p.mesh.admitted.map((a) => ({
    key: a.key,
    name: a.name,
    state: a.state,
    since: new Date(a.since).toISOString(),
    lastError: a.lastError,
    remote: a.remote,
    hello: connected.get(a.key)?.hello ?? null,
    stats: statsOf(a.key),
    groups: p.groupsOf?.(a.key) ?? [],
  }))
  // A connected peer that is not admitted (cannot happen: the engine refuses it; kept honest).
  for (const c of p.mesh.connected) {
    if (peers.some((x) => x.key === c.key)) continue
    peers.push({ key: c.key, name: c.name, state: 'up', since: new Date(c.since).toISOString(), lastError: null, remote: c.remote, hello: c.hello, stats: statsOf(c.key), groups: p.groupsOf?.(c.key) ?? [] })
  }
  return {
    node: p.node,
    config: p.config,
    lastApply: p.lastApply ? summarizeApply(p.lastApply) : null,
    peers,
    routes: p.routes,
    engine: p.engine && p.engine.stats ? { listenPort: p.engine.listenPort, tablesVersion: p.engine.tablesVersion, global: p.engine.stats.global } : null,
    discovery: p.discovery ?? null,
    traversal: p.traversal ?? null,
    observe: p.observe ?? null,
    audit: p.audit ?? null,
    policy: policyStatus(p.policy ?? null, p.engine?.stats?.global.policy),
    auth: p.auth ?? null,
    uptimeS: Math.round((p.now - p.startedAt) / 1000),
  }
}

function policyStatus(p: { table: PolicyTable; origins: readonly number[] } | null, counters: GlobalStats['policy']): PolicyStatus | null {
  if (!p || !p.table.enforced) return null
  const hits = counters?.hits ?? []
  const byRule = new Map<number, number>()
  p.origins.forEach((o, i) => byRule.set(o, (byRule.get(o) ?? 0) + (hits[i] ?? 0)))
  return {
    enforced: true,
    hash: p.table.hash,
    default: p.table.default,
    rules: p.table.rules.map((r) => ({ number: r.index + 1, name: r.name, action: r.action, text: r.text, hits: byRule.get(r.index) ?? 0 })),
    defaultHits: hits.length > p.origins.length ? (hits[p.origins.length] ?? 0) : 0,
    passed: counters?.passed ?? 0,
    flows: counters?.flows ?? 0,
    drops: counters?.drops ?? { rule: 0, default: 0, noFlow: 0, fragment: 0, malformed: 0, tableFull: 0 },
  }
}

export function summarizeApply(r: NodeApplyResult): ApplySummary {
  const k = r.kernel
  return {
    at: k.startedAt,
    ok: r.ok,
    trigger: k.trigger,
    plan: [...k.plan.actions.map((a) => a.text), ...(r.firewall?.actions ?? []).map((a) => a.text), ...r.engine.actions.map((a) => a.text)],
    failure: r.ok ? null : describeFailure(r),
    rolledBack: k.ok ? r.engine.rolledBack : k.rolledBack,
    durationMs: Math.round(k.durationMs),
  }
}

/** One line on why an apply failed: the kernel's failed step, or the engine's. */
export function describeFailure(r: NodeApplyResult | { kernel: ApplyResult; engine: EngineApplyInfo }): string {
  const res = r.kernel
  if (!res.ok) {
    if (res.failed) return `${res.failed.action.text}: ${res.failed.error.message}`
    if (res.error) return res.error.message
    if (res.verify === 'mismatch') return `verify mismatch: ${res.verifyDiff.join('; ')}`
    return 'unknown failure'
  }
  if ('firewall' in r && r.firewall && !r.firewall.ok && r.firewall.error) return `firewall: ${r.firewall.error.message}`
  if (r.engine.error) return `engine tables: ${r.engine.error.message}`
  return 'unknown failure'
}
