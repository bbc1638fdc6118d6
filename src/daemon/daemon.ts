/**
 * The node daemon: wiring, and the reload sequence. Everything else is a
 * subsystem (`subsystem.ts`) or the node reconciler.
 *
 *   control socket  (also the single-instance lock)
 *   node reconciler (the one writer of kernel state and engine tables)
 *   engine host     (the forwarding plane's lifecycle and events)
 *   subsystems      mesh, discovery, config watcher  (metrics, a UI go here)
 *
 * One config change: file → watcher → load (validate) → on error keep running
 * and remember the diagnostics for `status` → otherwise prepare the new
 * generation → rebuild the engine if identity/listen/TUN changed → the node
 * reconciler applies desired state (kernel + engine tables; rolls both back on
 * failure) → each subsystem's onReload. Facts the mesh reports (peers up,
 * their hellos) and the membership discovery verified (certified members,
 * the revocation list) re-run the apply with the same generation.
 */
import { readFile } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import type { Config, Diagnostic, LoadResult } from '../config/index.js'
import { writeConfigFile } from '../config/write.js'
import { QeError } from '../errors.js'
import type { Logger } from '../log.js'
import { ControlServer, type ControlCaller } from '../observe/control-socket.js'
import { Discovery } from '../discovery/discovery.js'
import { encodeMessage, type ControlMessage, type TraversalMessage } from '../mesh/messages.js'
import { RelayServer } from '../traversal/relay-server.js'
import { Traversal } from '../traversal/traversal.js'
import { buildStatus, describeFailure, type NodeStatus } from '../observe/status.js'
import { ConfirmWindow, NodeReconciler, Reconciler, type NodeApplyResult } from '../reconcile/index.js'
import { desiredNode, diffEngine, shortKey, type ConnectedPeer, type MeshRoutes, type PeerNamer } from '../state/index.js'
import { hubAdvertisement } from '../state/routes.js'
import { ENGINE_KEEPALIVE_MS, Liveness } from './liveness.js'
import { effectivePeers, NO_MEMBERSHIP, withPeers, type Membership, type PeerLimits } from '../state/members.js'
import { createSystemAdapter } from '../system/index.js'
import type { SystemAdapter } from '../system/types.js'
import { EngineHost, type EngineFactory } from './engine-host.js'
import { needsEngineRestart, prepareGeneration, type Generation } from './generation.js'
import { MeshHost } from './mesh-host.js'
import { AuditHost } from './audit-host.js'
import type { AuditFile } from '../audit/log.js'
import type { Subsystem } from './subsystem.js'
import { WatchHost } from './watch.js'
import { ObserveHost } from './observe-host.js'
import { AuthHost } from './auth-host.js'
import type { PolicyTable } from '../policy/policy.js'
import { nftablesPort, type FirewallPort } from '../system/nftables.js'
import { deriveOverlayAddresses } from '../mesh/identity.js'

/** A config change was rejected (invalid, or its apply failed and was rolled back). */
export class ReloadFailedError extends QeError {
  override readonly code = 'QE_RELOAD_FAILED'
  constructor(message = 'the new config was not applied', options?: ErrorOptions) {
    super(message, options)
    this.name = 'ReloadFailedError'
  }
}

/** The first apply of kernel state failed: the daemon cannot run. */
export class StartFailedError extends QeError {
  override readonly code = 'QE_START_FAILED'
  constructor(message = 'the daemon could not start', options?: ErrorOptions) {
    super(message, options)
    this.name = 'StartFailedError'
  }
}

export interface DaemonInit {
  readonly config: Config
  /** The file the config came from (watched for changes); `null` = no file (stdin, tests). */
  readonly configPath: string | null
  /** Loads a config text (with the command-line flags applied, so flags keep winning over the file). */
  readonly load: (text: string, file: string) => Promise<LoadResult> | LoadResult
  /** The text the config was loaded from (so the watcher only reacts to a real change). */
  readonly configText: string | null
}

export interface DaemonComponents {
  readonly log: Logger
  /** The kernel adapter (default: netlink). Tests inject a fake. */
  readonly system?: SystemAdapter
  /** Builds the forwarding engine (default: the native one). Tests inject a fake. */
  readonly createEngine?: EngineFactory
  /** The nftables adapter (default: `nft`). Tests inject a fake. */
  readonly firewall?: FirewallPort
  /** Opens the audit log's file for appending (default: the real file). Tests inject one that fails. */
  readonly auditFile?: (path: string) => Promise<AuditFile>
}

/** What made a config run: the file changed (or SIGHUP / `reload`), `apply`, its `confirm`, or the revert of an unconfirmed apply. */
export type ConfigSource = 'file' | 'apply' | 'confirm' | 'revert'

