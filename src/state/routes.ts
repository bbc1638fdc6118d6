/**
 * Mesh routing: from what this node is configured with and what its connected
 * peers told it (their hellos), compute the forwarding table the engine runs
 * and the kernel routes the reconciler installs. Pure: no sockets, no clock.
 *
 * Trust rules (a peer is authenticated, not trusted):
 * - a peer's overlay address must lie in our overlay range and be neither ours
 *   nor already claimed by another connected peer;
 * - an advertised subnet must be a canonical CIDR that does not overlap our
 *   overlay range or a subnet we advertise ourselves; a default route is only
 *   taken from a peer that our own `routes` names as the exit for it;
 * - the first peer to claim a prefix keeps it (peers are ordered by key, so
 *   every node decides the same way); later claims are rejected and reported.
 */
import type { Config } from '../config/types.js'
import { parseAddress, parsePrefix, prefixesOverlap, WIDTH, type Prefix } from '../net/index.js'

/** One forwarding-table entry: destination prefix → peer (base64 key). */
export interface FibEntry {
  readonly prefix: string
  readonly peer: string
}

export interface Rejection {
  readonly peer: string
  readonly what: string
  readonly reason: string
}

export interface MeshRoutes {
  /** What the engine forwards, sorted by prefix. */
  readonly fib: readonly FibEntry[]
  /**
   * Subnets peers advertised and we accepted: the kernel routes them into the
   * overlay TUN (the overlay range and configured routes are routed from the
   * config itself, by the reconciler's desired state).
   */
  readonly learned: readonly { readonly prefix: string; readonly peer: string }[]
  readonly rejected: readonly Rejection[]
}

/** What a peer's hello tells the router: its overlay addresses and the subnets it advertises. */
export interface PeerHello {
  readonly overlay: { readonly ipv4: string | null; readonly ipv6: string | null }
  readonly subnets: readonly string[]
}

/** A connected peer as the router sees it: its pinned key, its config name (if any) and its last hello. */
export interface ConnectedPeer {
  readonly key: string
  readonly configName: string | null
  readonly hello: PeerHello | null
  /**
   * A member admitted by certificate: the overlay addresses and subnets its
   * certificate names, the most its hello may claim. Absent or null: a
   * pinned peer, limited only by the rules above.
   */
  readonly limits?: { readonly overlay: readonly string[]; readonly subnets: readonly string[] } | null
}

type Cidr = Prefix

/** A canonical prefix (host bits clear, so one prefix has one spelling), or null. */
function parseCidr(text: string): Cidr | null {
  return parsePrefix(text).value ?? null
}

function canonical(c: Cidr): string {
  return c.cidr
}

const overlaps = prefixesOverlap

function hostPrefix(addr: string): Cidr | null {
  const ip = parseAddress(addr).value
  return ip ? (parsePrefix(`${ip.text}/${WIDTH[ip.family]}`).value ?? null) : null
}

