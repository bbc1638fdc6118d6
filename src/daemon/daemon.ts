/**
 * The node daemon: wires the forwarding engine, the mesh, the reconciler, the
 * config watcher and the control socket, and owns their lifecycle.
 *
 * Flow of one config change: file → watcher → load (validate) → on error keep
 * running and remember the diagnostics for `status` → otherwise build the new
 * desired state → reconciler applies (rolls back on failure) → mesh and engine
 * take the new slice. Only the reconciler writes kernel state; only the
 * engine touches packets.
 */
import { readFile } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import type { Config, Diagnostic, LoadResult, TrafficClassConfig } from '../config/index.js'
import { QeError } from '../errors.js'
import type { Logger } from '../log.js'
import { deriveOverlayAddresses, loadIdentity, publicKeyBase64, type Identity } from '../mesh/identity.js'
import { Mesh } from '../mesh/mesh.js'
import type { MeshRoutes } from '../mesh/routing.js'
import { ControlServer } from '../observe/control-socket.js'
import { Reconciler, type ApplyResult } from '../reconcile/index.js'
import { desiredFromConfig, type DesiredState } from '../state/index.js'
import { createSystemAdapter } from '../system/index.js'
import { Engine, tunMtuFor, type TrafficClass } from '../engine/index.js'
import { ConfigWatcher } from './watch.js'
import { writeConfigFile } from '../config/write.js'

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

/** The underlay path MTU assumed when the config says `tun.mtu: auto`. */
const DEFAULT_PATH_MTU = 1500

export interface DaemonInit {
  readonly config: Config
  /** The file the config came from (watched for changes); `null` = no file (stdin, tests). */
  readonly configPath: string | null
  /** Loads a config text (with the command-line flags applied, so flags keep winning over the file). */
  readonly load: (text: string, file: string) => Promise<LoadResult> | LoadResult
  /** The text the config was loaded from (so the watcher only reacts to a real change). */
  readonly configText: string | null
}

interface Generation {
  readonly config: Config
  readonly identity: Identity
  readonly selfKey: string
  readonly self: { ipv4: string; ipv6: string }
  readonly tunMtu: number
}

export class Daemon {
  readonly #log: Logger
  readonly #init: DaemonInit
  #gen: Generation | null = null
  #generation = 0
  #engine: Engine | null = null
  #mesh: Mesh | null = null
  #reconciler: Reconciler | null = null
  #control: ControlServer | null = null
  #watcher: ConfigWatcher | null = null
  #routes: MeshRoutes = { fib: [], learned: [], rejected: [] }
  #pendingErrors: Diagnostic[] = []
  #lastApply: ApplyResult | null = null
  #startedAt = 0
  #reloading: Promise<void> = Promise.resolve()
  /** The config text the running generation came from (what a revert goes back to). */
  #appliedText: string | null = null
  #pendingConfirm: { timer: NodeJS.Timeout; commit: () => Promise<void>; file: string; deadline: number } | null = null
  #stopping = false

  constructor(init: DaemonInit, components: { log: Logger }) {
    this.#init = init
    this.#log = components.log
  }