/** A refused key is recorded at most this often (a peer that retries its handshake would fill the log). */
const REFUSED_RECORD_MS = 60_000

export interface ReloadOutcome {
  readonly ok: boolean
  readonly errors: readonly Diagnostic[]
  /** The kernel actions and engine table changes applied (or attempted, then rolled back). */
  readonly plan: readonly string[]
  /** Identity, listen address or TUN name changed: tunnels were rebuilt (in-process). */
  readonly restartedTunnels?: boolean
}

export interface PlanOutcome {
  readonly ok: boolean
  readonly errors: readonly Diagnostic[]
  readonly actions: readonly { readonly text: string; readonly live: boolean }[]
  /** Applying it rebuilds every tunnel (identity, listen address or TUN name changed); still no process restart. */
  readonly restartTunnels: boolean
}

export class Daemon {
  readonly #log: Logger
  readonly #init: DaemonInit
  readonly #node: NodeReconciler
  readonly #engines: EngineHost
  readonly #mesh: MeshHost
  readonly #watch: WatchHost
  readonly #discovery: Discovery
  readonly #traversal: Traversal
  readonly #observe: ObserveHost
  readonly #auth: AuthHost
  /** The policy of the last successful apply (null: none enforced). */
  #policy: { table: PolicyTable; origins: readonly number[] } | null = null
  #policyTimer: NodeJS.Timeout | null = null
  #policyReported = new Map<string, number>()
  readonly #audit: AuditHost
  #refusedRecorded = new Map<string, number>()
  /** What discovery verified: certified members and the revocation list. */
  #membership: Membership = NO_MEMBERSHIP
  #effectiveCache: { gen: Generation; membership: Membership; config: Config; limits: ReadonlyMap<string, PeerLimits> } | null = null
  #reportedClashes = new Set<string>()
  /** Started after the first apply, in order; reloaded in order; stopped in reverse. */
  readonly #subsystems: readonly Subsystem[]
  readonly #confirm: ConfirmWindow
  #control: ControlServer | null = null
  #gen: Generation | null = null
  #generation = 0
  #facts: readonly ConnectedPeer[] = []
  #routes: MeshRoutes = { fib: [], learned: [], rejected: [] }
  #reportedRejections = new Set<string>()
  /** Claims refused since start (each counted once while it lasts). */
  #refusedClaims = 0
  readonly #liveness: Liveness
  #errors: Diagnostic[] = []
  #warnings: Diagnostic[] = []
  #startedAt = 0
  /** The one queue of changes: reloads, and applies the mesh's facts ask for. Never two at once. */
  #reloading: Promise<void> = Promise.resolve()
  #factsQueued = false
  /** The config text the running generation came from (what a revert goes back to). */
  #appliedText: string | null = null
  #stopping = false

