/**
 * Mesh routing: from what this node is configured with and what its connected
 * peers told it (their hellos), compute the forwarding table the engine runs
 * and the kernel routes the reconciler installs. Pure: no sockets, no clock.
 *
 * Trust rules (a peer is authenticated, not trusted):
 * - a peer's overlay address must lie in our overlay range and be neither ours
 *   nor already claimed by another connected peer (the lower key keeps it);
 * - an advertised subnet must be a canonical CIDR that does not overlap our
 *   overlay range or a subnet we advertise ourselves, and a certified member
 *   may claim only within the subnets its certificate allows;
 * - a default route (an exit) is taken only from a gateway, and only from the
 *   peer this node's `exit-node` (or a route to `/0`) names;
 * - routes through a hub (`via`, a gateway's `forward-for`) are taken only
 *   from gateways, never for a prefix a direct peer claims, never for a
 *   default route, and from a certified hub only within its certificate.
 *
 * Choices, the same on every node for the same facts:
 * - two gateways advertising one subnet: the one not silent (`stale`), then
 *   the lower priority, then the higher advertised bandwidth, then the lower
 *   RTT (the current one is kept unless another is clearly nearer), then the
 *   lower key; the other stands by and takes over when the first dies;
 * - two hubs for one prefix: not silent, lower RTT, lower key.
 */
import type { Config } from '../config/types.js'
import { parseAddress, parsePrefix, prefixesOverlap, WIDTH, type Family, type Prefix } from '../net/index.js'

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

/** What happens to this node's internet traffic (one family). */
export interface ExitRoute {
  /** The exit peer's name this node's config asks for; null: none asked. */
  readonly wanted: string | null
  /** `tunnel`: through `peer`; `off`: the node's own default route; `block`: nowhere (exit-node-required while it is down). */
  readonly mode: 'off' | 'tunnel' | 'block'
  /** The exit's key while `mode` is `tunnel`. */
  readonly peer: string | null
}

export interface MeshRoutes {
  /** What the engine forwards, sorted by prefix. */
  readonly fib: readonly FibEntry[]
  /**
   * Subnets peers advertised (or hubs route) and we accepted: the kernel routes
   * them into the overlay TUN (the overlay range and configured routes are
   * routed from the config itself, by the reconciler's desired state).
   */
  readonly learned: readonly { readonly prefix: string; readonly peer: string }[]
  readonly rejected: readonly Rejection[]
  /** Subnets a second gateway also advertises: it takes over when the chosen one dies. */
  readonly standby?: readonly { readonly prefix: string; readonly peer: string }[]
  /** FIB entries that go through a hub (the prefix's owner has no tunnel with this node). */
  readonly hubbed?: readonly FibEntry[]
  /** The exit of each family. */
  readonly exit?: { readonly ipv4: ExitRoute; readonly ipv6: ExitRoute }
}

/** What a peer's hello tells the router. */
export interface PeerHello {
  readonly overlay: { readonly ipv4: string | null; readonly ipv6: string | null }
  readonly subnets: readonly string[]
  /** Its role: only gateways may be exits and hubs. Absent: treated as a client. */
  readonly role?: 'client' | 'gateway' | 'bootstrap'
  /** Priority of each subnet, in `subnets` order (lower is preferred); absent: 100 each. */
  readonly priorities?: readonly number[]
  /** Advertised bandwidth, bits/s. */
  readonly bandwidth?: number
  /** Prefixes this hub routes for the receiver (its `forward-for`). */
  readonly via?: readonly string[]
  /** The exit (node name) the peer sends its internet traffic through now. */
  readonly exit?: string
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
  /** Up, but nothing heard from it for longer than it should be silent: it is treated as gone where another peer can take over. */
  readonly stale?: boolean
  /** Smoothed RTT, ms (for choosing among gateways); absent: unknown. */
  readonly rttMs?: number
}

/** Default priority of an advertised subnet (config `subnets[].priority`). */
export const DEFAULT_SUBNET_PRIORITY = 100
/** Another gateway must be this much nearer (RTT ratio) to take a subnet from the current one. */
const RTT_SWITCH_RATIO = 0.7

type Cidr = Prefix

/** A canonical prefix (host bits clear, so one prefix has one spelling), or null. */
function parseCidr(text: string): Cidr | null {
  return parsePrefix(text).value ?? null
}

const overlaps = prefixesOverlap

function hostPrefix(addr: string): Cidr | null {
  const ip = parseAddress(addr).value
  return ip ? (parsePrefix(`${ip.text}/${WIDTH[ip.family]}`).value ?? null) : null
}