  async start(): Promise<void> {
    this.#startedAt = Date.now()
    this.#appliedText = this.#init.configText
    const config = this.#init.config
    this.#control = new ControlServer({ path: config.control.socket }, { handlers: this.#handlers(), log: this.#log.child({ component: 'control' }) })
    await this.#control.start() // also the single-instance lock: fails before anything else is touched
    try {
      const gen = await this.#prepare(config)
      this.#reconciler = new Reconciler({}, { system: createSystemAdapter(), log: this.#log.child({ component: 'reconcile' }) })
      await this.#startEngine(gen)
      this.#gen = gen
      this.#generation = 1
      await this.#reconciler.start()
      const res = await this.#applyKernel(gen)
      if (!res.ok) throw new StartFailedError(`cannot set up the kernel state: ${describeFailure(res)}`)
      this.#startMesh(gen)
      if (this.#init.configPath) {
        this.#watcher = new ConfigWatcher({ path: this.#init.configPath }, { onChange: (text) => void this.#queueReload(text), log: this.#log.child({ component: 'watch' }) })
        if (this.#init.configText !== null) this.#watcher.setLoaded(this.#init.configText)
        await this.#watcher.start()
      }
      if (config.policies.rules.length > 0 || config.policies.default === 'deny') {
        // Honest about what runs: peers are authenticated (pinned keys) and anti-spoofing holds,
        // but the ACL compiler and its forwarding-plane table are not built yet.
        this.#log.warn({ rules: config.policies.rules.length, default: config.policies.default }, 'policies are validated but not enforced yet: every authenticated peer may reach this node')
      }
      this.#log.info({ name: config.node.name, key: gen.selfKey, tun: config.tun.name, ipv4: gen.self.ipv4, ipv6: gen.self.ipv6, listen: `${config.listen.address}:${this.#engine?.listenPort}` }, 'node started')
    } catch (err) {
      await this.stop().catch(() => undefined)
      throw err
    }
  }

  /** Clean stop: say bye, stop the engine (its TUN vanishes), remove every kernel object we own. */
  async stop(): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    this.#clearPendingConfirm()
    await this.#watcher?.stop().catch(() => undefined)
    await this.#reloading.catch(() => undefined)
    this.#mesh?.stop()
    if (this.#mesh) await new Promise((r) => setTimeout(r, 50)) // let the byes leave
    this.#mesh = null
    await this.#engine?.stop().catch((err: Error) => this.#log.warn({ err: err.message }, 'engine stop failed'))
    this.#engine = null
    if (this.#reconciler) {
      const r = await this.#reconciler.cleanup().catch((err: Error) => ({ ok: false, error: { message: err.message } }) as const)
      if (!r.ok) this.#log.warn({ err: 'error' in r && r.error ? r.error.message : 'unknown' }, 'cleanup of kernel state incomplete')
      await this.#reconciler.stop().catch(() => undefined)
    }
    this.#reconciler = null
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

  status(): Record<string, unknown> {
    const gen = this.#gen
    const stats = this.#engine?.stats()
    return {
      node: gen ? { name: gen.config.node.name, key: gen.selfKey, overlay: gen.self, tun: gen.config.tun.name, tunMtu: gen.tunMtu } : null,
      config: {
        file: this.#configPath,
        generation: this.#generation,
        errors: this.#pendingErrors,
        pendingConfirm: this.#pendingConfirm ? { file: this.#pendingConfirm.file, deadline: new Date(this.#pendingConfirm.deadline).toISOString() } : null,
      },
      lastApply: this.#lastApply ? summarizeApply(this.#lastApply) : null,
      peers: (this.#mesh?.peers() ?? []).map((p) => ({ ...p, since: new Date(p.since).toISOString(), stats: stats?.peers.find((s) => s.peer === p.key) ?? null })),
      routes: { fib: this.#routes.fib, learned: this.#routes.learned, rejected: this.#routes.rejected },
      engine: stats ? { global: stats.global } : null,
      uptimeS: Math.round((Date.now() - this.#startedAt) / 1000),
    }
  }

  async #prepare(config: Config): Promise<Generation> {
    const identity = await loadIdentity(config.node.identity)
    const selfKey = publicKeyBase64(identity)
    const derived = deriveOverlayAddresses(identity.publicKey, config.network.overlay.ipv4, config.network.overlay.ipv6)
    const self = { ipv4: config.network.address.ipv4 ?? derived.ipv4, ipv6: config.network.address.ipv6 ?? derived.ipv6 }
    // Bonded datagrams carry a 4-byte sequence number: leave room for it on either end of a bond.
    const bonded = config.interfaces.length > 0 || config.multipath.accept
    const tunMtu = config.tun.mtu === 'auto' ? tunMtuFor(DEFAULT_PATH_MTU, 6, { bonded }) : config.tun.mtu
    return { config, identity, selfKey, self, tunMtu }
  }

  async #startEngine(gen: Generation): Promise<void> {
    const c = gen.config
    const engine = new Engine({
      tun: { name: c.tun.name, mtu: gen.tunMtu },
      identity: { privateKeyPem: gen.identity.privateKeyPem, publicKey: gen.identity.publicKey },
      listen: { address: c.listen.address, port: c.listen.port },
      reorder: { maxDelayMs: c.multipath.reorder.maxDelay, maxBytes: c.multipath.reorder.maxBytes },
      log: this.#log.child({ component: 'engine' }),
    })
    engine.on('peer-up', (ev) => this.#mesh?.onPeerUp(ev))
    engine.on('peer-down', (ev) => this.#mesh?.onPeerDown(ev))
    engine.on('control', (ev) => this.#mesh?.onControl(ev.peer, ev.data))
    engine.on('refused', (ev) => this.#log.warn({ key: ev.peer, remote: `${ev.remote.address}:${ev.remote.port}` }, 'refused a peer whose key is not allowed'))
    engine.on('dial-failed', (ev) => this.#log.info({ remote: `${ev.remote.address}:${ev.remote.port}`, key: ev.peer ?? null, reason: ev.reason }, 'dial failed'))
    engine.on('error', (err: Error) => this.#log.error({ err: err.message }, 'engine error'))
    await engine.start()
    this.#engine = engine
    this.#applyUplinks(c)
  }

  /** The config's uplinks go to the engine as they are: live, each gets its own socket and paths. */
  #applyUplinks(c: Config): void {
    try {
      this.#engine?.setUplinks(c.interfaces.map((u) => ({ name: u.name, weight: u.weight, role: u.role, priority: u.priority })))
    } catch (err) {
      // An uplink the engine cannot use is a degraded bond, not a reason to drop the node.
      this.#log.error({ err: (err as Error).message, uplinks: c.interfaces.map((u) => u.name) }, 'uplinks not applied')
    }
    try {
      this.#engine?.setClasses(engineClasses(c.multipath.trafficClasses))
    } catch (err) {
      this.#log.error({ err: (err as Error).message, classes: c.multipath.trafficClasses.map((k) => k.name) }, 'traffic classes not applied')
    }
  }

  #startMesh(gen: Generation): void {
    const engine = this.#engine
    if (!engine) return
    this.#mesh = new Mesh(
      { config: gen.config, self: gen.self, selfKey: gen.selfKey },
      { engine, log: this.#log.child({ component: 'mesh' }), onRoutes: (r) => this.#onRoutes(r) },
    )
    this.#mesh.start()
  }

  #onRoutes(routes: MeshRoutes): void {
    this.#routes = routes
    this.#engine?.setRoutes(routes.fib.map((e) => ({ prefix: e.prefix, peer: e.peer })))
    const gen = this.#gen
    if (gen && !this.#stopping) void this.#applyKernel(gen)
  }

  #desired(gen: Generation): DesiredState {
    return desiredFromConfig(gen.config, {
      overlayAddresses: gen.self,
      learnedRoutes: this.#routes.learned.map((l) => ({ prefix: l.prefix, peer: l.peer })),
      tunMtu: gen.tunMtu,
    })
  }

  async #applyKernel(gen: Generation): Promise<ApplyResult> {
    const rec = this.#reconciler
    if (!rec) throw new StartFailedError('the reconciler is not running')
    const res = await rec.apply(this.#desired(gen))
    this.#lastApply = res
    // The reconciler logs every apply (plan and result) itself; add only why a failure failed.
    if (!res.ok) this.#log.error({ failure: describeFailure(res), rolledBack: res.rolledBack }, 'kernel apply failed')
    return res
  }

  /** Serializes reloads: one at a time, in arrival order. */
  #queueReload(text: string, file = this.#configPath ?? '<config>'): Promise<ReloadOutcome> {
    const run = this.#reloading.then(() => this.#reload(text, file))
    this.#reloading = run.then(
      () => undefined,
      (err: Error) => this.#log.error({ err: err.message }, 'reload failed'),
    )
    return run
  }

  async #reload(text: string, file: string): Promise<ReloadOutcome> {
    if (this.#stopping || !this.#gen) return { ok: false, errors: [], plan: [] }
    const res = await this.#init.load(text, file)
    if (!res.ok) {
      this.#pendingErrors = res.diagnostics.filter((d) => d.severity === 'error')
      for (const d of this.#pendingErrors) this.#log.error({ file: d.file, line: d.line, col: d.col, path: d.path, code: d.code }, `config not applied: ${d.message}`)
      return { ok: false, errors: this.#pendingErrors, plan: [] }
    }
    this.#pendingErrors = []
    const prev = this.#gen
    let next: Generation
    try {
      next = await this.#prepare(res.config)
    } catch (err) {
      this.#pendingErrors = [{ file, line: 0, col: 0, path: 'node.identity', severity: 'error', code: (err as QeError).code ?? 'QE_ERROR', message: (err as Error).message }]
      this.#log.error({ err: (err as Error).message }, 'config not applied')
      return { ok: false, errors: this.#pendingErrors, plan: [] }
    }
    const restartEngine = needsEngineRestart(prev, next)
    if (restartEngine) {
      // Identity, listen socket or TUN name changed: tunnels must be rebuilt. Still live: no process restart.
      this.#log.info('identity, listen address or TUN name changed: rebuilding tunnels')
      this.#mesh?.stop()
      this.#mesh = null
      this.#routes = { fib: [], learned: [], rejected: [] }
      await this.#engine?.stop()
      this.#engine = null
      await this.#startEngine(next)
    }
    this.#gen = next
    const applied = await this.#applyKernel(next)
    if (!applied.ok) {
      // The reconciler rolled the kernel back; keep running the previous generation.
      this.#gen = prev
      this.#pendingErrors = [{ file, line: 0, col: 0, path: '', severity: 'error', code: applied.error?.code ?? 'QE_APPLY_FAILED', message: `apply failed and was rolled back: ${describeFailure(applied)}` }]
      if (restartEngine) {
        await this.#engine?.stop()
        this.#engine = null
        await this.#startEngine(prev)
        this.#startMesh(prev)
      }
      return { ok: false, errors: this.#pendingErrors, plan: applied.plan.actions.map((a) => a.text) }
    }
    if (!restartEngine) this.#applyUplinks(next.config)
    if (restartEngine || !this.#mesh) this.#startMesh(next)
    else this.#mesh.reload(next.config)
    this.#generation++
    this.#appliedText = text
    this.#log.info({ generation: this.#generation, changes: applied.plan.actions.length, restartedTunnels: restartEngine }, 'config reloaded')
    return { ok: true, errors: [], plan: applied.plan.actions.map((a) => a.text), restartedTunnels: restartEngine }
  }

  /** Dry run of a config text against the running node: what `#reload` would do. */
  async #plan(text: string, file: string): Promise<PlanOutcome> {
    const res = await this.#init.load(text, file)
    if (!res.ok) return { ok: false, errors: res.diagnostics.filter((d) => d.severity === 'error'), actions: [], restartTunnels: false }
    const rec = this.#reconciler
    const prev = this.#gen
    if (!rec || !prev) throw new StartFailedError('the daemon is not running')
    const next = await this.#prepare(res.config)
    const { plan, issues } = await rec.plan(this.#desired(next))
    const errors = issues.filter((i) => i.severity === 'error').map((i) => ({ file, line: 0, col: 0, path: '', severity: 'error' as const, code: i.code, message: i.message }))
    return { ok: errors.length === 0, errors, actions: plan.actions.map((a) => ({ text: a.text, live: a.live })), restartTunnels: needsEngineRestart(prev, next) }
  }

  /**
   * `quicether apply`: apply a file now. A file other than the daemon's own
   * becomes its config: its content is written over the config file (atomic
   * rename) once applied, or once confirmed when `confirmMs` is set; an apply
   * that is not confirmed in time is reverted by re-applying the config file,
   * which was never touched.
   */
  async #apply(args: { file?: unknown; confirmMs?: unknown }): Promise<Record<string, unknown>> {
    const own = this.#configPath
    const file = typeof args.file === 'string' ? resolvePath(args.file) : own
    if (!file) throw new ReloadFailedError('this daemon runs without a config file: there is nothing to apply')
    if (file !== own && !own) throw new ReloadFailedError('this daemon runs without a config file, so it cannot adopt another one')
    const confirmMs = typeof args.confirmMs === 'number' && args.confirmMs > 0 ? args.confirmMs : null
    const text = await readFile(file, 'utf8').catch((err: Error) => {
      throw new ReloadFailedError(`cannot read ${file}: ${err.message}`)
    })
    this.#clearPendingConfirm()
    const before = this.#appliedText
    const outcome = await this.#queueReload(text, file)
    if (!outcome.ok) return { ...outcome }
    const commit = async () => {
      if (file !== own && own) await writeConfigFile(own, text)
      this.#watcher?.setLoaded(text)
    }
    if (confirmMs === null) {
      await commit()
      return { ...outcome, confirm: null }
    }
    const deadline = Date.now() + confirmMs
    const timer = setTimeout(() => {
      this.#pendingConfirm = null
      this.#log.warn({ file }, 'apply not confirmed in time: reverting')
      if (!own || before === null) return
      // The config file is the truth: put back what ran before (it differs only when
      // the applied file was the config file itself), then run it again.
      void (async () => {
        if (file === own) await writeConfigFile(own, before)
        this.#watcher?.setLoaded(before)
        await this.#queueReload(before, own)
      })().catch((err: Error) => this.#log.error({ err: err.message }, 'revert failed'))
    }, confirmMs)
    timer.unref()
    this.#pendingConfirm = { timer, commit, file, deadline }
    this.#log.info({ file, confirmWithinMs: confirmMs }, 'applied; waiting for quicether confirm')
    return { ...outcome, confirm: { deadline: new Date(deadline).toISOString() } }
  }

  async #confirm(): Promise<Record<string, unknown>> {
    const p = this.#pendingConfirm
    if (!p) throw new NothingToConfirmError()
    this.#clearPendingConfirm()
    await p.commit()
    this.#log.info({ file: p.file }, 'apply confirmed')
    return { confirmed: true, file: p.file }
  }

  #clearPendingConfirm(): void {
    if (this.#pendingConfirm) clearTimeout(this.#pendingConfirm.timer)
    this.#pendingConfirm = null
  }

  get #configPath(): string | null {
    return this.#init.configPath ? resolvePath(this.#init.configPath) : null
  }

  #handlers() {
    return {
      status: () => this.status(),
      reload: () => {
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
      confirm: () => this.#confirm(),
    }
  }
}

export interface ReloadOutcome {
  readonly ok: boolean
  readonly errors: readonly Diagnostic[]
  /** The kernel actions applied (or attempted, then rolled back). */
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

/** `quicether confirm` with no apply waiting for it. */
export class NothingToConfirmError extends QeError {
  override readonly code = 'QE_NOTHING_TO_CONFIRM'
  constructor(message = 'no apply is waiting for confirmation', options?: ErrorOptions) {
    super(message, options)
    this.name = 'NothingToConfirmError'
  }
}

function needsEngineRestart(prev: Generation, next: Generation): boolean {
  return (
    next.selfKey !== prev.selfKey ||
    next.config.listen.address !== prev.config.listen.address ||
    next.config.listen.port !== prev.config.listen.port ||
    next.config.tun.name !== prev.config.tun.name
  )
}


function describeFailure(res: ApplyResult): string {
  if (res.failed) return `${res.failed.action.text}: ${res.failed.error.message}`
  if (res.error) return res.error.message
  if (res.verify === 'mismatch') return `verify mismatch: ${res.verifyDiff.join('; ')}`
  return 'unknown failure'
}

function summarizeApply(res: ApplyResult): Record<string, unknown> {
  return {
    at: res.startedAt,
    ok: res.ok,
    trigger: res.trigger,
    plan: res.plan.actions.map((a) => a.text),
    failure: res.ok ? null : describeFailure(res),
    rolledBack: res.rolledBack,
    durationMs: Math.round(res.durationMs),
  }
}

/** The config's traffic classes as the engine takes them (`lowest-latency` is the engine's default path). */
export function engineClasses(classes: readonly TrafficClassConfig[]): TrafficClass[] {
  return classes.map((k) => ({
    dscp: k.match.dscp,
    ports: k.match.ports.map((r): [number, number] => [r.from, r.to]),
    ...(k.match.maxPacketSize !== null ? { maxPacketSize: k.match.maxPacketSize } : {}),
    ...(k.path !== 'lowest-latency' ? { uplink: k.path } : {}),
  }))
}
