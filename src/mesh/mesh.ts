/**
 * The mesh: whom to dial and when to dial again, and what each connected
 * peer told us (its hello).
 *
 * It reports facts and sets no tables: which peers are up and what their
 * hellos say go to `onPeers`; the daemon turns them into desired state
 * (`desiredNode`), and the reconciler alone writes the engine's tables
 * (allowed keys, FIB) and the kernel's routes. It talks to the forwarding
 * plane only through `MeshEngine` (dials and control messages: commands,
 * not tables), so it can be tested with a scripted fake.
 *
 * Housekeeping runs on one coarse tick (redials with backoff), not a timer
 * per peer.
 */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import type { Config, Endpoint } from '../config/index.js'
import type { Logger } from '../log.js'
import { decodeWireMessage, encodeMessage, isAuthMessage, PROTOCOL_VERSION, type AuthMessage, type ControlMessage, type HelloMessage } from './messages.js'
import type { ConnectedPeer, PeerHello } from '../state/routes.js'

/** How long a replaced connection's hello is kept for the connection that replaces it. */
const REPLACED_HELLO_MS = 2_000

export interface PeerUpEvent {
  readonly peer: string
  readonly remote: { readonly address: string; readonly port: number }
  readonly role: 'client' | 'server'
}
export interface PeerDownEvent {
  readonly peer: string
  readonly reason: string
}

/** How a dial bonds (multipath): `null` = a plain single-path tunnel. */
export type DialBond = 'aggregate' | 'failover' | 'redundant' | 'weighted' | null

/** What the mesh needs from the forwarding plane: commands only (its tables are the reconciler's). */
export interface MeshEngine {
  connect(endpoint: { address: string; port: number }, options?: { bond?: Exclude<DialBond, null>; relayed?: boolean }): void
  /** Undoes a bonded connect: no more dials to the endpoint, its paths close. */
  forgetBonded(endpoint: { address: string; port: number }): void
  disconnect(peer: string): void
  sendControl(peer: string, msg: Uint8Array): void
}

export interface MeshInit {
  readonly config: Config
  /** This node's overlay addresses (configured or derived from its key). */
  readonly self: { readonly ipv4: string; readonly ipv6: string }
  /** This node's own public key (base64); never dialled, never accepted as a peer. */
  readonly selfKey: string
  /** How often housekeeping runs, ms (default 250). */
  readonly tickMs?: number
  /** Backoff bounds for redials, ms (defaults 250 and 4000): a restarted peer is back within a few seconds. */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
}

export interface MeshComponents {
  readonly engine: MeshEngine
  readonly log: Logger
  /**
   * The connected peers and their last hellos, sorted by key: called when
   * they change (a peer up or down, a hello or bye) and once after start.
   */
  readonly onPeers: (peers: readonly ConnectedPeer[]) => void
  /** Control messages for others (peer exchange, revocations, certificates), decoded and schema-checked, from a connected peer. */
  readonly onMessage?: (peer: string, msg: Exclude<ControlMessage, { type: 'hello' | 'bye' }>) => void
  /** The second factor's messages (login, login-result, login-needed); without a handler they are ignored. */
  readonly onAuth?: (peer: string, msg: AuthMessage) => void
  /** Injected clock, for tests. */
  readonly now?: () => number
}

interface DialTarget {
  /** Config peer name, when the target names one. */
  readonly peer: string | null
  readonly endpoints: readonly Endpoint[]
  nextAttempt: number
  backoff: number
  /** Index of the next endpoint to try (round-robin across a peer's endpoints). */
  next: number
  /**
   * Bonded: the endpoints already handed to the engine, by `host:port`: the
   * mode and the address it resolved to (null while resolving). The engine
   * keeps every bonded endpoint dialled from every uplink by itself, so each
   * is given once, not tried in turn; one that leaves the config is
   * forgotten there (#forgetRemoved).
   */
  bonded?: Map<string, { bond: Exclude<DialBond, null>; address: string | null }>
}

export interface PeerStatus {
  readonly key: string
  readonly name: string | null
  readonly remote: { readonly address: string; readonly port: number }
  readonly since: number
  readonly hello: HelloMessage | null
}

/**
 * A peer this node admits (listed in `peers:`), connected or not.
 * - `up`: a tunnel is open;
 * - `connecting`: it is a dial target (`connect-to`) not yet up;
 * - `waiting`: nothing dials it from here: it is up when it dials us.
 */