function isHost(c: Cidr): boolean {
  return c.prefixLen === WIDTH[c.family]
}

function within(limits: readonly string[], c: Cidr): boolean {
  return limits.some((l) => {
    const lc = parseCidr(l)
    return lc !== null && lc.family === c.family && lc.prefixLen <= c.prefixLen && overlaps(lc, c)
  })
}

interface Candidate {
  readonly peer: ConnectedPeer
  readonly priority: number
  readonly bandwidth: number
}

const byKey = (a: { key: string }, b: { key: string }): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

/** The better of two gateways for one subnet (see the header); `current` is the peer that holds it now. */
function better(a: Candidate, b: Candidate, current: string | undefined): number {
  const sa = a.peer.stale === true ? 1 : 0
  const sb = b.peer.stale === true ? 1 : 0
  if (sa !== sb) return sa - sb
  if (a.priority !== b.priority) return a.priority - b.priority
  if (a.bandwidth !== b.bandwidth) return b.bandwidth - a.bandwidth
  return nearer(a.peer, b.peer, current)
}

/** RTT with hysteresis: the current holder keeps it unless the other is clearly nearer; unknown RTTs compare by key. */
function nearer(a: ConnectedPeer, b: ConnectedPeer, current: string | undefined): number {
  const ra = a.rttMs
  const rb = b.rttMs
  if (ra !== undefined && rb !== undefined && ra > 0 && rb > 0) {
    if (a.key === current && ra <= rb / RTT_SWITCH_RATIO) return -1
    if (b.key === current && rb <= ra / RTT_SWITCH_RATIO) return 1
    if (ra !== rb) return ra - rb
  }
  return byKey(a, b)
}

