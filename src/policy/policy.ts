/**
 * Who may reach what: `policies` compiled into the ACL table the forwarding
 * plane enforces, and the evaluator that `validate` (policy tests), `policy
 * explain` and the tests use. Pure.
 *
 * A flow is judged once, on its first packet, from its initiator's view:
 * `from` matches the initiator (a peer by identity, which the forwarding
 * plane knows as the overlay addresses that peer may source: its anti-spoofing
 * already refused anything else; a group as the union of its members; a
 * prefix as written), `to` the destination address, `proto` and `ports` the
 * destination port of TCP and UDP, ICMP as ICMP or ICMPv6. Rules are tried in
 * order, the first match decides, and `default` decides the rest. Replies of
 * an allowed flow pass (the engine tracks flows); a denied flow's packets are
 * dropped and counted per rule.
 *
 * Enforced only when the config writes `policies.rules` or `policies.default`:
 * a node without a policy admits every member's traffic, as before.
 */
import { createHash } from 'node:crypto'
import type { Config, PolicyAction, PolicyProto, PolicyRuleConfig } from '../config/index.js'
import { parseCidr, prefixContains } from '../net/ip.js'
import type { Family, Prefix } from '../net/types.js'

/** One member the policy can name: its name and the overlay addresses it sources. */
export interface PolicyMember {
  readonly name: string
  readonly addresses: readonly string[]
  /** Groups it belongs to besides `policies.groups` (peers[].groups, its certificate's). */
  readonly groups: readonly string[]
}

export interface CompiledRule {
  /** Position in `policies.rules` (0-based). */
  readonly index: number
  readonly name: string
  readonly action: PolicyAction
  readonly proto: PolicyProto
  /** Destination port ranges (TCP and UDP); empty: every port. */
  readonly ports: readonly { readonly lo: number; readonly hi: number }[]
  /** Initiator prefixes; null: any. An empty list never matches (a group with no member known yet). */
  readonly src: readonly string[] | null
  /** For `peer:` and `group:` rules, the member names (what a flow from a named member is matched by); null otherwise. */
  readonly members: readonly string[] | null
  /** Destination prefixes; null: any. */
  readonly dst: readonly string[] | null
  /** The rule as written, for explain and logs. */
  readonly text: string
}

export interface PolicyTable {
  readonly enforced: boolean
  readonly default: PolicyAction
  readonly rules: readonly CompiledRule[]
  /** sha256 of the compiled table (what the engine enforces), hex, first 16. */
  readonly hash: string
}

export const ALLOW_ALL: PolicyTable = { enforced: false, default: 'allow', rules: [], hash: 'none' }

export function ruleText(r: PolicyRuleConfig): string {
  const from = r.from.kind === 'any' ? 'any' : r.from.kind === 'group' ? `group:${r.from.group}` : r.from.kind === 'peer' ? `peer:${r.from.peer}` : r.from.cidr
  const to = r.to.kind === 'any' ? 'any' : r.to.cidr
  const ports = r.ports.length ? ` ports ${r.ports.map((p) => (p.from === p.to ? String(p.from) : `${p.from}-${p.to}`)).join(',')}` : ''
  return `${r.action} ${from} → ${to} ${r.proto}${ports}`
}

/** Host prefixes of a member's addresses. */
function hostPrefixes(addresses: readonly string[]): string[] {
  return addresses.map((a) => parseCidr(a).cidr)
}

/**
 * The table of `config.policies` for these members (this node among them,
 * under its own name). A member without addresses contributes nothing.
 */
