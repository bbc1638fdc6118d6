/**
 * The firewall slice of desired state: the one nftables table a node owns
 * (`table inet quicether-<tun>`), as plain data and as the nft script that
 * replaces it whole. Pure: `src/system/nftables.ts` runs the script, the node
 * reconciler applies it between the kernel slice and the engine's.
 *
 * Chains:
 * - `postrouting` (nat, srcnat): masquerade what an exit forwards from the
 *   mesh out of any other interface; what the mesh sends into a masqueraded
 *   LAN; and DNATed ingress toward a target that would not reply through us;
 * - `prerouting` (nat, dstnat): ingress DNAT of public ports to mesh members;
 * - `forward` (filter, mangle priority): TCP MSS clamped to the route MTU for
 *   SYNs entering or leaving the TUN (the tunnel's MTU is below the LAN's).
 *
 * The table carries the state's hash in its comment: a read-back compares
 * hashes, and drift repair re-applies when someone flushed the ruleset.
 */
import { createHash } from 'node:crypto'
import type { ValidationIssue } from './types.js'

export interface IngressRule {
  readonly proto: 'tcp' | 'udp'
  readonly family: 4 | 6
  /** Address to listen on; null = every address of the family on this node. */
  readonly listenAddress: string | null
  readonly listenPort: number
  /** The target: an overlay (or LAN) address in the mesh, and its port. */
  readonly toAddress: string
  readonly toPort: number
  /** Masquerade toward the target (it would not route replies back through this node); false: the client's source is kept. */
  readonly masquerade: boolean
}

export interface FirewallInputs {
  /** The overlay TUN's name (`qe0`); also makes the table name unique. */
  readonly tun: string
  /** This node offers an exit for the family. */
  readonly exit: { readonly ipv4: boolean; readonly ipv6: boolean }
  /** LAN prefixes to masquerade toward (canonical CIDR). */
  readonly masquerade: readonly string[]
  readonly ingress: readonly IngressRule[]
  /** Clamp TCP MSS for forwarded TCP crossing the TUN. */
  readonly clampMss: boolean
}

export interface FirewallState {
  readonly table: string
  readonly inputs: FirewallInputs
  /** Nothing to do: no table exists at all. */
  readonly empty: boolean
  readonly hash: string
}

export function tableName(tun: string): string {
  return `quicether-${tun}`
}

const byJson = (a: unknown, b: unknown): number => {
  const x = JSON.stringify(a)
  const y = JSON.stringify(b)
  return x < y ? -1 : x > y ? 1 : 0
}

export function firewallFromInputs(i: FirewallInputs): FirewallState {
  const inputs: FirewallInputs = {
    tun: i.tun,
    exit: { ipv4: i.exit.ipv4, ipv6: i.exit.ipv6 },
    masquerade: [...new Set(i.masquerade)].sort(),
    ingress: i.ingress
      .map((r) => ({ proto: r.proto, family: r.family, listenAddress: r.listenAddress, listenPort: r.listenPort, toAddress: r.toAddress, toPort: r.toPort, masquerade: r.masquerade }))
      .sort(byJson),
    clampMss: i.clampMss,
  }
  const empty = !inputs.exit.ipv4 && !inputs.exit.ipv6 && inputs.masquerade.length === 0 && inputs.ingress.length === 0 && !inputs.clampMss
  const hash = createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16)
  return { table: tableName(i.tun), inputs, empty, hash }
}

export function emptyFirewall(tun: string): FirewallState {
  return firewallFromInputs({ tun, exit: { ipv4: false, ipv6: false }, masquerade: [], ingress: [], clampMss: false })
}

const q = (s: string): string => JSON.stringify(s)
const ipKw = (family: 4 | 6): string => (family === 4 ? 'ip' : 'ip6')
const familyOf = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4)
const hostPort = (family: 4 | 6, addr: string, port: number): string => (family === 4 ? `${addr}:${port}` : `[${addr}]:${port}`)