export function computeMeshRoutes(
  config: Pick<Config, 'network' | 'subnets' | 'routes'> & { readonly exit?: Config['exit'] },
  self: { ipv4: string; ipv6: string },
  peers: readonly ConnectedPeer[],
  previous: MeshRoutes | null = null,
): MeshRoutes {
  const overlays = [config.network.overlay.ipv4, config.network.overlay.ipv6].map(parseCidr).filter((c): c is Cidr => c !== null)
  const ownSubnets = config.subnets.map((s) => parseCidr(s.prefix)).filter((c): c is Cidr => c !== null && c.prefixLen > 0)
  const claimed = new Map<string, string>() // canonical prefix → peer key
  for (const a of [self.ipv4, self.ipv6]) {
    const h = hostPrefix(a)
    if (h) claimed.set(h.cidr, '(self)')
  }
  const fib: FibEntry[] = []
  const learned: { prefix: string; peer: string }[] = []
  const rejected: Rejection[] = []
  const standby: { prefix: string; peer: string }[] = []
  const hubbed: FibEntry[] = []
  const current = new Map((previous?.fib ?? []).map((e) => [e.prefix, e.peer]))
  const sorted = [...peers].sort(byKey)

  const claim = (peer: string, c: Cidr, what: string): boolean => {
    const owner = claimed.get(c.cidr)
    if (owner !== undefined) {
      rejected.push({ peer, what, reason: owner === '(self)' ? 'is this node\'s own address' : 'already claimed by another peer' })
      return false
    }
    claimed.set(c.cidr, peer)
    fib.push({ prefix: c.cidr, peer })
    return true
  }

  // 1. Overlay addresses: identities, first (lowest key) claim wins.
  for (const peer of sorted) {
    const hello = peer.hello
    if (!hello) continue
    for (const addr of [hello.overlay.ipv4, hello.overlay.ipv6]) {
      if (addr === null) continue
      const h = hostPrefix(addr)
      const what = `overlay address ${addr}`
      if (!h) rejected.push({ peer: peer.key, what, reason: 'not an IP address' })
      else if (!overlays.some((o) => overlaps(o, h))) rejected.push({ peer: peer.key, what, reason: 'outside the overlay range' })
      else if (peer.limits && !peer.limits.overlay.some((a) => hostPrefix(a)?.cidr === h.cidr)) rejected.push({ peer: peer.key, what, reason: 'not an address its certificate names' })
      else claim(peer.key, h, what)
    }
  }

  // 2. Subnets: checked per peer, then one gateway chosen per prefix. Default routes are exits (3).
  const wanted = wantedExits(config)
  const exitOffers = new Map<Family, ConnectedPeer[]>([[4, []], [6, []]])
  const subnetCandidates = new Map<string, { cidr: Cidr; list: Candidate[] }>()
  for (const peer of sorted) {
    const hello = peer.hello
    if (!hello) continue
    hello.subnets.forEach((s, i) => {
      const c = parseCidr(s)
      const what = `subnet ${s}`
      if (!c || c.cidr !== s) {
        rejected.push({ peer: peer.key, what, reason: 'not a canonical CIDR' })
        return
      }
      if (peer.limits && !within(peer.limits.subnets, c)) {
        rejected.push({ peer: peer.key, what, reason: 'not within the subnets its certificate allows' })
        return
      }
      if (c.prefixLen === 0) {
        if (hello.role !== 'gateway') rejected.push({ peer: peer.key, what, reason: `an exit is only taken from a gateway, and this peer is a ${hello.role ?? 'client'}` })
        else if (peer.configName === null || wanted[c.family] !== peer.configName) {
          // An exit this node does not use: nothing to route, nothing wrong.
        } else exitOffers.get(c.family)!.push(peer)
        return
      }
      if (overlays.some((o) => overlaps(o, c))) {
        rejected.push({ peer: peer.key, what, reason: 'overlaps the overlay range' })
        return
      }
      if (ownSubnets.some((o) => overlaps(o, c))) {
        rejected.push({ peer: peer.key, what, reason: 'overlaps a subnet this node advertises' })
        return
      }
      const priority = hello.priorities?.[i]
      const entry = subnetCandidates.get(c.cidr) ?? { cidr: c, list: [] }
      entry.list.push({ peer, priority: typeof priority === 'number' && Number.isFinite(priority) ? priority : DEFAULT_SUBNET_PRIORITY, bandwidth: hello.bandwidth ?? 0 })
      subnetCandidates.set(c.cidr, entry)
    })
  }
  for (const [prefix, { cidr, list }] of subnetCandidates) {
    const ranked = [...list].sort((a, b) => better(a, b, current.get(prefix)))
    const best = ranked[0]!
    if (claim(best.peer.key, cidr, `subnet ${prefix}`)) learned.push({ prefix, peer: best.peer.key })
    for (const other of ranked.slice(1)) standby.push({ prefix, peer: other.peer.key })
  }

  // 3. Exits.
  const exit = { ipv4: exitRoute(4, wanted, exitOffers, config), ipv6: exitRoute(6, wanted, exitOffers, config) }
  for (const [family, e] of [[4, exit.ipv4], [6, exit.ipv6]] as const) {
    if (e.mode === 'tunnel' && e.peer !== null) fib.push({ prefix: family === 4 ? '0.0.0.0/0' : '::/0', peer: e.peer })
  }

  // 4. Through hubs: what no direct peer claims.
  const hubCandidates = new Map<string, { cidr: Cidr; list: ConnectedPeer[] }>()
  for (const peer of sorted) {
    const via = peer.hello?.via
    if (!via || via.length === 0) continue
    if (peer.hello?.role !== 'gateway') {
      rejected.push({ peer: peer.key, what: `${via.length} route(s) through it`, reason: 'only a gateway routes for other members (gateway.forward-for)' })
      continue
    }
    for (const s of via) {
      const c = parseCidr(s)
      const what = `route through it to ${s}`
      if (!c || c.cidr !== s) rejected.push({ peer: peer.key, what, reason: 'not a canonical CIDR' })
      else if (c.prefixLen === 0) rejected.push({ peer: peer.key, what, reason: 'a default route is an exit, never a hub route' })
      else if (peer.limits && !within(peer.limits.subnets, c)) rejected.push({ peer: peer.key, what, reason: 'not within the subnets its certificate allows' })
      else if (overlays.some((o) => overlaps(o, c)) && !isHost(c)) rejected.push({ peer: peer.key, what, reason: 'overlaps the overlay range (a hub routes members\' own addresses only)' })
      else if (ownSubnets.some((o) => overlaps(o, c))) rejected.push({ peer: peer.key, what, reason: 'overlaps a subnet this node advertises' })
      else if (claimed.has(c.cidr)) {
        // A direct tunnel (or this node itself) already holds it: the hub is not needed.
      } else {
        const entry = hubCandidates.get(c.cidr) ?? { cidr: c, list: [] }
        entry.list.push(peer)
        hubCandidates.set(c.cidr, entry)
      }
    }
  }
  for (const [prefix, { cidr, list }] of hubCandidates) {
    const cur = current.get(prefix)
    const best = [...list].sort((a, b) => ((a.stale === true ? 1 : 0) - (b.stale === true ? 1 : 0)) || nearer(a, b, cur))[0]!
    claimed.set(prefix, best.key)
    fib.push({ prefix, peer: best.key })
    hubbed.push({ prefix, peer: best.key })
    if (!overlays.some((o) => overlaps(o, cidr))) learned.push({ prefix, peer: best.key })
  }

  // 5. Configured routes: the operator's word beats what peers advertise. The
  // kernel routes them into the overlay whether or not the peer is up (the
  // reconciler's desired state does), so traffic never leaks out the default
  // route while the peer is away; the FIB sends them once it is. Default
  // routes are exits (3).
  const byName = new Map(sorted.filter((p) => p.configName !== null).map((p) => [p.configName as string, p.key]))
  for (const r of config.routes) {
    const c = parseCidr(r.to)
    if (!c || c.prefixLen === 0) continue
    const key = byName.get(r.via)
    if (key === undefined) continue
    const i = fib.findIndex((e) => e.prefix === c.cidr)
    if (i >= 0) fib.splice(i, 1)
    fib.push({ prefix: c.cidr, peer: key })
  }

  const byPrefix = (a: { prefix: string }, b: { prefix: string }) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0)
  fib.sort(byPrefix)
  learned.sort(byPrefix)
  standby.sort(byPrefix)
  hubbed.sort(byPrefix)
  return { fib, learned, rejected, standby, hubbed, exit }
}

