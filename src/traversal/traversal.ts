/**
 * NAT traversal: how two members that cannot simply dial each other get a
 * tunnel anyway (issue 14).
 *
 * 1. Reflexive addresses. When a tunnel comes up each side tells the other
 *    where its packets came from (`observed`). Those addresses go into this
 *    node's record as candidates, next to its local ones. One reported by a
 *    bootstrap or relay node is believed at once; one from any other peer
 *    only when a second peer at another IP saw the same (a lying member
 *    cannot plant an address alone). Reports also tell how this node's NAT
 *    maps (see `mappingBehaviour`).
 * 2. Introductions and punching. For a member that is not connected, this
 *    node asks mediators (connected peers: relays and bootstrap nodes first)
 *    to introduce it. A mediator connected to both sends each side the
 *    other's candidates (the address it sees first) and one shared token;
 *    both then punch from the tunnel socket every 50 ms. A punch that
 *    arrives proves a path: its source (peer-reflexive) is dialled at once,
 *    and punched from then on. The engine's tie-break keeps one of crossed
 *    dials. Punches without a live token are refused and counted.
 * 3. Relays. When a punching window passes without a tunnel (both NATs map
 *    per destination, or filter), the side with the lower key asks a relay
 *    (lowest RTT first, then most advertised bandwidth) for a pair of ports;
 *    both sides bind theirs from the tunnel socket and the lower side dials
 *    through it with `relayed: true`. The relay forwards QUIC packets it
 *    cannot read. The pair keeps asking for introductions (5 s, doubling to
 *    2 min): a direct tunnel replaces the relayed one in the engine, and the
 *    hello and routes carry over (src/mesh/mesh.ts).
 * 4. Roaming. A client tunnel follows its node to a new address by itself
 *    (QUIC connection migration: the server validates the new path). When an
 *    address of this node goes away, tunnels where it is the server cannot
 *    follow, so they are closed and dialled again (or punched) at once.
 *
 * Traversal sets no tables: it sends control messages and raw datagrams and
 * asks the engine to dial, like the mesh.
 */
import { randomBytes } from 'node:crypto'
import type { Config, Endpoint } from '../config/types.js'
import { formatEndpoint } from '../discovery/record.js'
import type { Generation } from '../daemon/generation.js'
import type { Subsystem } from '../daemon/subsystem.js'
import type { EngineStats } from '../engine/types.js'
import type { Logger } from '../log.js'
import { PROTOCOL_VERSION, type ControlMessage, type HelloMessage, type TraversalMessage } from '../mesh/messages.js'
import { isDialable, type Prefix } from '../net/index.js'
import { checkCandidates, isLan, lanPrefixes, mappingBehaviour, rankEndpoints, type MappingBehaviour } from './candidates.js'
import { decodePunch, encodePunch, TOKEN_BYTES } from './punch-wire.js'
import { decodeBound, encodeBind } from './relay-wire.js'

/** What traversal needs from the forwarding plane. */
export interface TraversalEngine {
  connect(endpoint: { address: string; port: number }, options?: { relayed?: boolean }): void
  disconnect(peer: string): void
  sendRaw(endpoint: { address: string; port: number }, data: Uint8Array): void
  stats(): EngineStats
}

/** A connected peer as the mesh knows it. */
export interface TraversalPeer {
  readonly key: string
  readonly name: string | null
  readonly remote: { readonly address: string; readonly port: number }
  readonly hello: HelloMessage | null
}

/** A pair of ports on a relay (src/traversal/relay-server.ts): one per member, each with its token. */
export interface RelayAllocation {
  readonly id: string
  readonly a: { readonly port: number; readonly token: Buffer }
  readonly b: { readonly port: number; readonly token: Buffer }
}

export interface RelayLike {
  allocate(a: { key: string; ip: string }, b: { key: string; ip: string }): Promise<RelayAllocation>
  stop(): void
  stats(): unknown
}

export interface RelayOptions {
  /** Address the relay's ports bind to. */
  readonly bind: string
  /** Per pair and direction, bytes/s. */
  readonly rateBps?: number
  readonly log: Logger
}

export interface TraversalComponents {
  readonly log: Logger
  readonly engine: () => TraversalEngine | null
  /** Sends a control message to a connected peer (may throw when it just went away). */
  readonly send: (peer: string, msg: ControlMessage) => void
  readonly connected: () => readonly TraversalPeer[]
  /** The admitted peers (pinned and certified) by key, with the endpoints config or records give. */
  readonly members: () => readonly { readonly key: string; readonly name: string; readonly endpoints: readonly Endpoint[] }[]
  /** This node's local tunnel endpoints (interfaces, listen address, public-address). */
  readonly localEndpoints: () => readonly Endpoint[]
  readonly listenPort: () => number
  /** This node's reflexive endpoints changed (its record should say so). */
  readonly onCandidatesChanged?: () => void
  readonly now?: () => number
  /** The relay server, for a node that relays. */
  readonly createRelay: (opts: RelayOptions) => RelayLike
  /** Interfaces, for tests. */
  readonly lans?: () => Prefix[]
}