export function compilePolicy(config: Pick<Config, 'policies'>, members: readonly PolicyMember[]): PolicyTable {
  const pol = config.policies
  if (!pol.enforced) return ALLOW_ALL
  const byName = new Map(members.map((m) => [m.name, m]))
  const groupMembers = (g: string): string[] => {
    const out = new Set<string>(pol.groups[g] ?? [])
    for (const m of members) if (m.groups.includes(g)) out.add(m.name)
    return [...out].sort()
  }
  const rules = pol.rules.map((r, index): CompiledRule => {
    let src: string[] | null
    const names = r.from.kind === 'peer' ? [r.from.peer] : r.from.kind === 'group' ? groupMembers(r.from.group) : null
    switch (r.from.kind) {
      case 'any':
        src = null
        break
      case 'cidr':
        src = [parseCidr(r.from.cidr).cidr]
        break
      case 'peer':
        src = hostPrefixes(byName.get(r.from.peer)?.addresses ?? [])
        break
      case 'group':
        src = groupMembers(r.from.group).flatMap((n) => hostPrefixes(byName.get(n)?.addresses ?? []))
        break
    }
    return {
      index,
      name: r.name ?? `rule ${index + 1}`,
      action: r.action,
      proto: r.proto,
      ports: r.proto === 'icmp' ? [] : r.ports.map((p) => ({ lo: p.from, hi: p.to })),
      src: src === null ? null : [...new Set(src)].sort(),
      members: names,
      dst: r.to.kind === 'any' ? null : [parseCidr(r.to.cidr).cidr],
      text: ruleText(r),
    }
  })
  const hash = createHash('sha256').update(JSON.stringify({ d: pol.default, r: rules.map((r) => [r.action, r.proto, r.ports, r.src, r.dst]) })).digest('hex').slice(0, 16)
  return { enforced: true, default: pol.default, rules, hash }
}

/** The initiator's view of a flow. */
export interface Flow {
  readonly src: string
  readonly dst: string
  readonly proto: 'tcp' | 'udp' | 'icmp' | number
  /** Destination port (TCP, UDP); null otherwise. */
  readonly dport: number | null
  /** The initiator is this member (a test's or explain's `peer:NAME`): peer and group rules match it by name, not by address. */
  readonly member?: string
}

export interface Verdict {
  readonly action: PolicyAction
  /** The rule that decided; null: the default. */
  readonly rule: CompiledRule | null
}

const inAny = (prefixes: readonly string[] | null, addr: string, family: Family): boolean => {
  if (prefixes === null) return true
  const a = parseCidr(addr)
  return prefixes.some((p) => {
    const px: Prefix = parseCidr(p)
    return px.family === family && prefixContains(px, { family, text: a.network, n: a.first })
  })
}

/** First match wins; the default decides what no rule matches. The naive twin of the engine's matcher. */
export function evaluate(table: PolicyTable, f: Flow): Verdict {
  if (!table.enforced) return { action: 'allow', rule: null }
  const family = parseCidr(f.src).family
  for (const r of table.rules) {
    if (r.proto !== 'any' && r.proto !== f.proto) continue
    if (r.ports.length > 0) {
      if (f.proto !== 'tcp' && f.proto !== 'udp') continue
      if (f.dport === null || !r.ports.some((p) => f.dport! >= p.lo && f.dport! <= p.hi)) continue
    }
    const fromOk = r.members !== null && f.member !== undefined ? r.members.includes(f.member) : inAny(r.src, f.src, family)
    if (!fromOk || !inAny(r.dst, f.dst, family)) continue
    return { action: r.action, rule: r }
  }
  return { action: table.default, rule: null }
}

/** `10.0.0.5:22/tcp`, `[fd00::5]:53/udp`, `10.0.0.5/icmp`, `10.0.0.5` (any protocol, no port). */
export function parseTarget(text: string): { addr: string; port: number | null; proto: Flow['proto'] } | { error: string } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9A-Fa-f:.]+?))(?::(\d{1,5}))?(?:\/(tcp|udp|icmp))?$/.exec(text.trim())
  if (!m) return { error: `'${text}' is not ADDRESS[:PORT][/tcp|udp|icmp]` }
  const addr = m[1] ?? m[2]!
  try {
    parseCidr(addr)
  } catch {
    return { error: `'${addr}' is not an IP address` }
  }
  const port = m[3] === undefined ? null : Number(m[3])
  if (port !== null && (port < 1 || port > 65535)) return { error: `port ${port} is not 1..65535` }
  const proto = (m[4] as 'tcp' | 'udp' | 'icmp' | undefined) ?? (port !== null ? 'tcp' : 'icmp')
  if (proto === 'icmp' && port !== null) return { error: 'icmp has no port' }
  return { addr: parseCidr(addr).network, port, proto }
}
