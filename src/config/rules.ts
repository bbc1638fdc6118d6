/**
 * Semantic rules: what the schema cannot say. References between sections (a route via
 * a peer that exists), value formats (prefixes, units, endpoints), overlaps, duplicates.
 *
 * Rules read the raw document defensively (the schema may have failed on part of it),
 * so that one run reports every problem. Each rule stays linear or n log n: overlap
 * checks sort, lookups use maps.
 */
import type { DiagnosticCode } from './diagnostics.js'
import type { Path, Positions } from './positions.js'
import { checkMultipath } from './rules-multipath.js'
import { checkNotImplemented } from './not-implemented.js'
import { checkNetwork } from './rules-network.js'
import { checkPeers } from './rules-peers.js'

export type Raw = Record<string, unknown>

export interface RuleProblem {
  path: Path
  at: 'key' | 'value'
  code: DiagnosticCode
  severity: 'error' | 'warning'
  message: string
}

export interface RuleContext {
  raw: Raw
  /** This node's name, when it is a string. */
  nodeName: string | undefined
  role: string
  /** Peer name → index in `peers` (first occurrence). */
  peers: ReadonlyMap<string, number>
  /** Group names: keys of policies.groups plus every peers[].groups entry. */
  groups: ReadonlySet<string>
  report(path: Path, code: DiagnosticCode, message: string, opts?: { severity?: 'error' | 'warning'; at?: 'key' | 'value' }): void
  /** "line 12" (or "--flag") for a path, to point at the other half of a conflict. */
  where(path: Path): string
}

// Defensive readers for the raw document.
export function rec(v: unknown): Raw | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : undefined
}
export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : []
}
export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

export function checkRules(raw: Raw, positions: Positions): RuleProblem[] {
  const problems: RuleProblem[] = []
  const peers = new Map<string, number>()
  list(raw.peers).forEach((p, i) => {
    const name = str(rec(p)?.name)
    if (name !== undefined && !peers.has(name)) peers.set(name, i)
  })
  const groups = new Set<string>(Object.keys(rec(rec(raw.policies)?.groups) ?? {}))
  for (const p of list(raw.peers)) for (const g of list(rec(p)?.groups)) if (typeof g === 'string') groups.add(g)

  const ctx: RuleContext = {
    raw,
    nodeName: str(rec(raw.node)?.name),
    role: str(rec(raw.node)?.role) ?? 'client',
    peers,
    groups,
    report(path, code, message, opts = {}) {
      problems.push({ path, code, message, severity: opts.severity ?? 'error', at: opts.at ?? 'value' })
    },
    where(path) {
      const loc = positions.locate(path)
      return loc.line === 0 ? loc.file : `line ${loc.line}`
    },
  }
  checkPeers(ctx)
  checkNetwork(ctx)
  checkMultipath(ctx)
  problems.push(...checkNotImplemented(raw))
  return problems
}