export interface AdmittedPeerStatus {
  readonly key: string
  readonly name: string
  readonly state: 'up' | 'connecting' | 'waiting'
  /** When it entered this state (ms since the epoch). */
  readonly since: number
  /** Why the last dial failed or the tunnel went down; null when nothing failed yet. */
  readonly lastError: string | null
  readonly remote: { readonly address: string; readonly port: number } | null
}

export class Mesh {
  #config: Config
  readonly #init: MeshInit
  readonly #c: MeshComponents
  readonly #now: () => number
  readonly #up = new Map<string, { remote: PeerUpEvent['remote']; since: number; hello: HelloMessage | null }>()
  #targets: DialTarget[] = []
  #timer: NodeJS.Timeout | null = null
  #lastFacts = ''
  /** Per admitted key: when its state last changed and its last error. */
  readonly #history = new Map<string, { state: AdmittedPeerStatus['state']; since: number; lastError: string | null }>()
  /** The exit this node uses now (told in hellos). */
  #exit: string | null = null
  /** Per peer: the hub routes (`via`) this node tells it, as last sent. */
  readonly #via = new Map<string, readonly string[]>()
  /** Hellos of peers whose connection was just replaced by another (see onPeerUp). */
  readonly #replaced = new Map<string, { hello: HelloMessage; at: number }>()

  constructor(init: MeshInit, components: MeshComponents) {
    this.#init = init
    this.#config = init.config
    this.#c = components
    this.#now = components.now ?? Date.now
  }

  start(): void {
    this.#applyConfig()
    this.#timer = setInterval(() => this.tick(), this.#init.tickMs ?? 250)
    this.#timer.unref()
    this.tick()
    this.#report(true)
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    for (const key of this.#up.keys()) {
      try {
        this.#c.engine.sendControl(key, encodeMessage({ type: 'bye', v: PROTOCOL_VERSION, reason: 'stopping' }))
      } catch {
        // the tunnel may already be gone; a bye is a courtesy
      }
    }
  }

