/**
 * The engine as a subsystem: builds the forwarding engine for a generation,
 * routes its events to whoever listens, and attaches it to the node
 * reconciler, which alone writes its tables.
 */
import type { Logger } from '../log.js'
import { Engine, type EngineEvents, type EngineInit, type EngineStats, type EngineTables } from '../engine/index.js'
import type { MeshEngine } from '../mesh/mesh.js'
import type { EngineTablesPort, NodeReconciler, VersionedTables } from '../reconcile/node.js'
import type { Generation } from './generation.js'
import type { Subsystem } from './subsystem.js'
import { SOCKET_MARK } from '../state/marks.js'
import { ENGINE_KEEPALIVE_MS } from './liveness.js'

/** Who hears the engine's peer events (the mesh). */
export interface EngineListener {
  onPeerUp(ev: { peer: string; remote: { address: string; port: number }; role: 'client' | 'server' }): void
  onPeerDown(ev: { peer: string; reason: string }): void
  onControl(peer: string, data: Uint8Array): void
  onDialFailed(ev: { remote: { address: string; port: number }; peer?: string; reason: string }): void
  /** A handshake was refused: the key is not admitted (yet: discovery may still verify it). */
  onRefused?(ev: { peer: string; remote: { address: string; port: number } }): void
  /** A datagram starting "\0QEP" on the tunnel socket (a punch, a relay's answer): unauthenticated. */
  onRaw?(ev: { remote: { address: string; port: number }; data: Buffer }): void
}

export interface EngineStatus {
  readonly listenPort: number
  /** The tables version the engine runs (0 before the first apply). */
  readonly tablesVersion: number
  readonly stats: EngineStats | null
}

/** What the daemon uses of an engine: its lifecycle, events, tables, counters, and the mesh's commands. */
export interface HostedEngine extends MeshEngine, Pick<Engine, 'setTables' | 'readTables'> {
  start(): Promise<void>
  stop(): Promise<void>
  on<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): unknown
  stats(): EngineStats
  sendRaw(endpoint: { address: string; port: number }, data: Uint8Array): void
  readonly listenPort: number
}

export type EngineFactory = (init: EngineInit) => HostedEngine

export class EngineHost implements Subsystem<EngineStatus | null> {
  readonly name = 'engine'
  readonly #log: Logger
  readonly #node: NodeReconciler
  readonly #listener: () => EngineListener | null
  readonly #create: EngineFactory
  #engine: HostedEngine | null = null
  #starting: HostedEngine | null = null

  constructor(components: { log: Logger; node: NodeReconciler; listener: () => EngineListener | null; createEngine?: EngineFactory }) {
    this.#log = components.log
    this.#node = components.node
    this.#listener = components.listener
    this.#create = components.createEngine ?? ((init) => new Engine(init))
  }

  /** The running engine (commands: dials, control messages); `null` while stopped. */
  get engine(): HostedEngine | null {
    return this.#engine
  }

  async start(gen: Generation): Promise<void> {
    const c = gen.config
    const engine = this.#create({
      tun: { name: c.tun.name, mtu: gen.tunMtu },
      identity: { privateKeyPem: gen.identity.privateKeyPem, publicKey: gen.identity.publicKey },
      listen: { address: c.listen.address, port: c.listen.port },
      // Marked always (an exit may be switched on by a reload; the engine's sockets live as long as it does).
      fwmark: SOCKET_MARK,
      keepaliveMs: ENGINE_KEEPALIVE_MS,
      reorder: { maxDelayMs: c.multipath.reorder.maxDelay, maxBytes: c.multipath.reorder.maxBytes },
      log: this.#log,
    })
    // Events of an engine that was replaced (a late peer-down from a stopped one) reach nobody.
    const listener = () => (this.#engine === engine || this.#starting === engine ? this.#listener() : null)
    engine.on('peer-up', (ev) => listener()?.onPeerUp(ev))
    engine.on('peer-down', (ev) => listener()?.onPeerDown(ev))
    engine.on('control', (ev) => listener()?.onControl(ev.peer, ev.data))
    engine.on('raw', (ev) => listener()?.onRaw?.(ev))
    engine.on('refused', (ev) => {
      this.#log.info({ key: ev.peer, remote: `${ev.remote.address}:${ev.remote.port}` }, 'refused a peer whose key is not admitted')
      listener()?.onRefused?.(ev)
    })
    engine.on('dial-failed', (ev) => {
      this.#log.info({ remote: `${ev.remote.address}:${ev.remote.port}`, key: ev.peer ?? null, reason: ev.reason }, 'dial failed')
      listener()?.onDialFailed(ev)
    })
    engine.on('error', (err: Error) => this.#log.error({ err: err.message }, 'engine error'))
    this.#starting = engine
    try {
      await engine.start()
    } finally {
      this.#starting = null
    }
    this.#engine = engine
    await this.#node.attachEngine(tablesPort(engine))
  }

  async stop(): Promise<void> {
    const engine = this.#engine
    this.#engine = null
    await this.#node.attachEngine(null)
    await engine?.stop().catch((err: Error) => this.#log.warn({ err: err.message }, 'engine stop failed'))
  }

  /** Tables reach the engine through the reconciler; a restart is the daemon's call (before the apply). */
  async onReload(): Promise<void> {}

  status(): EngineStatus | null {
    const e = this.#engine
    if (!e) return null
    const stats = e.stats()
    return { listenPort: e.listenPort, tablesVersion: stats.global.tablesVersion, stats }
  }
}

/** The engine's table face in the reconciler's normal form (defaults filled in). */
export function tablesPort(engine: Pick<HostedEngine, 'setTables' | 'readTables'>): EngineTablesPort {
  return {
    setTables: (t: VersionedTables) => engine.setTables(t),
    readTables: () => {
      const t: EngineTables | null = engine.readTables()
      if (t === null) return null
      return {
        version: t.version,
        allowedPeers: [...t.allowedPeers],
        routes: t.routes.map((r) => ({ prefix: r.prefix, peer: r.peer })),
        uplinks: t.uplinks.map((u) => ({ name: u.name, weight: u.weight ?? 1, role: u.role ?? 'primary', priority: u.priority ?? 0, cost: u.cost ?? 0, ...(u.rateBps !== undefined ? { rateBps: u.rateBps } : {}) })),
        classes: t.classes.map((k) => ({
          dscp: [...(k.dscp ?? [])],
          ports: (k.ports ?? []).map((r): [number, number] => [r[0], r[1]]),
          ...(k.maxPacketSize !== undefined ? { maxPacketSize: k.maxPacketSize } : {}),
          ...(k.uplink !== undefined ? { uplink: k.uplink } : {}),
        })),
        acceptBonded: t.acceptBonded,
        reorder: { maxDelayMs: t.reorder.maxDelayMs, maxBytes: t.reorder.maxBytes },
        ...(t.acl ? { acl: t.acl } : {}),
      }
    },
  }
}