/** The exit peer (by name) this node's config asks for, per family: `exit-node`, or a route to `/0` via a peer. */
export function wantedExits(config: Pick<Config, 'routes'> & { readonly exit?: Config['exit'] }): Record<Family, string | null> {
  const out: Record<Family, string | null> = { 4: config.exit?.node ?? null, 6: config.exit?.node ?? null }
  for (const r of config.routes) {
    const c = parseCidr(r.to)
    if (c && c.prefixLen === 0) out[c.family] = r.via
  }
  return out
}

function exitRoute(family: Family, wanted: Record<Family, string | null>, offers: Map<Family, ConnectedPeer[]>, config: { readonly exit?: Config['exit'] }): ExitRoute {
  const name = wanted[family]
  if (name === null) return { wanted: null, mode: 'off', peer: null }
  const live = (offers.get(family) ?? []).find((p) => p.stale !== true)
  if (live) return { wanted: name, mode: 'tunnel', peer: live.key }
  return { wanted: name, mode: config.exit?.required === true ? 'block' : 'off', peer: null }
}

/**
 * What a hub tells one member it routes for it (the hello's `via`): its own
 * direct routes (peers' overlay addresses and subnets) that `forward-for`
 * joins, when the receiver is joined too; never the receiver's own.
 *
 * `forward-for` joins members named there, members whose overlay address lies
 * in a prefix there, and prefixes there.
 */
export function hubAdvertisement(
  config: Pick<Config, 'gateway' | 'node'>,
  routes: MeshRoutes,
  peers: readonly Pick<ConnectedPeer, 'key' | 'configName' | 'hello'>[],
  receiver: string,
): string[] {
  if (config.node.role !== 'gateway' || config.gateway.forwardFor.length === 0) return []
  const names = new Set(config.gateway.forwardFor.flatMap((f) => (f.kind === 'peer' ? [f.peer] : [])))
  const cidrs = config.gateway.forwardFor.flatMap((f) => (f.kind === 'cidr' ? [parseCidr(f.cidr)] : [])).filter((c): c is Cidr => c !== null)
  const inCidrs = (c: Cidr): boolean => cidrs.some((x) => x.family === c.family && x.prefixLen <= c.prefixLen && overlaps(x, c))
  const joined = (p: Pick<ConnectedPeer, 'configName' | 'hello'> | undefined): boolean => {
    if (!p) return false
    if (p.configName !== null && names.has(p.configName)) return true
    return [p.hello?.overlay.ipv4, p.hello?.overlay.ipv6].some((a) => {
      const h = a ? hostPrefix(a) : null
      return h !== null && inCidrs(h)
    })
  }
  const byKeyMap = new Map(peers.map((p) => [p.key, p]))
  if (!joined(byKeyMap.get(receiver))) return []
  const hubbed = new Set((routes.hubbed ?? []).map((e) => e.prefix))
  const out: string[] = []
  for (const e of routes.fib) {
    if (e.peer === receiver || hubbed.has(e.prefix)) continue
    const c = parseCidr(e.prefix)
    if (!c || c.prefixLen === 0) continue
    if (joined(byKeyMap.get(e.peer)) || inCidrs(c)) out.push(e.prefix)
  }
  return out.sort()
}