  constructor(init: DaemonInit, components: DaemonComponents) {
    this.#init = init
    this.#log = components.log
    const log = (component: string) => this.#log.child({ component })
    this.#audit = new AuditHost({ log: log('audit'), ...(components.auditFile ? { openFile: components.auditFile } : {}) })
    const audit = this.#audit
    this.#observe = new ObserveHost({
      log: log('observe'),
      snapshot: () => this.status(),
      audit: () => {
        const st = this.#audit.status()
        return st.enabled
          ? { enabled: true, note: st.failed ? `the audit log cannot be written: ${st.failed}` : `${st.path} (${st.lines} lines written since start)`, lines: this.#audit.recent() }
          : { enabled: false, note: 'no audit log: set audit.path', lines: [] }
      },
    })
    const observe = this.#observe
    const kernel = new Reconciler({}, {
      system: components.system ?? createSystemAdapter(),
      log: log('reconcile'),
      // Desired applies are counted whole (kernel, firewall, engine) in #applyNode.
      onResult: (r) => {
        if (r.trigger === 'drift' || r.trigger === 'periodic') observe.observeApply(r.trigger, r.ok, r.durationMs, r.applied > 0)
      },
    })
    this.#node = new NodeReconciler({}, { kernel, log: log('reconcile'), firewall: components.firewall ?? nftablesPort() })
    this.#engines = new EngineHost({ log: log('engine'), node: this.#node, listener: () => this.#mesh, ...(components.createEngine ? { createEngine: components.createEngine } : {}) })
    this.#discovery = new Discovery({
      log: log('discovery'),
      onMembership: (m) => this.#onMembership(m),
      send: (peer, msg) => {
        const engine = this.#engines.engine
        if (!engine) throw new StartFailedError('no engine runs')
        engine.sendControl(peer, encodeMessage(msg))
      },
      connected: () => this.#mesh.connectedKeys(),
      listenPort: () => this.#engines.engine?.listenPort ?? this.#gen?.config.listen.port ?? 0,
      extraEndpoints: () => this.#traversal.reflexiveEndpoints(),
      onJoin: (j) => void audit.record('join', { peer: j.name, key: j.key, groups: [...j.groups] }),
    })
    const discovery = this.#discovery
    this.#traversal = new Traversal({
      log: log('traversal'),
      engine: () => this.#engines.engine,
      send: (peer, msg) => {
        const engine = this.#engines.engine
        if (!engine) throw new StartFailedError('no engine runs')
        engine.sendControl(peer, encodeMessage(msg))
      },
      connected: () => this.#mesh.connected(),
      members: () => (this.#gen ? this.#effective(this.#gen).config.peers : []),
      localEndpoints: () => discovery.localTunnelEndpoints(),
      listenPort: () => this.#engines.engine?.listenPort ?? this.#gen?.config.listen.port ?? 0,
      onCandidatesChanged: () => discovery.endpointsChanged(),
      createRelay: (o) => new RelayServer({ bind: o.bind, log: o.log, ...(o.rateBps ? { rateBps: o.rateBps } : {}) }),
    })
    const traversal = this.#traversal
    this.#auth = new AuthHost({
      log: log('auth'),
      send: (peer, msg) => {
        const engine = this.#engines.engine
        if (!engine) throw new StartFailedError('no engine runs')
        engine.sendControl(peer, encodeMessage(msg))
      },
      nameOf: (key) => (this.#gen ? this.#effective(this.#gen).config.peers.find((p) => p.key === key)?.name ?? null : null),
      keyOf: (name) => (this.#gen ? this.#effective(this.#gen).config.peers.find((p) => p.name === name)?.key ?? null : null),
      onChange: () => this.#queueFactsApply(),
      audit: (type, fields) => void this.#audit.record(type, fields),
    })
    const auth = this.#auth
    this.#mesh = new MeshHost({
      log: log('mesh'),
      engines: this.#engines,
      onPeers: (p) => this.#onPeers(p),
      configFor: (gen) => this.#effective(gen).config,
      others: {
        onPeerUp: (ev) => {
          void audit.record('peer-up', { peer: this.#peerName(ev.peer), key: ev.peer, remote: `${ev.remote.address}:${ev.remote.port}` })
          discovery.onPeerUp(ev.peer)
          traversal.onPeerUp(ev)
          auth.onPeerUp(ev.peer)
        },
        onPeerDown: (peer, reason) => {
          void audit.record('peer-down', { peer: this.#peerName(peer), key: peer })
          traversal.onPeerDown(peer)
          auth.onPeerDown(peer, reason)
        },
        onAuth: (peer, msg) => auth.onMessage(peer, msg),
        onRefused: (peer) => {
          this.#recordRefused(peer)
          discovery.onRefused(peer)
        },
        onRaw: (ev) => traversal.onRaw(ev),
        onMessage: (peer, msg) => (isTraversal(msg) ? traversal.onMessage(peer, msg) : discovery.onMessage(peer, msg)),
      },
    })
    this.#liveness = new Liveness({
      stats: () => this.#engines.engine?.stats().peers ?? null,
      keepaliveMs: ENGINE_KEEPALIVE_MS,
      onChange: () => this.#queueFactsApply(),
    })
    this.#watch = new WatchHost({ path: this.#configPath, loaded: init.configText }, { onChange: (text) => void this.#queueReload(text), log: log('watch') })
    // The audit log first: started before the others record, stopped after them (their last events are kept).
    this.#subsystems = [this.#audit, this.#auth, this.#mesh, this.#discovery, this.#traversal, this.#watch, this.#observe]
    this.#confirm = new ConfirmWindow({ log: log('confirm') })
  }

  async start(): Promise<void> {
    this.#startedAt = Date.now()
    this.#appliedText = this.#init.configText
    const config = this.#init.config
    this.#control = new ControlServer(
      { path: config.control.socket },
      {
        handlers: this.#handlers(),
        log: this.#log.child({ component: 'control' }),
        onCommand: (ev) => void this.#audit.record('cmd', { cmd: ev.cmd, uid: ev.caller.cred?.uid ?? null, pid: ev.caller.cred?.pid ?? null, gid: ev.caller.cred?.gid ?? null, ok: ev.ok, ...(ev.code ? { code: ev.code } : {}) }),
      },
    )
    await this.#control.start() // also the single-instance lock: fails before anything else is touched
    try {
      await this.#audit.open(config.audit)
      const gen = await prepareGeneration(config)
      await this.#engines.start(gen)
      this.#gen = gen
      this.#generation = 1
      await this.#node.start()
      const res = await this.#applyNode(gen)
      if (!res.ok) throw new StartFailedError(`cannot set up the node: ${describeFailure(res)}`)
      for (const s of this.#subsystems) await s.start(gen)
      this.#liveness.start()
      // Policy denies in the audit log: a summary a minute, per rule that dropped something.
      this.#policyTimer = setInterval(() => this.#auditDenies(), 60_000)
      this.#policyTimer.unref()
      await this.#noteWarnings(this.#init.configText)
      this.#log.info(
        { name: config.node.name, key: gen.selfKey, tun: config.tun.name, ipv4: gen.self.ipv4, ipv6: gen.self.ipv6, listen: `${config.listen.address}:${this.#engines.engine?.listenPort}` },
        'node started',
      )
    } catch (err) {
      await this.stop().catch(() => undefined)
      throw err
    }
  }

  /** Clean stop: subsystems in reverse (the mesh says bye), the engine (its TUN vanishes), every kernel object we own. */
  async stop(): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    this.#confirm.clear()
    this.#liveness.stop()
    if (this.#policyTimer) clearInterval(this.#policyTimer)
    this.#auditDenies()
    await this.#reloading.catch(() => undefined)
    for (const s of [...this.#subsystems].reverse()) await s.stop().catch((err: Error) => this.#log.warn({ subsystem: s.name, err: err.message }, 'stop failed'))
    await this.#engines.stop()
    if (this.#gen !== null) {
      const r = await this.#node.cleanup().catch((err: Error) => ({ ok: false, error: { message: err.message } }) as const)
      if (!r.ok) this.#log.warn({ err: 'error' in r && r.error ? r.error.message : 'unknown' }, 'cleanup of kernel state incomplete')
    }
    await this.#node.stop().catch(() => undefined)
    await this.#control?.stop().catch(() => undefined)
    this.#control = null
    this.#log.info('node stopped')
  }

  /** SIGHUP: reload the file even if its content looks unchanged. */
  reloadNow(): void {
    const file = this.#configPath
    if (!file) return
    readFile(file, 'utf8').then(
      (t) => this.#queueReload(t, file),
      (err: Error) => this.#log.warn({ err: err.message }, 'cannot read config'),
    )
  }

  status(): NodeStatus {
    const gen = this.#gen
    return buildStatus({
      node: gen ? { name: gen.config.node.name, key: gen.selfKey, overlay: gen.self, tun: gen.config.tun.name, tunMtu: gen.tunMtu } : null,
      config: { file: this.#configPath, generation: this.#generation, errors: this.#errors, warnings: this.#warnings, pendingConfirm: this.#confirm.status() },
      lastApply: this.#node.lastResult,
      mesh: this.#mesh.status(),
      routes: { ...this.#routes, refusedTotal: this.#refusedClaims },
      engine: this.#engines.status(),
      discovery: this.#discovery.status(),
      traversal: this.#traversal.status(),
      observe: this.#observe.status(),
      audit: this.#audit.status(),
      policy: this.#policy,
      auth: this.#auth.status(),
      startedAt: this.#startedAt,
      now: Date.now(),
      groupsOf: (key) => (gen ? this.#effective(gen).config.peers.find((p) => p.key === key)?.groups ?? [] : []),
    })
  }

  /** Packets each deny rule (and the default) dropped since the last summary, as one audit line each (rate-limited by construction: one a minute). */
  #auditDenies(): void {
    const st = this.#policy ? this.status().policy : null
    if (!st) return
    const now = new Map<string, number>()
    for (const r of st.rules) if (r.action === 'deny') now.set(`${r.number} ${r.name}`, r.hits)
    if (st.default === 'deny') now.set('default', st.defaultHits)
    for (const [rule, hits] of now) {
      const before = this.#policyReported.get(rule) ?? 0
      const n = hits >= before ? hits - before : hits
      if (n > 0) void this.#audit.record('policy-denies', { rule, packets: n, period: '1m', policy: st.hash })
    }
    this.#policyReported = now
  }

  // ---- desired state and its apply ----

  /**
   * The mesh's facts changed: the running generation, applied again with them,
   * on the same queue as reloads (a reload in flight finishes first, and the
   * apply then runs whichever generation it left running). Coalesced: at most
   * one waits.
   */
  #onPeers(peers: readonly ConnectedPeer[]): void {
    this.#facts = peers
    this.#queueFactsApply()
  }

  /** Discovery verified a new membership: the mesh dials and names what it admits, and the apply admits it. */
  #onMembership(m: Membership): void {
    const before = new Set(this.#membership.revoked)
    const added = m.revoked.filter((k) => !before.has(k))
    if (added.length > 0) void this.#audit.record('revocations', { added, total: m.revoked.length })
    this.#membership = m
    const gen = this.#gen
    if (gen) {
      const eff = effectivePeers(gen.config, m, gen.selfKey)
      const now = new Set<string>()
      for (const c of eff.nameClashes) {
        const id = `${c.key}|${c.name}`
        now.add(id)
        if (!this.#reportedClashes.has(id)) this.#log.warn({ key: c.key, name: c.name }, 'a certified member has the name of a pinned peer: not admitted')
      }
      for (const name of eff.revokedPinned) {
        if (this.#reportedClashes.has(`revoked|${name}`)) continue
        this.#log.warn({ peer: name }, 'a pinned peer\'s key is revoked: cut off')
        void this.#audit.record('peer-revoked', { peer: name, pinned: true })
      }
      for (const name of eff.revokedPinned) now.add(`revoked|${name}`)
      this.#reportedClashes = now
    }
    this.#queueFactsApply()
  }

  /** The config as the node runs it: the generation's, its peers the admitted ones (pinned and certified). */
  #effective(gen: Generation): { config: Config; limits: ReadonlyMap<string, PeerLimits> } {
    const c = this.#effectiveCache
    if (c && c.gen === gen && c.membership === this.#membership) return c
    const eff = effectivePeers(gen.config, this.#membership, gen.selfKey)
    const next = { gen, membership: this.#membership, config: withPeers(gen.config, eff.peers), limits: eff.limits }
    this.#effectiveCache = next
    return next
  }

  #queueFactsApply(): void {
    if (this.#factsQueued || this.#stopping) return
    this.#factsQueued = true
    this.#reloading = this.#reloading
      .then(async () => {
        this.#factsQueued = false
        const gen = this.#gen
        if (!gen || this.#stopping) return
        await this.#applyNode(gen)
        // Dial newly admitted members only once the engine admits them (their handshake would be refused before).
        this.#mesh.setPeers()
      })
      .catch((err: Error) => this.#log.error({ err: err.message }, 'apply failed'))
  }

  /** The desired node state of `gen` with the mesh's facts (a plan for a rebuild passes none: they are forgotten). */
  #desired(gen: Generation, peers: readonly ConnectedPeer[] = this.#facts) {
    const { config, limits } = this.#effective(gen)
    // A client without a second-factor session (auth.require-2fa) is left out: no route to or from it.
    const limited = peers.filter((p) => !this.#auth.gated({ key: p.key, role: p.hello?.role ?? null })).map((p) => {
      const live = this.#liveness.of(p.key)
      return { ...p, limits: limits.get(p.key) ?? null, ...(live ? { stale: live.stale, rttMs: live.rttMs } : {}) }
    })
    return desiredNode(config, { selfKey: gen.selfKey, self: gen.self, tunMtu: gen.tunMtu, peers: limited, memberAddress: (name) => memberAddress(config, limits, name) }, this.#routes)
  }

  async #applyNode(gen: Generation): Promise<NodeApplyResult> {
    const { state, routes, policy } = this.#desired(gen)
    const t0 = performance.now()
    const res = await this.#node.apply(state, namer(this.#effective(gen).config))
    this.#observe.observeApply('desired', res.ok, performance.now() - t0, res.kernel.applied > 0 || res.engine.actions.length > 0)
    if (res.ok) {
      this.#noteRoutes(gen, routes)
      this.#advertiseHub(gen, routes)
      this.#policy = policy
    }
    // The reconciler logs every apply (plan and result) itself; add only why a failure failed.
    if (!res.ok) this.#log.error({ failure: describeFailure(res), rolledBack: res.kernel.ok ? res.engine.rolledBack : res.kernel.rolledBack }, 'apply failed')
    return res
  }

  /** A hub tells each connected member what it routes for it (a new hello where that changed). */
  #advertiseHub(gen: Generation, routes: MeshRoutes): void {
    const config = this.#effective(gen).config
    const via = new Map<string, readonly string[]>()
    for (const p of this.#facts) via.set(p.key, hubAdvertisement(config, routes, this.#facts, p.key))
    this.#mesh.setHubRoutes(via)
    const exit = routes.exit?.ipv4.mode === 'tunnel' ? routes.exit.ipv4.wanted : routes.exit?.ipv6.mode === 'tunnel' ? routes.exit.ipv6.wanted : null
    this.#mesh.setExit(exit)
  }

  /** Keeps the routes for status; each refused claim is logged once while it lasts. */
  #noteRoutes(gen: Generation, routes: MeshRoutes): void {
    this.#routes = routes
    const name = namer(this.#effective(gen).config)
    const now = new Set<string>()
    for (const r of routes.rejected) {
      const id = `${r.peer}|${r.what}|${r.reason}`
      now.add(id)
      if (!this.#reportedRejections.has(id)) {
        this.#refusedClaims++
        this.#log.warn({ peer: name(r.peer), what: r.what, reason: r.reason }, 'refused a route from a peer')
      }
    }
    this.#reportedRejections = now
  }

  /** Logs the running config's warnings (keys this version does not act on, …) and keeps them for status. */
  async #noteWarnings(text: string | null): Promise<void> {
    if (text === null) return
    const res = await this.#init.load(text, this.#configPath ?? '<config>')
    this.#warnings = res.diagnostics.filter((d) => d.severity === 'warning')
    for (const d of this.#warnings) this.#log.warn({ file: d.file, line: d.line, col: d.col, path: d.path, code: d.code }, d.message)
  }

  /** `name (k3JdQx9a…)` of a key by the running config (the short key for a stranger). */
  #peerName(key: string): string {
    return this.#gen ? namer(this.#effective(this.#gen).config)(key) : shortKey(key)
  }

  #recordRefused(key: string): void {
    const now = Date.now()
    const last = this.#refusedRecorded.get(key)
    if (last !== undefined && now - last < REFUSED_RECORD_MS) return
    if (this.#refusedRecorded.size > 4096) this.#refusedRecorded.clear()
    this.#refusedRecorded.set(key, now)
    void this.#audit.record('peer-refused', { key })
  }

  /** A change that ran: its generation, plan (count and the first lines) and where it came from. */
  async #recordApplied(source: ConfigSource, file: string, plan: readonly string[], extra: Record<string, unknown> = {}): Promise<void> {
    await this.#audit.record('config-applied', { generation: this.#generation, source, file, changes: plan.length, plan: plan.slice(0, 20), ...extra })
  }

  async #recordRejected(source: ConfigSource, file: string, errors: readonly Diagnostic[]): Promise<void> {
    await this.#audit.record('config-rejected', {
      source,
      file,
      errors: errors.slice(0, 20).map((d) => ({ code: d.code, message: d.message, ...(d.path ? { path: d.path } : {}), ...(d.line ? { line: d.line } : {}) })),
    })
  }

  // ---- reload ----

  /** Serializes reloads: one at a time, in arrival order. */
  #queueReload(text: string, file = this.#configPath ?? '<config>', source: ConfigSource = 'file'): Promise<ReloadOutcome> {
    const run = this.#reloading.then(() => this.#reload(text, file, source))
    this.#reloading = run.then(
      () => undefined,
      (err: Error) => this.#log.error({ err: err.message }, 'reload failed'),
    )
    return run
  }

  async #reload(text: string, file: string, source: ConfigSource): Promise<ReloadOutcome> {
    const prev = this.#gen
    if (this.#stopping || !prev) return { ok: false, errors: [], plan: [] }
    // No change runs unrecorded: while the audit log cannot be written, only the revert of an unconfirmed apply (back to what ran) goes through.
    const auditDown = this.#audit.failed
    if (auditDown !== null && source !== 'revert') {
      this.#errors = [{ file, line: 0, col: 0, path: 'audit.path', severity: 'error', code: 'QE_AUDIT_WRITE', message: `the audit log cannot be written: ${auditDown}; changes are refused until it can (the running config stays, tunnels keep running)` }]
      this.#log.error({ file, source, err: auditDown }, 'config change refused: the audit log cannot be written')
      return { ok: false, errors: this.#errors, plan: [] }
    }
    const outcome = await this.#reloadChecked(text, file)
    if (outcome.ok) await this.#recordApplied(source, file, outcome.plan, outcome.restartedTunnels ? { restartedTunnels: true } : {})
    else await this.#recordRejected(source, file, outcome.errors)
    return outcome
  }

  async #reloadChecked(text: string, file: string): Promise<ReloadOutcome> {
    const prev = this.#gen
    if (!prev) return { ok: false, errors: [], plan: [] }
    const res = await this.#init.load(text, file)
    if (!res.ok) {
      this.#errors = res.diagnostics.filter((d) => d.severity === 'error')
      for (const d of this.#errors) this.#log.error({ file: d.file, line: d.line, col: d.col, path: d.path, code: d.code }, `config not applied: ${d.message}`)
      return { ok: false, errors: this.#errors, plan: [] }
    }
    let next: Generation
    try {
      next = await prepareGeneration(res.config)
    } catch (err) {
      this.#errors = [{ file, line: 0, col: 0, path: 'node.identity', severity: 'error', code: (err as QeError).code ?? 'QE_ERROR', message: (err as Error).message }]
      this.#log.error({ err: (err as Error).message }, 'config not applied')
      return { ok: false, errors: this.#errors, plan: [] }
    }
    this.#errors = []
    const rebuild = needsEngineRestart(prev, next)
    if (rebuild) {
      this.#log.info('identity, listen address or TUN name changed: rebuilding tunnels')
      try {
        await this.#rebuildEngine(next)
      } catch (err) {
        this.#errors = [{ file, line: 0, col: 0, path: 'listen', severity: 'error', code: (err as QeError).code ?? 'QE_START_FAILED', message: `cannot rebuild the tunnels: ${(err as Error).message}; the previous config runs` }]
        await this.#recover(prev)
        return { ok: false, errors: this.#errors, plan: [], restartedTunnels: true }
      }
    }
    this.#gen = next
    const applied = await this.#applyNode(next)
    const plan = [...applied.kernel.plan.actions.map((a) => a.text), ...applied.engine.actions.map((a) => a.text)]
    if (!applied.ok) {
      // The reconciler rolled kernel and engine back; keep running the previous generation.
      this.#gen = prev
      this.#errors = [{ file, line: 0, col: 0, path: '', severity: 'error', code: applied.engine.error?.code ?? applied.kernel.error?.code ?? 'QE_APPLY_FAILED', message: `apply failed and was rolled back: ${describeFailure(applied)}` }]
      if (rebuild) await this.#recover(prev)
      return { ok: false, errors: this.#errors, plan, restartedTunnels: rebuild }
    }
    for (const s of this.#subsystems) await s.onReload(prev, next)
    this.#generation++
    this.#appliedText = text
    await this.#noteWarnings(text)
    this.#log.info({ generation: this.#generation, changes: plan.length, restartedTunnels: rebuild }, 'config reloaded')
    return { ok: true, errors: [], plan, restartedTunnels: rebuild }
  }

  /** After a failed rebuild: the previous generation's engine, state and mesh again. */
  async #recover(prev: Generation): Promise<void> {
    this.#gen = prev
    try {
      await this.#rebuildEngine(prev)
      const r = await this.#applyNode(prev)
      if (!r.ok) this.#log.error({ failure: describeFailure(r) }, 'recovery of the previous config failed')
      await this.#mesh.start(prev)
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'recovery of the previous config failed: no tunnels run until the next good config')
    }
  }

  /** A new engine for `gen`: the mesh goes with the old one, and what it learned is forgotten. */
  async #rebuildEngine(gen: Generation): Promise<void> {
    await this.#mesh.stop()
    this.#facts = []
    await this.#engines.stop()
    await this.#engines.start(gen)
  }

  /** Dry run of a config text against the running node: what `#reload` would do. */
  async #plan(text: string, file: string): Promise<PlanOutcome> {
    const res = await this.#init.load(text, file)
    if (!res.ok) return { ok: false, errors: res.diagnostics.filter((d) => d.severity === 'error'), actions: [], restartTunnels: false }
    const prev = this.#gen
    if (!prev) throw new StartFailedError('the daemon is not running')
    const next = await prepareGeneration(res.config)
    const restartTunnels = needsEngineRestart(prev, next)
    // A rebuild forgets what the mesh learned, and the new engine starts with no tables: everything is sent again.
    const { state } = this.#desired(next, restartTunnels ? [] : this.#facts)
    const names = namer(this.#effective(next).config)
    const p = await this.#node.plan(state, names)
    const engine = restartTunnels ? diffEngine(state.engine, null, names) : p.engine
    // A renamed TUN does not exist yet: the new engine creates it.
    const newTun = next.config.tun.name !== prev.config.tun.name
    const errors = p.issues
      .filter((i) => i.severity === 'error' && !(newTun && i.code === 'QE_LINK_MISSING'))
      .map((i) => ({ file, line: 0, col: 0, path: '', severity: 'error' as const, code: i.code, message: i.message }))
    const actions = [...p.kernel.actions.map((a) => ({ text: a.text, live: a.live })), ...p.firewall.map((a) => ({ text: a.text, live: true })), ...engine.map((a) => ({ text: a.text, live: true }))]
    return { ok: errors.length === 0, errors, actions, restartTunnels }
  }

  /**
   * `quicether apply`: apply a file now. A file other than the daemon's own
   * becomes its config: its content is written over the config file (atomic
   * rename) once applied, or once confirmed when `confirmMs` is set; an apply
   * that is not confirmed in time is reverted by re-applying the text that ran
   * before (the config file is put back when it was the file applied).
   */
  async #apply(args: { file?: unknown; confirmMs?: unknown }): Promise<Record<string, unknown>> {
    const own = this.#configPath
    const file = typeof args.file === 'string' ? resolvePath(args.file) : own
    if (!file || !own) throw new ReloadFailedError('this daemon runs without a config file: there is nothing to apply, and no file to adopt one into')
    const confirmMs = typeof args.confirmMs === 'number' && args.confirmMs > 0 ? args.confirmMs : null
    const text = await readFile(file, 'utf8').catch((err: Error) => {
      throw new ReloadFailedError(`cannot read ${file}: ${err.message}`)
    })
    this.#confirm.clear()
    this.#audit.assertWritable()
    const before = this.#appliedText
    const outcome = await this.#queueReload(text, file, 'apply')
    if (!outcome.ok) return { ...outcome }
    const commit = async () => {
      if (file !== own) await writeConfigFile(own, text)
      this.#watch.setLoaded(text)
    }
    if (confirmMs === null) {
      await commit()
      return { ...outcome, confirm: null }
    }
    const pending = this.#confirm.arm({
      file,
      ms: confirmMs,
      commit,
      revert: async () => {
        if (before === null) return
        // The config file is the truth: put back what ran before (it differs only when
        // the applied file was the config file itself), then run it again.
        if (file === own) await writeConfigFile(own, before)
        this.#watch.setLoaded(before)
        await this.#queueReload(before, own, 'revert')
      },
    })
    return { ...outcome, confirm: { deadline: pending.deadline } }
  }

  get #configPath(): string | null {
    return this.#init.configPath ? resolvePath(this.#init.configPath) : null
  }

  #handlers() {
    return {
      status: () => this.status(),
      reload: () => {
        this.#audit.assertWritable()
        this.reloadNow()
        return { queued: true }
      },
      plan: async (args: Record<string, unknown>) => {
        const file = typeof args.file === 'string' ? resolvePath(args.file) : this.#configPath
        if (!file) throw new ReloadFailedError('this daemon runs without a config file: name one with --config')
        const text = await readFile(file, 'utf8').catch((err: Error) => {
          throw new ReloadFailedError(`cannot read ${file}: ${err.message}`)
        })
        return this.#plan(text, file)
      },
      apply: (args: Record<string, unknown>) => this.#apply(args),
      login: (args: Record<string, unknown>) => this.#auth.clientLogin(args),
      confirm: async () => {
        this.#audit.assertWritable()
        const res = await this.#confirm.confirm()
        await this.#recordApplied('confirm', res.file, [])
        return res
      },
      invite: async (args: Record<string, unknown>, caller: ControlCaller) => {
        const name = typeof args.name === 'string' ? args.name : ''
        const groups = Array.isArray(args.groups) ? args.groups.filter((g): g is string => typeof g === 'string') : []
        const ttlMs = typeof args.ttlMs === 'number' && args.ttlMs > 0 ? Math.min(args.ttlMs, 30 * 86_400_000) : 3_600_000
        this.#audit.assertWritable()
        const invite = await this.#discovery.createInvite({ name, groups, ttlMs })
        await this.#audit.record('invite', { name, groups, ttlMs, uid: caller.cred?.uid ?? null, pid: caller.cred?.pid ?? null })
        return invite
      },
    }
  }
}