export function computeMeshRoutes(config: Pick<Config, 'network' | 'subnets' | 'routes'>, self: { ipv4: string; ipv6: string }, peers: readonly ConnectedPeer[]): MeshRoutes {
  const overlay4 = parseCidr(config.network.overlay.ipv4)
  const overlay6 = parseCidr(config.network.overlay.ipv6)
  const overlays = [overlay4, overlay6].filter((c): c is Cidr => c !== null)
  const ownSubnets = config.subnets.map((s) => parseCidr(s.prefix)).filter((c): c is Cidr => c !== null)
  const claimed = new Map<string, string>() // canonical prefix → peer key
  for (const a of [self.ipv4, self.ipv6]) {
    const h = hostPrefix(a)
    if (h) claimed.set(canonical(h), '(self)')
  }
  const fib: FibEntry[] = []
  const learned: { prefix: string; peer: string }[] = []
  const rejected: Rejection[] = []
  const exitFor = new Map<string, Set<string>>() // peer name → default prefixes our routes send there
  for (const r of config.routes) {
    const c = parseCidr(r.to)
    if (c && c.prefixLen === 0) exitFor.set(r.via, (exitFor.get(r.via) ?? new Set()).add(canonical(c)))
  }

  const sorted = [...peers].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const claim = (peer: string, c: Cidr, what: string): boolean => {
    const p = canonical(c)
    const owner = claimed.get(p)
    if (owner !== undefined) {
      rejected.push({ peer, what, reason: owner === '(self)' ? 'is this node\'s own address' : 'already claimed by another peer' })
      return false
    }
    claimed.set(p, peer)
    fib.push({ prefix: p, peer })
    return true
  }

  for (const peer of sorted) {
    const hello = peer.hello
    if (!hello) continue
    for (const addr of [hello.overlay.ipv4, hello.overlay.ipv6]) {
      if (addr === null) continue
      const h = hostPrefix(addr)
      if (!h) {
        rejected.push({ peer: peer.key, what: `overlay address ${addr}`, reason: 'not an IP address' })
        continue
      }
      if (!overlays.some((o) => overlaps(o, h))) {
        rejected.push({ peer: peer.key, what: `overlay address ${addr}`, reason: 'outside the overlay range' })
        continue
      }
      if (peer.limits && !peer.limits.overlay.some((a) => hostPrefix(a)?.cidr === h.cidr)) {
        rejected.push({ peer: peer.key, what: `overlay address ${addr}`, reason: 'not an address its certificate names' })
        continue
      }
      claim(peer.key, h, `overlay address ${addr}`)
    }
    for (const s of hello.subnets) {
      const c = parseCidr(s)
      const what = `subnet ${s}`
      if (!c) {
        rejected.push({ peer: peer.key, what, reason: 'not a canonical CIDR' })
        continue
      }
      if (peer.limits && !peer.limits.subnets.some((l) => { const lc = parseCidr(l); return lc !== null && lc.family === c.family && lc.prefixLen <= c.prefixLen && overlaps(lc, c) })) {
        rejected.push({ peer: peer.key, what, reason: 'not within the subnets its certificate allows' })
        continue
      }
      if (c.prefixLen === 0) {
        // A default route contains everything; only our own routes can make a peer our exit.
        if (!(peer.configName !== null && exitFor.get(peer.configName)?.has(canonical(c)))) {
          rejected.push({ peer: peer.key, what, reason: 'a default route is only accepted from a peer this node\'s routes name as its exit' })
          continue
        }
      } else if (overlays.some((o) => overlaps(o, c))) {
        rejected.push({ peer: peer.key, what, reason: 'overlaps the overlay range' })
        continue
      } else if (ownSubnets.some((o) => overlaps(o, c))) {
        rejected.push({ peer: peer.key, what, reason: 'overlaps a subnet this node advertises' })
        continue
      }
      if (claim(peer.key, c, what)) learned.push({ prefix: canonical(c), peer: peer.key })
    }
  }

  // Configured routes: the operator's word beats what peers advertise. The
  // kernel routes them into the overlay whether or not the peer is up (the
  // reconciler's desired state does), so traffic never leaks out the default
  // route while the peer is away; the FIB sends them once it is.
  const byName = new Map(sorted.filter((p) => p.configName !== null).map((p) => [p.configName as string, p.key]))
  for (const r of config.routes) {
    const c = parseCidr(r.to)
    if (!c) continue
    const p = canonical(c)
    const key = byName.get(r.via)
    if (key === undefined) continue
    const i = fib.findIndex((e) => e.prefix === p)
    if (i >= 0) fib.splice(i, 1)
    fib.push({ prefix: p, peer: key })
  }

  const byPrefix = (a: { prefix: string }, b: { prefix: string }) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0)
  fib.sort(byPrefix)
  learned.sort(byPrefix)
  return { fib, learned, rejected }
}