/** The rule lines of each chain (without the chain header). */
function chains(s: FirewallState): { postrouting: string[]; prerouting: string[]; forward: string[] } {
  const { tun, exit, masquerade, ingress, clampMss } = s.inputs
  const post: string[] = []
  const pre: string[] = []
  const fwd: string[] = []
  if (exit.ipv4) post.push(`iifname ${q(tun)} oifname != ${q(tun)} meta nfproto ipv4 masquerade`)
  if (exit.ipv6) post.push(`iifname ${q(tun)} oifname != ${q(tun)} meta nfproto ipv6 masquerade`)
  for (const p of masquerade) post.push(`iifname ${q(tun)} oifname != ${q(tun)} ${ipKw(familyOf(p))} daddr ${p} masquerade`)
  for (const r of ingress) {
    const ip = ipKw(r.family)
    const dst = r.listenAddress !== null ? `${ip} daddr ${r.listenAddress} ` : ''
    pre.push(`iifname != ${q(tun)} meta nfproto ipv${r.family} ${dst}${r.proto} dport ${r.listenPort} dnat ${ip} to ${hostPort(r.family, r.toAddress, r.toPort)}`)
    if (r.masquerade) post.push(`oifname ${q(tun)} ct status dnat ${ip} daddr ${r.toAddress} ${r.proto} dport ${r.toPort} masquerade`)
  }
  if (clampMss) {
    fwd.push(`iifname ${q(tun)} tcp flags syn / syn,rst tcp option maxseg size set rt mtu`)
    fwd.push(`oifname ${q(tun)} tcp flags syn / syn,rst tcp option maxseg size set rt mtu`)
  }
  return { postrouting: post, prerouting: pre, forward: fwd }
}

/** The nft script that replaces the table whole, in one transaction (or deletes it when `s` is empty). */
export function renderNft(s: FirewallState): string {
  // Declaring the table first makes the delete valid whether or not it exists.
  const lines = [`table inet ${s.table} {}`, `delete table inet ${s.table}`]
  if (s.empty) return lines.join('\n') + '\n'
  const c = chains(s)
  lines.push(`table inet ${s.table} {`, `  comment ${q(`qe:${s.hash}`)}`)
  lines.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', ...c.prerouting.map((l) => `    ${l}`), '  }')
  lines.push('  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;', ...c.postrouting.map((l) => `    ${l}`), '  }')
  lines.push('  chain forward {', '    type filter hook forward priority mangle; policy accept;', ...c.forward.map((l) => `    ${l}`), '  }')
  lines.push('}')
  return lines.join('\n') + '\n'
}

/** One people's line of a firewall plan: `+ firewall nat masquerade qe0 → 192.168.7.0/24`, `~ firewall ingress …`. */
export interface FirewallAction {
  readonly op: 'add' | 'del' | 'change'
  readonly text: string
}

const anyAddress = (family: 4 | 6): string => (family === 4 ? '0.0.0.0' : '::')
const ingressListen = (r: IngressRule): string => `${r.proto} ${hostPort(r.family, r.listenAddress ?? anyAddress(r.family), r.listenPort)}`
const ingressTarget = (r: IngressRule): string => `${hostPort(r.family, r.toAddress, r.toPort)}${r.masquerade ? ' (masqueraded)' : ' (source kept)'}`

/** The lines of everything but ingress (which is keyed by its listen side, so a new target reads as a change). */
function describe(s: FirewallState | null): string[] {
  if (s === null || s.empty) return []
  const { tun, exit, masquerade } = s.inputs
  const out: string[] = []
  if (exit.ipv4) out.push(`nat masquerade ${tun} → any other interface (exit, ipv4)`)
  if (exit.ipv6) out.push(`nat masquerade ${tun} → any other interface (exit, ipv6)`)
  for (const p of masquerade) out.push(`nat masquerade ${tun} → ${p}`)
  return out
}

const clamp = (s: FirewallState | null): string[] => (s !== null && !s.empty && s.inputs.clampMss ? [`mss clamp on ${s.inputs.tun}`] : [])