/** Peers for people: `name (k3JdQx9a…)` for a config peer, the short key otherwise. */
function namer(config: Config): PeerNamer {
  const names = new Map(config.peers.map((p) => [p.key, p.name]))
  return (key) => {
    const n = names.get(key)
    return n === undefined ? shortKey(key) : `${n} (${shortKey(key)})`
  }
}

const TRAVERSAL_TYPES: ReadonlySet<string> = new Set(['observed', 'intro-request', 'intro', 'relay-request', 'relay', 'traversal-refused'])

function isTraversal(msg: ControlMessage): msg is TraversalMessage {
  return TRAVERSAL_TYPES.has(msg.type)
}

/**
 * A member's overlay addresses by name: its certificate's, else derived from
 * its key (what a node without `network.address` uses); null when no admitted
 * member has the name.
 */
function memberAddress(config: Config, limits: ReadonlyMap<string, PeerLimits>, name: string): { ipv4: string | null; ipv6: string | null } | null {
  const p = config.peers.find((x) => x.name === name)
  if (!p) return null
  const cert = limits.get(p.key)
  if (cert) {
    const v4 = cert.overlay.find((a) => !a.includes(':')) ?? null
    const v6 = cert.overlay.find((a) => a.includes(':')) ?? null
    return { ipv4: v4, ipv6: v6 }
  }
  try {
    return deriveOverlayAddresses(Buffer.from(p.key, 'base64'), config.network.overlay.ipv4, config.network.overlay.ipv6)
  } catch {
    return null
  }
}