export type TraversalRefusal = 'punch' | 'intro' | 'observed' | 'relay' | 'relay-answer' | 'raw'

export interface TraversalPeerStatus {
  readonly key: string
  readonly name: string | null
  /** How the tunnel in use goes: a LAN of ours, straight over the internet, or through a relay. */
  readonly path: 'lan' | 'direct' | 'relay'
  /** The relay's name, when relayed. */
  readonly via: string | null
  /** The candidate pair in use: where this peer sees us (as it reported), and where we reach it. */
  readonly local: string | null
  readonly remote: string
  /** The peer's NAT mapping as we observe it: its address here against the candidates its record names. */
  readonly nat: 'none-or-cone' | 'address-dependent' | 'unknown'
}

export interface TraversalStatus {
  /** This node's reflexive endpoints (believed), and how its NAT maps. */
  readonly reflexive: readonly string[]
  readonly nat: MappingBehaviour
  readonly peers: readonly TraversalPeerStatus[]
  readonly punching: readonly string[]
  readonly relay: unknown
  readonly counters: Readonly<Record<string, number>>
  readonly refused: Readonly<Record<TraversalRefusal, number>>
}

const TICK_MS = 50
const PUNCH_EVERY_MS = 50
/** Punching window: a few round trips through the mediator, within bounds. */
const PUNCH_WINDOW_MIN_MS = 400
export const PUNCH_WINDOW_MAX_MS = 3_000
/** Introductions asked for a member not connected: after 0 s, then backing off to this. */
const INTRO_BACKOFF_MIN_MS = 1_000
const INTRO_BACKOFF_MAX_MS = 30_000
/** While relayed: how often direct is tried again (doubling). */
export const DIRECT_RETRY_MIN_MS = 5_000
const DIRECT_RETRY_MAX_MS = 120_000
/** A mediator reuses the token of a pair introduced this recently (both sides may ask at once). */
const PAIR_TOKEN_MS = 3_000
const BIND_EVERY_MS = 50
const BIND_GIVE_UP_MS = 3_000
/** A relay that does not answer within this is skipped for the next. */
const RELAY_ANSWER_MS = 2_000
/** A punch source is dialled again at most this often while the peer is not connected. */
const REDIAL_PUNCHED_MS = 150
/** Distinct punch sources dialled per session. */
const MAX_DIALS_PER_SESSION = 4
/** Mediators asked per introduction. */
const MAX_MEDIATORS = 3
/** A mediator remembers an introduction it could not make yet this long (both members starting at once). */
const PENDING_INTRO_MS = 5_000
/** How often this node's own addresses are checked (roaming). */
const LOCAL_CHECK_MS = 250
/** Observations older than this are forgotten (the NAT may have moved). */
const OBSERVED_TTL_MS = 10 * 60_000

interface Session {
  readonly peer: string
  readonly token: Buffer
  candidates: Endpoint[]
  readonly started: number
  readonly until: number
  lastPunch: number
  /** Punch sources dialled, and when last. */
  readonly dials: Map<string, number>
}

interface Binding {
  readonly peer: string
  readonly relay: string
  readonly endpoint: Endpoint
  readonly token: Buffer
  readonly role: 'dial' | 'accept'
  readonly started: number
  lastBind: number
  bound: boolean
  dialled: boolean
}

interface PeerState {
  nextIntro: number
  backoff: number
  /** Relays asked (keys) since the last success, and when the last was asked. */
  relaysTried: Set<string>
  relayAsked: number
  /** Punching failed: the lower key asks a relay. */
  wantRelay: boolean
}

interface Observation {
  readonly reporter: string
  readonly reporterIp: string
  readonly trusted: boolean
  readonly address: string
  readonly port: number
  readonly at: number
}

export class Traversal implements Subsystem<TraversalStatus> {
  readonly name = 'traversal'
  readonly #c: TraversalComponents
  readonly #now: () => number
  #gen: Generation | null = null
  #timer: NodeJS.Timeout | null = null
  #relay: RelayLike | null = null
  readonly #sessions = new Map<string, Session>() // by token (hex)
  readonly #bindings = new Map<string, Binding>() // by peer
  readonly #state = new Map<string, PeerState>()
  readonly #observed = new Map<string, Observation>() // by reporter
  readonly #sentObserved = new Map<string, string>() // peer → what we last told it
  readonly #roles = new Map<string, 'client' | 'server'>()
  readonly #pairTokens = new Map<string, { token: Buffer; at: number }>()
  /** Introductions asked for a member not (yet) connected here, by `from|peer`. */
  readonly #pendingIntros = new Map<string, { from: string; peer: string; texts: readonly string[]; at: number }>()
  #lastLocal = ''
  #lastReflexive = ''
  #lastStats = 0
  #lastLocalCheck = 0
  #stats: EngineStats | null = null
  #statsAt = 0
  readonly #counters: Record<string, number> = { introsAsked: 0, introsMediated: 0, sessions: 0, punchesSent: 0, punchesReceived: 0, punched: 0, relaysAsked: 0, relaysAllocated: 0, relayed: 0, roamed: 0 }
  readonly #refused: Record<TraversalRefusal, number> = { punch: 0, intro: 0, observed: 0, relay: 0, 'relay-answer': 0, raw: 0 }