/**
 * People's lines for what turns `have` into `want`: additions, then changes,
 * then removals, each in the state's order; empty when equal. `have` null:
 * nothing installed. An ingress whose listen side stays and whose target or
 * masquerading changes is one `~` line.
 */
export function diffFirewall(want: FirewallState, have: FirewallState | null): FirewallAction[] {
  const w = describe(want)
  const h = describe(have)
  const hs = new Set(h)
  const ws = new Set(w)
  const wi = want.empty ? [] : want.inputs.ingress
  const hi = have === null || have.empty ? [] : have.inputs.ingress
  const key = (r: IngressRule): string => ingressListen(r)
  const hByKey = new Map(hi.map((r) => [key(r), r]))
  const wByKey = new Map(wi.map((r) => [key(r), r]))
  const add: FirewallAction[] = w.filter((x) => !hs.has(x)).map((text) => ({ op: 'add', text: `+ firewall ${text}` }))
  const change: FirewallAction[] = []
  const del: FirewallAction[] = h.filter((x) => !ws.has(x)).map((text) => ({ op: 'del', text: `- firewall ${text}` }))
  for (const r of wi) {
    const prev = hByKey.get(key(r))
    if (!prev) add.push({ op: 'add', text: `+ firewall ingress ${ingressListen(r)} → ${ingressTarget(r)}` })
    else if (ingressTarget(prev) !== ingressTarget(r)) change.push({ op: 'change', text: `~ firewall ingress ${ingressListen(r)} → ${ingressTarget(r)} (was → ${ingressTarget(prev)})` })
  }
  for (const r of hi) if (!wByKey.has(key(r))) del.push({ op: 'del', text: `- firewall ingress ${ingressListen(r)} → ${ingressTarget(r)}` })
  const wc = clamp(want)
  const hc = clamp(have)
  for (const x of wc) if (!hc.includes(x)) add.push({ op: 'add', text: `+ firewall ${x}` })
  for (const x of hc) if (!wc.includes(x)) del.push({ op: 'del', text: `- firewall ${x}` })
  return [...add, ...change, ...del]
}

/** A socket something on this machine listens on (TCP) or is bound to (UDP), as `/proc/net` shows it. */
export interface ListeningSocket {
  readonly proto: 'tcp' | 'udp'
  readonly family: 4 | 6
  readonly address: string
  readonly port: number
}

const isWildcard = (address: string): boolean => address === '0.0.0.0' || address === '::'

/**
 * The ingress rules that cannot be installed, as errors that stop an apply
 * before anything changes: a listen side forwarded twice
 * (`QE_INGRESS_DUPLICATE`), and a port a local socket listens on
 * (`QE_INGRESS_PORT_IN_USE`: the DNAT would take that service's traffic from
 * outside, e.g. lock people out of ssh). A socket on the wildcard, or an
 * ingress on every address, overlaps any address; a v6 socket on `::` takes
 * v4 too (dual stack). Our own DNAT binds no socket, so an installed table
 * never counts against itself.
 */
export function ingressIssues(want: FirewallState, listening: readonly ListeningSocket[]): ValidationIssue[] {
  const issues: ValidationIssue[] = []
  const seen = new Set<string>()
  for (const r of want.empty ? [] : want.inputs.ingress) {
    const where = ingressListen(r)
    if (seen.has(where)) issues.push({ severity: 'error', code: 'QE_INGRESS_DUPLICATE', message: `ingress ${where} is forwarded twice; keep one listen address and port per target` })
    seen.add(where)
    const busy = listening.find(
      (l) => l.proto === r.proto && l.port === r.listenPort && (l.family === r.family || l.address === '::') && (r.listenAddress === null || isWildcard(l.address) || l.address === r.listenAddress),
    )
    if (busy) {
      issues.push({ severity: 'error', code: 'QE_INGRESS_PORT_IN_USE', message: `ingress ${where}: port ${r.listenPort} is in use by a listening socket on this node (${hostPort(busy.family, busy.address, busy.port)}); choose another listen port` })
    }
  }
  return issues
}
