/**
 * The mesh as a subsystem: whom to dial, hellos, and the facts (connected
 * peers and what they said) handed to the daemon, which turns them into
 * desired state. A new engine (identity or listen socket changed) gets a new
 * mesh; otherwise a reload swaps the config in and live tunnels stay.
 */
import type { Config } from '../config/index.js'
import type { Logger } from '../log.js'
import type { AuthMessage, ControlMessage } from '../mesh/messages.js'
import { Mesh, type AdmittedPeerStatus, type PeerStatus } from '../mesh/mesh.js'
import type { ConnectedPeer } from '../state/routes.js'
import type { EngineHost, EngineListener } from './engine-host.js'
import type { Generation } from './generation.js'
import type { Subsystem } from './subsystem.js'

export interface MeshStatus {
  readonly admitted: readonly AdmittedPeerStatus[]
  readonly connected: readonly PeerStatus[]
}

/** Time for the byes a stopping mesh sent to leave before the engine goes. */
const BYE_GRACE_MS = 50
/** Engine events kept while no mesh runs (between an engine's first tables and the mesh's start). */
const MAX_EARLY_EVENTS = 4096

type EarlyEvent = (mesh: Mesh) => void

/** What discovery hears through the mesh. */
export interface MeshOthers {
  onPeerUp?(ev: Parameters<EngineListener['onPeerUp']>[0]): void
  /** `reason` as the engine gave it: 'replaced' means another connection to the same peer took over (its peer-up follows). */
  onPeerDown?(peer: string, reason: string): void
  onRaw?(ev: Parameters<NonNullable<EngineListener['onRaw']>>[0]): void
  onRefused?(peer: string): void
  onMessage?(peer: string, msg: Exclude<ControlMessage, { type: 'hello' | 'bye' }>): void
  onAuth?(peer: string, msg: AuthMessage): void
}

export class MeshHost implements Subsystem<MeshStatus>, EngineListener {
  readonly name = 'mesh'
  readonly #log: Logger
  readonly #engines: EngineHost
  readonly #onPeers: (peers: readonly ConnectedPeer[]) => void
  readonly #configFor: (gen: Generation) => Config
  readonly #others: MeshOthers
  #gen: Generation | null = null
  #mesh: Mesh | null = null
  /** The engine the running mesh dials through. */
  #engine: unknown = null
  /**
   * Events from the current engine that came before the mesh started (a peer
   * the first tables admitted connected at once): replayed by `start`, so the
   * peer is not lost. Dropped with the engine.
   */
  #early: { engine: unknown; events: EarlyEvent[] } = { engine: null, events: [] }

  constructor(components: {
    log: Logger
    engines: EngineHost
    onPeers: (peers: readonly ConnectedPeer[]) => void
    /** The config the mesh runs: the generation's, with the admitted peers (pinned and certified). */
    configFor?: (gen: Generation) => Config
    /** Who else hears peers come up, refused keys and messages the mesh does not handle (discovery). */
    others?: MeshOthers
  }) {
    this.#log = components.log
    this.#engines = components.engines
    this.#onPeers = components.onPeers
    this.#configFor = components.configFor ?? ((gen) => gen.config)
    this.#others = components.others ?? {}
  }

  /** The admitted peers changed (not the generation): dial targets and names follow. */
  setPeers(): void {
    if (this.#mesh && this.#gen) this.#mesh.setPeers(this.#configFor(this.#gen))
  }

  /** The exit this node uses now (see `Mesh.setExit`). */
  setExit(name: string | null): void {
    this.#mesh?.setExit(name)
  }

  /** A hub's routes per peer (see `Mesh.setHubRoutes`). */
  setHubRoutes(via: ReadonlyMap<string, readonly string[]>): void {
    this.#mesh?.setHubRoutes(via)
  }

  /** Keys of the peers connected now. */
  connectedKeys(): string[] {
    return this.#mesh?.peers().map((p) => p.key) ?? []
  }

  async start(gen: Generation): Promise<void> {
    const engine = this.#engines.engine
    if (!engine) return
    this.#engine = engine
    this.#gen = gen
    const mesh = new Mesh(
      { config: this.#configFor(gen), self: gen.self, selfKey: gen.selfKey },
      { engine, log: this.#log, onPeers: (p) => this.#onPeers(p), onMessage: (peer, msg) => this.#others.onMessage?.(peer, msg), onAuth: (peer, msg) => this.#others.onAuth?.(peer, msg) },
    )
    this.#mesh = mesh
    mesh.start()
    const early = this.#early.engine === engine ? this.#early.events : []
    this.#early = { engine: null, events: [] }
    for (const replay of early) replay(mesh)
  }

  /** Says bye to every peer and stops dialling. */
  async stop(): Promise<void> {
    const mesh = this.#mesh
    this.#mesh = null
    this.#engine = null
    if (!mesh) return
    mesh.stop()
    await new Promise((r) => setTimeout(r, BYE_GRACE_MS))
  }

  async onReload(_prev: Generation, next: Generation): Promise<void> {
    if (this.#mesh && this.#engine === this.#engines.engine) {
      this.#gen = next
      this.#mesh.reload(this.#configFor(next))
      return
    }
    await this.stop()
    await this.start(next)
  }

  status(): MeshStatus {
    return { admitted: this.#mesh?.admitted() ?? [], connected: this.#mesh?.peers() ?? [] }
  }

  onPeerUp(ev: Parameters<EngineListener['onPeerUp']>[0]): void {
    this.#deliver((m) => {
      m.onPeerUp(ev)
      this.#others.onPeerUp?.(ev)
    })
  }

  onRefused(ev: { peer: string; remote: { address: string; port: number } }): void {
    this.#others.onRefused?.(ev.peer)
  }

  onPeerDown(ev: Parameters<EngineListener['onPeerDown']>[0]): void {
    this.#deliver((m) => {
      m.onPeerDown(ev)
      this.#others.onPeerDown?.(ev.peer, ev.reason)
    })
  }

  onRaw(ev: Parameters<NonNullable<EngineListener['onRaw']>>[0]): void {
    if (this.#mesh) this.#others.onRaw?.(ev)
  }

  /** The connected peers with their names and hellos. */
  connected(): PeerStatus[] {
    return this.#mesh?.peers() ?? []
  }

  onControl(peer: string, data: Uint8Array): void {
    this.#deliver((m) => m.onControl(peer, data))
  }

  onDialFailed(ev: Parameters<EngineListener['onDialFailed']>[0]): void {
    this.#deliver((m) => m.onDialFailed(ev))
  }

  /** To the running mesh, or kept for the mesh about to start on the current engine. */
  #deliver(event: EarlyEvent): void {
    if (this.#mesh) return event(this.#mesh)
    const engine = this.#engines.engine
    if (!engine) return
    if (this.#early.engine !== engine) this.#early = { engine, events: [] }
    if (this.#early.events.length < MAX_EARLY_EVENTS) this.#early.events.push(event)
  }
}