  constructor(c: TraversalComponents) {
    this.#c = c
    this.#now = c.now ?? Date.now
  }

  async start(gen: Generation): Promise<void> {
    this.#gen = gen
    await this.#configureRelay(gen.config)
    this.#lastLocal = this.#localText()
    this.#timer = setInterval(() => this.tick(), TICK_MS)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.#relay?.stop()
    this.#relay = null
    this.#sessions.clear()
    this.#bindings.clear()
  }

  async onReload(_prev: Generation, next: Generation): Promise<void> {
    this.#gen = next
    await this.#configureRelay(next.config)
  }

  /** Relays: `gateway.relay`, or a bootstrap node. */
  static offersRelay(config: Config): boolean {
    return config.gateway.relay || config.node.role === 'bootstrap' || config.node.bootstrapMode
  }

  async #configureRelay(config: Config): Promise<void> {
    const want = Traversal.offersRelay(config)
    if (want && !this.#relay) {
      const bind = config.listen.address
      const opts: RelayOptions = { bind, log: this.#c.log.child({ part: 'relay' }), ...(config.gateway.advertiseBandwidth ? { rateBps: Math.max(125_000, Math.floor(config.gateway.advertiseBandwidth / 8)) } : {}) }
      this.#relay = this.#c.createRelay(opts)
      this.#c.log.info({ bind }, 'relaying for members that cannot reach each other')
    } else if (!want && this.#relay) {
      this.#relay.stop()
      this.#relay = null
      this.#c.log.info('no longer relaying')
    }
  }

  // ---- what this node looks like from outside ----