  /**
   * Swap in a new config: dial targets and advertised subnets follow; live
   * tunnels stay. A peer that left the config is cut off by the engine once
   * the reconciler applies the new allowed keys (before this is called).
   */
  reload(next: Config): void {
    this.#config = next
    this.#applyConfig()
    for (const key of this.#up.keys()) if (next.peers.some((p) => p.key === key)) this.#sendHello(key)
    this.#report(false)
  }

  /**
   * The admitted peers changed (discovery verified a member, or a revocation
   * cut one): dial targets and names follow; nothing about this node changed,
   * so no hello is sent.
   */
  setPeers(next: Config): void {
    this.#config = next
    this.#applyConfig()
    this.#report(false)
    // A newly admitted peer is dialled now, not at the next tick.
    this.tick()
  }

  /** The connected peers (a config peer or not). */
  peers(): PeerStatus[] {
    return [...this.#up.entries()].map(([key, p]) => ({ key, name: this.#nameOf(key), remote: p.remote, since: p.since, hello: p.hello }))
  }

  /** Every peer the config admits, connected or not, sorted by name. */
  admitted(): AdmittedPeerStatus[] {
    const out: AdmittedPeerStatus[] = []
    for (const p of this.#config.peers) {
      if (p.key === this.#init.selfKey) continue
      const up = this.#up.get(p.key)
      const state = this.#stateOf(p.key)
      const h = this.#touch(p.key, state)
      out.push({ key: p.key, name: p.name, state, since: up ? up.since : h.since, lastError: h.lastError, remote: up?.remote ?? null })
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /** A dial that never produced a peer: remembered as the peer's last error. */
  onDialFailed(ev: { remote: { address: string; port: number }; peer?: string; reason: string }): void {
    const key = ev.peer ?? this.#keyAt(ev.remote)
    if (key === null) return
    const h = this.#touch(key, this.#stateOf(key))
    h.lastError = `dial ${ev.remote.address}:${ev.remote.port} failed: ${ev.reason}`
  }

  onPeerUp(ev: PeerUpEvent): void {
    const name = this.#nameOf(ev.peer)
    // A connection replaced by another to the same peer (a direct path beat a
    // relayed one, crossed dials): the peer is the same, so its hello and the
    // routes it gave stay while the new connection's hello is on its way.
    const replaced = this.#replaced.get(ev.peer)
    this.#replaced.delete(ev.peer)
    const hello = replaced && this.#now() - replaced.at <= REPLACED_HELLO_MS ? replaced.hello : null
    this.#up.set(ev.peer, { remote: ev.remote, since: this.#now(), hello })
    this.#touch(ev.peer, 'up')
    this.#c.log.info({ peer: name ?? ev.peer, key: ev.peer, remote: `${ev.remote.address}:${ev.remote.port}`, role: ev.role }, 'peer connected')
    for (const t of this.#targets) if (this.#satisfied(t)) t.backoff = this.#init.minBackoffMs ?? 250
    this.#sendHello(ev.peer)
  }

  onPeerDown(ev: PeerDownEvent): void {
    const was = this.#up.get(ev.peer)
    const had = this.#up.delete(ev.peer)
    if (!had) return
    if (ev.reason === 'replaced' && was?.hello) {
      // The engine announces the connection that replaced this one right after: keep the facts as they are.
      this.#replaced.set(ev.peer, { hello: was.hello, at: this.#now() })
      this.#c.log.debug({ peer: this.#nameOf(ev.peer) ?? ev.peer }, 'connection replaced')
      return
    }
    this.#c.log.info({ peer: this.#nameOf(ev.peer) ?? ev.peer, key: ev.peer, reason: ev.reason }, 'peer disconnected')
    const h = this.#touch(ev.peer, this.#stateOf(ev.peer))
    h.lastError = `tunnel went down: ${ev.reason}`
    const now = this.#now()
    for (const t of this.#targets) if (!this.#satisfied(t)) t.nextAttempt = Math.min(t.nextAttempt, now)
    this.#report(false)
  }

  /**
   * A hub's routes for each peer (`hubAdvertisement`): a peer whose list
   * changed is sent a new hello. Peers not in the map are told none.
   */
  setHubRoutes(via: ReadonlyMap<string, readonly string[]>): void {
    for (const key of this.#up.keys()) {
      const next = via.get(key) ?? []
      const prev = this.#via.get(key) ?? []
      if (next.length === prev.length && next.every((p, i) => p === prev[i])) continue
      if (next.length === 0) this.#via.delete(key)
      else this.#via.set(key, [...next])
      this.#sendHello(key)
    }
  }

  /** The exit this node routes its internet traffic through changed: every peer hears it. */
  setExit(name: string | null): void {
    if (name === this.#exit) return
    this.#exit = name
    for (const key of this.#up.keys()) this.#sendHello(key)
  }

  onControl(peer: string, data: Uint8Array): void {
    const p = this.#up.get(peer)
    if (!p) return
    const r = decodeWireMessage(data)
    if (!r.ok) {
      this.#c.log.warn({ peer: this.#nameOf(peer) ?? peer, reason: r.reason }, 'ignored a control message')
      return
    }
    if (isAuthMessage(r.msg)) {
      this.#c.onAuth?.(peer, r.msg)
    } else if (r.msg.type === 'hello') {
      p.hello = r.msg
      this.#report(false)
    } else if (r.msg.type === 'bye') {
      p.hello = null
      this.#report(false)
    } else {
      this.#c.onMessage?.(peer, r.msg)
    }
  }

  /** Housekeeping: dial targets that are not connected and whose backoff has run out. Public for tests. */
  tick(): void {
    const now = this.#now()
    for (const t of this.#targets) {
      const bond = this.#bondFor(t.peer)
      if (bond) {
        // Every endpoint of a bonded peer (a gateway reachable at one address
        // per uplink's network, say) is a path target, whether or not the
        // peer is up already.
        t.bonded ??= new Map()
        for (const ep of t.endpoints) {
          const id = `${ep.host}:${ep.port}`
          const known = t.bonded.get(id)
          if (known?.bond === bond) continue
          const entry = { bond, address: null as string | null }
          t.bonded.set(id, entry)
          void this.#dial(ep, t.peer).then((address) => {
            entry.address = address
            if (t.bonded?.get(id) !== entry) {
              // Removed (or its mode changed) while its name resolved.
              if (address !== null && !t.bonded?.has(id)) this.#c.engine.forgetBonded({ address, port: ep.port })
            } else if (address === null) t.bonded.delete(id) // not resolved: try again next tick
          })
        }
        continue
      }
      if (this.#satisfied(t) || now < t.nextAttempt || t.endpoints.length === 0) continue
      const ep = t.endpoints[t.next % t.endpoints.length] as Endpoint
      t.next++
      t.nextAttempt = now + t.backoff
      // Each of a peer's endpoints gets a try before the wait grows: a peer that refused the
      // first handshake (it had not admitted this node yet) is tried again at the same pace.
      if (t.next % t.endpoints.length === 0) t.backoff = Math.min(t.backoff * 2, this.#init.maxBackoffMs ?? 4000)
      void this.#dial(ep, t.peer)
    }
  }

  /** Hands the endpoint to the engine; the address it dialled, or null when its name did not resolve. */
  async #dial(ep: Endpoint, peer: string | null): Promise<string | null> {
    let address = ep.host
    if (isIP(address) === 0) {
      try {
        address = (await lookup(ep.host)).address
      } catch (err) {
        this.#c.log.warn({ peer, endpoint: `${ep.host}:${ep.port}`, err: (err as Error).message }, 'cannot resolve peer endpoint')
        return null
      }
    }
    const bond = this.#bondFor(peer)
    this.#c.log.debug({ peer, endpoint: `${address}:${ep.port}`, bond }, 'dialling')
    if (bond) this.#c.engine.connect({ address, port: ep.port }, { bond })
    else this.#c.engine.connect({ address, port: ep.port })
    return address
  }

  /**
   * Bonded endpoints handed to the engine that the new targets no longer
   * have (an endpoint or the peer left the config, or the peer is no longer
   * bonded): the engine stops dialling them and closes their paths.
   */
  #forgetRemoved(before: readonly DialTarget[], after: readonly DialTarget[]): void {
    for (const t of before) {
      if (!t.bonded) continue
      const kept = after.find((a) => a === t && this.#bondFor(a.peer) !== null)
      const wanted = new Set(kept ? kept.endpoints.map((e) => `${e.host}:${e.port}`) : [])
      for (const [id, entry] of t.bonded) {
        if (wanted.has(id)) continue
        t.bonded.delete(id)
        if (entry.address === null) continue
        const port = Number(id.slice(id.lastIndexOf(':') + 1))
        this.#c.log.info({ peer: t.peer, endpoint: `${entry.address}:${port}` }, 'bonded endpoint removed: its paths close')
        this.#c.engine.forgetBonded({ address: entry.address, port })
      }
    }
  }

  /**
   * A peer is bonded (one path per uplink) when this node has uplinks and the
   * peer is the multipath target (or no target is set). `weighted` is the
   * aggregate mode with the weighted scheduler.
   */
  #bondFor(peer: string | null): DialBond {
    const cfg = this.#config
    if (cfg.interfaces.length === 0) return null
    if (cfg.multipath.target !== null && cfg.multipath.target !== peer) return null
    if (cfg.multipath.mode === 'aggregate' && cfg.multipath.scheduler === 'weighted') return 'weighted'
    return cfg.multipath.mode
  }

  #applyConfig(): void {
    const cfg = this.#config
    const min = this.#init.minBackoffMs ?? 250
    const old = new Map(this.#targets.map((t) => [targetId(t), t]))
    const targets: DialTarget[] = []
    for (const c of cfg.discovery.connectTo) {
      const t: DialTarget =
        c.kind === 'peer'
          ? { peer: c.peer, endpoints: cfg.peers.find((p) => p.name === c.peer)?.endpoints ?? [], nextAttempt: 0, backoff: min, next: 0 }
          : { peer: null, endpoints: [c.endpoint], nextAttempt: 0, backoff: min, next: 0 }
      const prev = old.get(targetId(t))
      targets.push(prev ? Object.assign(prev, { endpoints: t.endpoints }) : t)
    }
    // Every other admitted peer with a known endpoint (pinned with endpoints, or
    // a member whose record names them) is dialled as well, always: see README
    // "Who dials whom". Both sides may dial; the engine keeps one of crossed
    // connections.
    const named = new Set(targets.map((t) => t.peer))
    for (const p of cfg.peers) {
      if (p.key === this.#init.selfKey || named.has(p.name) || p.endpoints.length === 0) continue
      const t: DialTarget = { peer: p.name, endpoints: p.endpoints, nextAttempt: 0, backoff: min, next: 0 }
      const prev = old.get(targetId(t))
      targets.push(prev ? Object.assign(prev, { endpoints: t.endpoints }) : t)
    }
    this.#forgetRemoved(this.#targets, targets)
    this.#targets = targets
    // Each admitted peer's state is dated from when the config (or an event) put it there.
    for (const p of cfg.peers) if (p.key !== this.#init.selfKey) this.#touch(p.key, this.#stateOf(p.key))
  }

  /** Up; else connecting when something here dials it; else waiting for it to dial us. */
  #stateOf(key: string): AdmittedPeerStatus['state'] {
    if (this.#up.has(key)) return 'up'
    const name = this.#nameOf(key)
    return name !== null && this.#targets.some((t) => t.peer === name) ? 'connecting' : 'waiting'
  }

  #satisfied(t: DialTarget): boolean {
    if (t.peer !== null) {
      const key = this.#config.peers.find((p) => p.name === t.peer)?.key
      return key !== undefined && this.#up.has(key)
    }
    const ep = t.endpoints[0]
    if (!ep) return true
    for (const p of this.#up.values()) if (p.remote.port === ep.port && sameHost(p.remote.address, ep.host)) return true
    return false
  }

  #nameOf(key: string): string | null {
    return this.#config.peers.find((p) => p.key === key)?.name ?? null
  }

  #sendHello(peer: string): void {
    const cfg = this.#config
    const hello: HelloMessage = {
      type: 'hello',
      v: PROTOCOL_VERSION,
      name: cfg.node.name,
      role: cfg.node.role,
      overlay: { ipv4: this.#init.self.ipv4, ipv6: this.#init.self.ipv6 },
      subnets: cfg.subnets.map((s) => s.prefix),
      ...(cfg.subnets.some((s) => s.priority !== 100) ? { priorities: cfg.subnets.map((s) => s.priority) } : {}),
      ...((this.#via.get(peer)?.length ?? 0) > 0 ? { via: this.#via.get(peer) } : {}),
      ...(this.#exit !== null ? { exit: this.#exit } : {}),
      ...(cfg.gateway.relay || cfg.node.role === 'bootstrap' || cfg.node.bootstrapMode ? { relay: true } : {}),
      ...(cfg.gateway.advertiseBandwidth !== null ? { bandwidth: cfg.gateway.advertiseBandwidth } : {}),
    }
    try {
      this.#c.engine.sendControl(peer, encodeMessage(hello))
    } catch (err) {
      this.#c.log.warn({ peer: this.#nameOf(peer) ?? peer, err: (err as Error).message }, 'cannot send hello')
    }
  }

  /** Hands the facts (connected peers and their hellos) to `onPeers` when they changed. */
  #report(force: boolean): void {
    const peers: ConnectedPeer[] = [...this.#up.entries()]
      .map(([key, p]) => ({ key, configName: this.#nameOf(key), hello: p.hello ? routingHello(p.hello) : null }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    const sig = JSON.stringify(peers)
    if (!force && sig === this.#lastFacts) return
    this.#lastFacts = sig
    this.#c.onPeers(peers)
  }

  /** The history entry of a key, moved to `state` (its `since` restarts when the state changes). */
  #touch(key: string, state: AdmittedPeerStatus['state']) {
    let h = this.#history.get(key)
    if (!h) {
      h = { state, since: this.#now(), lastError: null }
      this.#history.set(key, h)
    } else if (h.state !== state) {
      h.state = state
      h.since = this.#now()
    }
    return h
  }

  /** The admitted key whose configured endpoint is this address, if one is. */
  #keyAt(remote: { address: string; port: number }): string | null {
    for (const p of this.#config.peers) {
      if (p.endpoints.some((e) => e.port === remote.port && sameHost(e.host, remote.address))) return p.key
    }
    return null
  }
}

/** What the router reads of a hello. */
function routingHello(h: HelloMessage): PeerHello {
  return {
    overlay: h.overlay,
    subnets: h.subnets,
    role: h.role,
    ...(h.priorities ? { priorities: h.priorities } : {}),
    ...(h.bandwidth !== undefined ? { bandwidth: h.bandwidth } : {}),
    ...(h.via ? { via: h.via } : {}),
    ...(h.exit ? { exit: h.exit } : {}),
  }
}

function targetId(t: DialTarget): string {
  return t.peer !== null ? `peer:${t.peer}` : `ep:${t.endpoints.map((e) => `${e.host}:${e.port}`).join(',')}`
}

function sameHost(a: string, b: string): boolean {
  const strip = (s: string) => s.replace(/^::ffff:/i, '').toLowerCase()
  return strip(a) === strip(b)
}