  /** Reflexive endpoints believed (reported by a bootstrap or relay node, or by two peers at different IPs), most reported first. */
  reflexiveEndpoints(): Endpoint[] {
    const now = this.#now()
    const count = new Map<string, { e: Endpoint; trusted: boolean; ips: Set<string> }>()
    for (const o of this.#observed.values()) {
      if (now - o.at > OBSERVED_TTL_MS) continue
      const id = `${o.address}|${o.port}`
      let x = count.get(id)
      if (!x) count.set(id, (x = { e: { host: o.address, port: o.port }, trusted: false, ips: new Set() }))
      x.trusted ||= o.trusted
      x.ips.add(o.reporterIp)
    }
    const local = new Set(this.#c.localEndpoints().map((e) => `${e.host}|${e.port}`))
    return [...count.entries()]
      .filter(([id, x]) => !local.has(id) && (x.trusted || x.ips.size >= 2))
      .sort((a, b) => b[1].ips.size - a[1].ips.size)
      .map(([, x]) => x.e)
  }

  /** What this node offers as candidates: local endpoints, then reflexive ones. */
  #ownCandidates(): Endpoint[] {
    const out: Endpoint[] = [...this.#c.localEndpoints()]
    for (const e of this.reflexiveEndpoints()) if (!out.some((x) => x.host === e.host && x.port === e.port)) out.push(e)
    return out
  }

  // ---- events ----

  onPeerUp(ev: { peer: string; remote: { address: string; port: number }; role: 'client' | 'server' }): void {
    this.#roles.set(ev.peer, ev.role)
    const now = this.#now()
    for (const [id, p] of this.#pendingIntros) {
      if (now - p.at > PENDING_INTRO_MS) this.#pendingIntros.delete(id)
      else if (p.peer === ev.peer) {
        this.#pendingIntros.delete(id)
        // The mesh reports the peer connected right after this event.
        setImmediate(() => this.#onIntroRequest(p.from, p.peer, p.texts))
      }
    }
    if (this.#viaRelay(ev.peer, ev.remote)) {
      // Relayed: direct is tried again from 5 s on. The relay's address says nothing about where the peer sees us.
      this.#counters.relayed = (this.#counters.relayed ?? 0) + 1
      const s = this.#peerState(ev.peer)
      s.nextIntro = now + DIRECT_RETRY_MIN_MS
      s.backoff = DIRECT_RETRY_MIN_MS
      return
    }
    this.#bindings.delete(ev.peer) // direct now: the relay's ports idle out
    const st = this.#state.get(ev.peer)
    if (st) {
      st.backoff = INTRO_BACKOFF_MIN_MS
      st.relaysTried.clear()
      st.wantRelay = false
    }
    this.#tellObserved(ev.peer, ev.remote)
  }

  onPeerDown(peer: string): void {
    this.#sentObserved.delete(peer)
    this.#roles.delete(peer)
    const st = this.#state.get(peer)
    if (st) st.nextIntro = Math.min(st.nextIntro, this.#now())
  }

  onMessage(from: string, msg: TraversalMessage): void {
    switch (msg.type) {
      case 'observed':
        return this.#onObserved(from, msg.address, msg.port)
      case 'intro-request':
        return this.#onIntroRequest(from, msg.peer, msg.candidates)
      case 'intro':
        return this.#onIntro(from, msg.peer, msg.candidates, msg.token)
      case 'relay-request':
        return void this.#onRelayRequest(from, msg.peer)
      case 'relay':
        return this.#onRelay(from, msg.peer, msg.port, msg.token, msg.role)
      case 'traversal-refused':
        this.#c.log.debug({ from: this.#nameOf(from), peer: this.#nameOf(msg.peer), what: msg.what, reason: msg.reason }, 'traversal refused')
        if (msg.what === 'relay') {
          const st = this.#state.get(msg.peer)
          if (st) st.relayAsked = 0 // ask the next relay now
        }
        return
    }
  }

  /** A datagram starting "\0QEP" on the tunnel socket. */
  onRaw(ev: { remote: { address: string; port: number }; data: Buffer }): void {
    const token = decodePunch(ev.data)
    if (token) return this.#onPunch(token, ev.remote)
    const r = decodeBound(ev.data)
    if (r) {
      for (const b of this.#bindings.values()) {
        if (b.token.equals(r.token) && b.endpoint.port === ev.remote.port && sameIp(b.endpoint.host, ev.remote.address)) {
          if (!b.bound) this.#c.log.debug({ peer: this.#nameOf(b.peer), relay: this.#nameOf(b.relay), endpoint: formatEndpoint(b.endpoint) }, 'bound on the relay')
          b.bound = true
          return
        }
      }
      this.#refused['relay-answer']++
      return
    }
    this.#refused.raw++
  }

  // ---- reflexive addresses ----

  #tellObserved(peer: string, remote: { address: string; port: number }): void {
    const text = `${remote.address}|${remote.port}`
    if (this.#sentObserved.get(peer) === text) return
    this.#sentObserved.set(peer, text)
    this.#send(peer, { type: 'observed', v: PROTOCOL_VERSION, address: remote.address.replace(/^::ffff:/i, ''), port: remote.port })
  }

  #onObserved(from: string, address: string, port: number): void {
    const reporter = this.#c.connected().find((p) => p.key === from)
    if (!reporter || isDialable(address) !== true || this.#bindings.get(from)?.bound) {
      this.#refused.observed++
      return
    }
    const trusted = reporter.hello?.relay === true || reporter.hello?.role === 'bootstrap'
    this.#observed.set(from, { reporter: from, reporterIp: reporter.remote.address, trusted, address, port, at: this.#now() })
    this.#checkReflexive()
  }

  #checkReflexive(): void {
    const text = this.reflexiveEndpoints().map(formatEndpoint).join(',')
    if (text === this.#lastReflexive) return
    this.#lastReflexive = text
    this.#c.log.info({ reflexive: text === '' ? [] : text.split(','), nat: this.#nat() }, 'reflexive address')
    this.#c.onCandidatesChanged?.()
  }

  #nat(): MappingBehaviour {
    const obs = [...this.#observed.values()].map((o) => ({ reporter: o.reporterIp, address: o.address, port: o.port }))
    return mappingBehaviour(obs, this.#c.localEndpoints().map((e) => e.host), this.#c.listenPort())
  }

  // ---- mediator ----

  #onIntroRequest(from: string, peer: string, texts: readonly string[]): void {
    const connected = this.#c.connected()
    const a = connected.find((p) => p.key === from)
    const b = connected.find((p) => p.key === peer)
    if (!a || peer === from || peer === this.#gen?.selfKey) {
      this.#refused.intro++
      return
    }
    if (!b || this.#viaRelay(peer, b.remote)) {
      // Kept a few seconds: when `peer` connects here (it is starting too), the two are introduced at once.
      if (this.#pendingIntros.size < 1024) this.#pendingIntros.set(`${from}|${peer}`, { from, peer, texts: [...texts].slice(0, 16), at: this.#now() })
      this.#send(from, { type: 'traversal-refused', v: PROTOCOL_VERSION, peer, what: 'intro', reason: 'not connected to it here' })
      return
    }
    const lans: Prefix[] = [] // the mediator's LANs say nothing about the pair's
    const aCands = checkCandidates([fmt(a.remote), ...texts], lans)
    const member = this.#c.members().find((m) => m.key === peer)
    const bCands = checkCandidates([fmt(b.remote), ...(member?.endpoints ?? []).map(formatEndpoint)], lans)
    this.#refused.intro += aCands.refused
    const id = from < peer ? `${from}|${peer}` : `${peer}|${from}`
    const now = this.#now()
    let pair = this.#pairTokens.get(id)
    if (!pair || now - pair.at > PAIR_TOKEN_MS) {
      pair = { token: randomBytes(TOKEN_BYTES), at: now }
      this.#pairTokens.set(id, pair)
    }
    for (const [k, t] of this.#pairTokens) if (now - t.at > PAIR_TOKEN_MS) this.#pairTokens.delete(k)
    const token = pair.token.toString('base64')
    this.#counters.introsMediated = (this.#counters.introsMediated ?? 0) + 1
    this.#c.log.debug({ a: this.#nameOf(from), b: this.#nameOf(peer) }, 'introducing')
    this.#send(peer, { type: 'intro', v: PROTOCOL_VERSION, peer: from, candidates: aCands.candidates.map(formatEndpoint), token })
    this.#send(from, { type: 'intro', v: PROTOCOL_VERSION, peer, candidates: bCands.candidates.map(formatEndpoint), token })
  }

  // ---- punching ----

  #onIntro(from: string, peer: string, texts: readonly string[], tokenText: string): void {
    const token = Buffer.from(tokenText, 'base64')
    const member = this.#c.members().some((m) => m.key === peer)
    if (!member || peer === this.#gen?.selfKey || token.length !== TOKEN_BYTES || !this.#c.connected().some((p) => p.key === from)) {
      this.#refused.intro++
      return
    }
    if (this.#directlyConnected(peer) || this.#bonded(this.#nameOf(peer))) return
    const { candidates, refused } = checkCandidates(texts, this.#lans())
    this.#refused.intro += refused
    if (candidates.length === 0) return
    for (const [k, s] of this.#sessions) if (s.peer === peer && !s.token.equals(token)) this.#sessions.delete(k)
    const hex = token.toString('hex')
    const now = this.#now()
    const existing = this.#sessions.get(hex)
    if (existing) {
      for (const c of candidates) if (!existing.candidates.some((x) => sameEndpoint(x, c))) existing.candidates.push(c)
      return
    }
    const rtt = this.#rttTo(from)
    const window = clamp(PUNCH_WINDOW_MIN_MS, 6 * rtt + 300, PUNCH_WINDOW_MAX_MS)
    const s: Session = { peer, token, candidates, started: now, until: now + window, lastPunch: 0, dials: new Map() }
    this.#sessions.set(hex, s)
    this.#counters.sessions = (this.#counters.sessions ?? 0) + 1
    this.#c.log.debug({ peer: this.#nameOf(peer), mediator: this.#nameOf(from), candidates: candidates.map(formatEndpoint), windowMs: window }, 'punching')
    this.#punch(s, now)
  }

  #punch(s: Session, now: number): void {
    const engine = this.#c.engine()
    if (!engine) return
    s.lastPunch = now
    const data = encodePunch(s.token)
    for (const c of s.candidates) {
      try {
        engine.sendRaw({ address: c.host, port: c.port }, data)
        this.#counters.punchesSent = (this.#counters.punchesSent ?? 0) + 1
      } catch (err) {
        this.#c.log.debug({ to: formatEndpoint(c), err: (err as Error).message }, 'cannot punch')
      }
    }
  }

  #onPunch(token: Buffer, from: { address: string; port: number }): void {
    const s = this.#sessions.get(token.toString('hex'))
    if (!s || isDialable(from.address) !== true) {
      this.#refused.punch++
      return
    }
    this.#counters.punchesReceived = (this.#counters.punchesReceived ?? 0) + 1
    const ep: Endpoint = { host: from.address.replace(/^::ffff:/i, ''), port: from.port }
    // Peer-reflexive: where its packets really come from. Punched from now on, so its NAT lets our answers in.
    if (!s.candidates.some((c) => sameEndpoint(c, ep))) s.candidates.unshift(ep)
    if (this.#directlyConnected(s.peer)) return
    // A source is dialled again if a punch still comes from it well after the last dial (the peer
    // may have refused the handshake: it had not admitted this node's key yet); the engine never
    // dials an address twice at once.
    const id = `${ep.host}|${ep.port}`
    const now = this.#now()
    const last = s.dials.get(id)
    if ((last !== undefined && now - last < REDIAL_PUNCHED_MS) || (last === undefined && s.dials.size >= MAX_DIALS_PER_SESSION)) return
    s.dials.set(id, now)
    this.#c.log.debug({ peer: this.#nameOf(s.peer), at: formatEndpoint(ep) }, 'punch arrived: dialling its source')
    try {
      this.#c.engine()?.connect({ address: ep.host, port: ep.port })
    } catch (err) {
      this.#c.log.debug({ err: (err as Error).message }, 'cannot dial a punched address')
    }
  }

  // ---- relays ----

  async #onRelayRequest(from: string, peer: string): Promise<void> {
    const connected = this.#c.connected()
    const a = connected.find((p) => p.key === from)
    const b = connected.find((p) => p.key === peer)
    const refuse = (reason: string) => {
      this.#refused.relay++
      this.#send(from, { type: 'traversal-refused', v: PROTOCOL_VERSION, peer, what: 'relay', reason })
    }
    if (!this.#relay) return refuse('this node does not relay')
    if (!a || peer === from) return refuse('not a pair of members')
    if (!b || this.#viaRelay(peer, b.remote)) return refuse('not connected to it here')
    try {
      const hex = (k: string) => Buffer.from(k, 'base64').toString('hex')
      const alloc = await this.#relay.allocate({ key: hex(from), ip: bare(a.remote.address) }, { key: hex(peer), ip: bare(b.remote.address) })
      this.#counters.relaysAllocated = (this.#counters.relaysAllocated ?? 0) + 1
      this.#c.log.info({ a: this.#nameOf(from), b: this.#nameOf(peer), ports: [alloc.a.port, alloc.b.port] }, 'relaying a pair')
      this.#send(peer, { type: 'relay', v: PROTOCOL_VERSION, peer: from, port: alloc.b.port, token: alloc.b.token.toString('base64'), role: 'accept' })
      this.#send(from, { type: 'relay', v: PROTOCOL_VERSION, peer, port: alloc.a.port, token: alloc.a.token.toString('base64'), role: 'dial' })
    } catch (err) {
      refuse((err as Error).message)
    }
  }

  #onRelay(from: string, peer: string, port: number, tokenText: string, role: 'dial' | 'accept'): void {
    const relay = this.#c.connected().find((p) => p.key === from)
    const token = Buffer.from(tokenText, 'base64')
    const offers = relay?.hello?.relay === true || relay?.hello?.role === 'bootstrap'
    if (!relay || !offers || token.length !== TOKEN_BYTES || !this.#c.members().some((m) => m.key === peer) || peer === this.#gen?.selfKey) {
      this.#refused.relay++
      return
    }
    if (this.#directlyConnected(peer)) return
    const endpoint: Endpoint = { host: bare(relay.remote.address), port }
    const now = this.#now()
    this.#bindings.set(peer, { peer, relay: from, endpoint, token, role, started: now, lastBind: 0, bound: false, dialled: false })
    this.#c.log.debug({ peer: this.#nameOf(peer), relay: this.#nameOf(from), endpoint: formatEndpoint(endpoint), role }, 'binding on a relay')
    this.#bind(this.#bindings.get(peer) as Binding, now)
  }

  #bind(b: Binding, now: number): void {
    b.lastBind = now
    try {
      this.#c.engine()?.sendRaw({ address: b.endpoint.host, port: b.endpoint.port }, encodeBind(b.token, randomBytes(8)))
    } catch (err) {
      this.#c.log.debug({ err: (err as Error).message }, 'cannot bind on the relay')
    }
  }

  /** Asks the best relay not yet tried (lowest RTT, then most bandwidth) for a pair of ports toward `peer`. */
  #askRelay(peer: string, st: PeerState, now: number): void {
    const candidates = this.#c
      .connected()
      .filter((p) => p.key !== peer && !st.relaysTried.has(p.key) && (p.hello?.relay === true || p.hello?.role === 'bootstrap'))
      .map((p) => ({ p, rtt: this.#rttTo(p.key), bw: p.hello?.bandwidth ?? 0 }))
      .sort((a, b) => a.rtt - b.rtt || b.bw - a.bw)
    const best = candidates[0]
    if (!best) {
      st.relaysTried.clear() // every relay was tried: start over next time
      st.wantRelay = false
      return
    }
    st.relaysTried.add(best.p.key)
    st.relayAsked = now
    this.#counters.relaysAsked = (this.#counters.relaysAsked ?? 0) + 1
    this.#c.log.info({ peer: this.#nameOf(peer), relay: best.p.name ?? best.p.key, rttMs: Math.round(best.rtt) }, 'no direct path: asking a relay')
    this.#send(best.p.key, { type: 'relay-request', v: PROTOCOL_VERSION, peer })
  }

  // ---- housekeeping ----

  /** One turn of housekeeping (every 50 ms). Public for tests. */
  tick(): void {
    const gen = this.#gen
    const engine = this.#c.engine()
    if (!gen || !engine) return
    const now = this.#now()
    if (now - this.#lastLocalCheck >= LOCAL_CHECK_MS) {
      this.#lastLocalCheck = now
      this.#checkLocal(engine)
    }
    if (now - this.#lastStats >= 1_000) {
      this.#lastStats = now
      this.#periodic(engine, now)
    }
    for (const [k, s] of this.#sessions) {
      if (this.#directlyConnected(s.peer)) {
        this.#sessions.delete(k)
        this.#counters.punched = (this.#counters.punched ?? 0) + 1
        this.#c.log.info({ peer: this.#nameOf(s.peer), ms: now - s.started }, 'direct path punched')
        continue
      }
      if (now >= s.until) {
        this.#sessions.delete(k)
        this.#c.log.debug({ peer: this.#nameOf(s.peer) }, 'punching found no path')
        if (!this.#c.connected().some((p) => p.key === s.peer) && gen.selfKey < s.peer) this.#peerState(s.peer).wantRelay = true
        continue
      }
      if (now - s.lastPunch >= PUNCH_EVERY_MS) this.#punch(s, now)
    }
    for (const [peer, b] of this.#bindings) {
      const up = this.#c.connected().find((p) => p.key === peer)
      if (up && !this.#viaRelay(peer, up.remote)) {
        this.#bindings.delete(peer) // direct now: the relay's ports idle out
        continue
      }
      if (!b.bound) {
        if (now - b.started > BIND_GIVE_UP_MS) {
          this.#bindings.delete(peer)
          this.#refused['relay-answer']++
          this.#c.log.warn({ peer: this.#nameOf(peer), relay: this.#nameOf(b.relay) }, 'the relay did not answer our binds')
        } else if (now - b.lastBind >= BIND_EVERY_MS) this.#bind(b, now)
        continue
      }
      if (b.role === 'dial' && !b.dialled && !up) {
        b.dialled = true
        engine.connect({ address: b.endpoint.host, port: b.endpoint.port }, { relayed: true })
      }
    }
    this.#introduce(now)
  }

  /** Members not connected (or only through a relay) get introductions; failed punching gets a relay. */
  #introduce(now: number): void {
    const gen = this.#gen
    if (!gen) return
    const connected = new Map(this.#c.connected().map((p) => [p.key, p]))
    for (const m of this.#c.members()) {
      if (m.key === gen.selfKey || this.#bonded(m.name)) continue
      const up = connected.get(m.key)
      if (up && !this.#viaRelay(m.key, up.remote)) continue
      const st = this.#peerState(m.key)
      if (st.wantRelay && !up && !this.#bindings.has(m.key) && (st.relayAsked === 0 || now - st.relayAsked >= RELAY_ANSWER_MS)) {
        this.#askRelay(m.key, st, now)
      }
      if ([...this.#sessions.values()].some((s) => s.peer === m.key) || now < st.nextIntro) continue
      const mediators = [...connected.values()]
        .filter((p) => p.key !== m.key && !this.#viaRelay(p.key, p.remote))
        .sort((a, b) => mediatorRank(a) - mediatorRank(b) || this.#rttTo(a.key) - this.#rttTo(b.key))
        .slice(0, MAX_MEDIATORS)
      if (mediators.length === 0) continue
      st.nextIntro = now + st.backoff
      st.backoff = Math.min(st.backoff * 2, up ? DIRECT_RETRY_MAX_MS : INTRO_BACKOFF_MAX_MS)
      const candidates = this.#ownCandidates().slice(0, 15).map(formatEndpoint)
      for (const p of mediators) this.#send(p.key, { type: 'intro-request', v: PROTOCOL_VERSION, peer: m.key, candidates })
      this.#counters.introsAsked = (this.#counters.introsAsked ?? 0) + 1
    }
  }

  /** Once a second: stats (RTTs, addresses that moved), roaming, reflexive checks. */
  #periodic(engine: TraversalEngine, now: number): void {
    try {
      this.#stats = engine.stats()
      this.#statsAt = now
    } catch {
      this.#stats = null
    }
    // A peer that moved (QUIC migrated its tunnel here) learns its new reflexive address.
    for (const p of this.#stats?.peers ?? []) {
      if (!p.up || !p.remote || p.relayed === true || p.paths !== undefined) continue
      if (this.#sentObserved.has(p.peer)) this.#tellObserved(p.peer, p.remote)
    }
    for (const [k, o] of this.#observed) if (now - o.at > OBSERVED_TTL_MS) this.#observed.delete(k)
    this.#checkReflexive()
  }

  /** An address of this node went away (checked every 250 ms: a laptop leaving Wi-Fi). */
  #checkLocal(engine: TraversalEngine): void {
    const local = this.#localText()
    if (local === this.#lastLocal) return
    const lost = this.#lastLocal.split(',').filter((x) => x !== '' && !local.split(',').includes(x))
    this.#lastLocal = local
    if (lost.length > 0) this.#roam(engine, lost)
  }

  /**
   * An address of this node went away. Client tunnels migrate by themselves;
   * a tunnel where this node is the server cannot, so it is closed and the
   * peer dialled (or introduced) again at once. What peers saw of us is stale.
   */
  #roam(engine: TraversalEngine, lost: readonly string[]): void {
    this.#counters.roamed = (this.#counters.roamed ?? 0) + 1
    this.#observed.clear()
    const servers = [...this.#roles.entries()].filter(([, r]) => r === 'server').map(([k]) => k)
    this.#c.log.info({ lost, redial: servers.map((k) => this.#nameOf(k)) }, 'this node moved: tunnels follow')
    const remotes = new Map(this.#c.connected().map((p) => [p.key, p.remote]))
    for (const k of servers) {
      try {
        engine.disconnect(k)
        // Dialled again at once, at the address its packets came from (the mesh and introductions follow).
        const r = remotes.get(k)
        if (r && !this.#viaRelay(k, r)) engine.connect({ address: bare(r.address), port: r.port })
      } catch {
        // already gone
      }
      const st = this.#peerState(k)
      st.nextIntro = 0
      st.backoff = INTRO_BACKOFF_MIN_MS
    }
    this.#c.onCandidatesChanged?.()
  }

  status(): TraversalStatus {
    const stats = this.#stats
    const members = this.#c.members()
    const lans = this.#lans()
    const peers: TraversalPeerStatus[] = this.#c.connected().map((p) => {
      const b = this.#bindings.get(p.key)
      const relayed = this.#viaRelay(p.key, p.remote) || stats?.peers.find((x) => x.peer === p.key)?.relayed === true
      const ep = { host: bare(p.remote.address), port: p.remote.port }
      const rec = members.find((m) => m.key === p.key)?.endpoints ?? []
      const sameIp = rec.filter((e) => sameIpText(e.host, ep.host))
      const nat = relayed || sameIp.length === 0 ? 'unknown' : sameIp.some((e) => e.port === ep.port) ? 'none-or-cone' : 'address-dependent'
      const seen = this.#sentObservedBy(p.key)
      return {
        key: p.key,
        name: p.name,
        path: relayed ? 'relay' : isLan(ep.host, lans) ? 'lan' : 'direct',
        via: relayed && b ? this.#nameOf(b.relay) : null,
        local: seen,
        remote: formatEndpoint(ep),
        nat,
      }
    })
    return {
      reflexive: this.reflexiveEndpoints().map(formatEndpoint),
      nat: this.#nat(),
      peers,
      punching: [...this.#sessions.values()].map((s) => this.#nameOf(s.peer) ?? s.peer),
      relay: this.#relay?.stats() ?? null,
      counters: { ...this.#counters },
      refused: { ...this.#refused },
    }
  }

  // ---- helpers ----

  /** Where `peer` reported seeing us, if it did. */
  #sentObservedBy(peer: string): string | null {
    const o = this.#observed.get(peer)
    return o ? formatEndpoint({ host: o.address, port: o.port }) : null
  }

  /**
   * This node bonds to the peer (it has uplinks, and the peer is the multipath target or none is
   * set): the mesh dials it from every uplink's socket, which only dial; a punched plain tunnel
   * would replace the bond, so such a peer is left to the mesh.
   */
  #bonded(name: string | null): boolean {
    const cfg = this.#gen?.config
    if (!cfg || cfg.interfaces.length === 0) return false
    return cfg.multipath.target === null || cfg.multipath.target === name
  }

  #directlyConnected(peer: string): boolean {
    const p = this.#c.connected().find((x) => x.key === peer)
    return p !== undefined && !this.#viaRelay(peer, p.remote)
  }

  /** The tunnel to `peer` goes to its relay binding's endpoint. */
  #viaRelay(peer: string, remote: { address: string; port: number }): boolean {
    const b = this.#bindings.get(peer)
    return b !== undefined && b.endpoint.port === remote.port && sameIp(b.endpoint.host, remote.address)
  }

  #peerState(peer: string): PeerState {
    let st = this.#state.get(peer)
    if (!st) this.#state.set(peer, (st = { nextIntro: 0, backoff: INTRO_BACKOFF_MIN_MS, relaysTried: new Set(), relayAsked: 0, wantRelay: false }))
    return st
  }

  #rttTo(peer: string): number {
    const now = this.#now()
    if (now - this.#statsAt > 200 || (now - this.#statsAt > 20 && !this.#stats?.peers.some((x) => x.peer === peer && x.rttMs > 0))) {
      try {
        this.#stats = this.#c.engine()?.stats() ?? this.#stats
        this.#statsAt = now
      } catch {
        // the engine is going away: the last figures do
      }
    }
    const p = this.#stats?.peers.find((x) => x.peer === peer)
    return p && p.rttMs > 0 ? p.rttMs : 100
  }

  #lans(): Prefix[] {
    return this.#c.lans ? this.#c.lans() : lanPrefixes(this.#gen?.config.tun.name ?? '')
  }

  #localText(): string {
    return this.#c.localEndpoints().map(formatEndpoint).join(',')
  }

  #nameOf(key: string): string | null {
    return this.#c.connected().find((p) => p.key === key)?.name ?? this.#c.members().find((m) => m.key === key)?.name ?? null
  }

  #send(peer: string, msg: ControlMessage): void {
    try {
      this.#c.send(peer, msg)
    } catch (err) {
      this.#c.log.debug({ peer: this.#nameOf(peer), type: msg.type, err: (err as Error).message }, 'cannot send')
    }
  }
}

function mediatorRank(p: TraversalPeer): number {
  return p.hello?.relay === true || p.hello?.role === 'bootstrap' ? 0 : 1
}

function clamp(lo: number, x: number, hi: number): number {
  return Math.max(lo, Math.min(hi, x))
}

function bare(a: string): string {
  return a.replace(/^::ffff:/i, '')
}

function sameIp(a: string, b: string): boolean {
  return bare(a).toLowerCase() === bare(b).toLowerCase()
}

const sameIpText = sameIp

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && sameIp(a.host, b.host)
}

function fmt(r: { address: string; port: number }): string {
  return formatEndpoint({ host: bare(r.address), port: r.port })
}

export { rankEndpoints }
