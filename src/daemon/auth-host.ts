/**
 * The second factor in a running node, both sides of it.
 *
 * On a node with `auth.require-2fa`: a client peer (its hello says role
 * client) without a fresh session is gated: the daemon leaves it out of the
 * mesh facts, so the forwarding table holds no route to or from it and the
 * engine drops what it sends (as it drops any source a peer may not use);
 * its tunnel and control stream stay up, so it can log in. It is told once
 * per tunnel with `login-needed`. A `login` it sends is checked by the store
 * (src/auth/store.ts: TOTP, no replay, rate limits); a session re-applies the
 * tables at once, and its end (expiry, revocation) does too, with a
 * `login-needed` saying why.
 *
 * On a client: `login-needed` is remembered for `status` ("login needed")
 * and for `quicether login`, whose control request sends the code and waits
 * for the node's `login-result`.
 */
import { SecondFactorStore } from '../auth/store.js'
import type { Session, SessionChange, VerifyResult } from '../auth/types.js'
import { QeError } from '../errors.js'
import type { Logger } from '../log.js'
import { PROTOCOL_VERSION, type AuthMessage, type WireMessage } from '../mesh/messages.js'
import type { Generation } from './generation.js'
import type { Subsystem } from './subsystem.js'

const LOGIN_TIMEOUT_MS = 10_000
const TICK_MS = 15_000

/** No node to log in to, or the node did not answer. */
export class LoginError extends QeError {
  override readonly code: string
  constructor(code: 'QE_2FA_NO_PEER' | 'QE_2FA_TIMEOUT', message: string) {
    super(message)
    this.name = 'LoginError'
    this.code = code
  }
}

export interface AuthStatus {
  /** This node requires a second factor of its client peers. */
  readonly required: boolean
  readonly sessions: readonly Session[]
  /** Client peers up without a session (their traffic is refused). */
  readonly gated: readonly string[]
  /** Nodes that asked this one to log in. */
  readonly loginNeeded: readonly { readonly node: string; readonly reason: 'no-session' | 'expired'; readonly since: string }[]
}

export interface AuthHostComponents {
  readonly log: Logger
  readonly send: (peer: string, msg: WireMessage) => void
  /** The config name of a peer's key (what the store is keyed by: never the name a hello claims). */
  readonly nameOf: (key: string) => string | null
  readonly keyOf: (name: string) => string | null
  /** A session started or ended: the tables change. */
  readonly onChange: () => void
  readonly audit: (type: string, fields: Record<string, unknown>) => void
  readonly now?: () => number
}

export class AuthHost implements Subsystem<AuthStatus> {
  readonly name = 'auth'
  readonly #c: AuthHostComponents
  readonly #now: () => number
  #store: SecondFactorStore | null = null
  #stateDir: string | null = null
  #self = ''
  #timer: NodeJS.Timeout | null = null
  /** Gated peers told `login-needed` on their current tunnel. */
  readonly #told = new Set<string>()
  readonly #gated = new Set<string>()
  readonly #needed = new Map<string, { node: string; reason: 'no-session' | 'expired'; since: number }>()
  readonly #pending = new Map<string, { resolve: (r: Record<string, unknown>) => void; timer: NodeJS.Timeout }>()

  constructor(c: AuthHostComponents) {
    this.#c = c
    this.#now = c.now ?? Date.now
  }

  async start(gen: Generation): Promise<void> {
    await this.#configure(gen)
    this.#timer = setInterval(() => void this.#tick(), TICK_MS)
    this.#timer.unref()
  }

  async onReload(_prev: Generation, next: Generation): Promise<void> {
    await this.#configure(next)
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    for (const p of this.#pending.values()) clearTimeout(p.timer)
    this.#pending.clear()
  }

  /** Subsystems start and reload after the apply: turning the requirement on or off applies again, so gating follows at once. */
  async #configure(gen: Generation): Promise<void> {
    const a = gen.config.auth
    this.#self = gen.config.node.name
    if (!a.require2fa) {
      const was = this.#store !== null
      this.#store = null
      this.#stateDir = null
      if (was) this.#c.onChange()
      return
    }
    if (this.#store && this.#stateDir === gen.config.node.stateDir) {
      this.#store.setSessionMs(a.session)
      return
    }
    this.#stateDir = gen.config.node.stateDir
    this.#store = await SecondFactorStore.open({ stateDir: gen.config.node.stateDir, sessionMs: a.session, onChange: (ch) => this.#onSession(ch) })
    this.#noteEnrolments(this.#store, true)
    this.#c.onChange()
  }

  /** True when this peer's traffic must be refused now (the daemon leaves it out of the mesh facts). */
  gated(peer: { key: string; role: string | null }): boolean {
    const store = this.#store
    if (!store || peer.role !== 'client') {
      this.#gated.delete(peer.key)
      return false
    }
    const name = this.#c.nameOf(peer.key)
    const gated = name === null || !store.hasSession(name, this.#now())
    if (gated) {
      this.#gated.add(peer.key)
      if (!this.#told.has(peer.key)) {
        this.#told.add(peer.key)
        this.#send(peer.key, { type: 'login-needed', v: PROTOCOL_VERSION, reason: 'no-session', node: this.#self })
      }
    } else this.#gated.delete(peer.key)
    return gated
  }

  /**
   * A tunnel ended: the next one is told again. A connection that another
   * one to the same peer replaced leaves the peer gated (the mesh keeps its
   * facts, so no apply may follow to gate it again); its successor is told
   * as it comes up (`onPeerUp`).
   */
  onPeerDown(peer: string, reason: string): void {
    this.#told.delete(peer)
    if (reason !== 'replaced') this.#gated.delete(peer)
  }

  /** A new connection to a peer still gated (it replaced one): tell it, as the one before was told. */
  onPeerUp(peer: string): void {
    if (this.#store && this.#gated.has(peer) && !this.#told.has(peer)) {
      this.#told.add(peer)
      this.#send(peer, { type: 'login-needed', v: PROTOCOL_VERSION, reason: 'no-session', node: this.#self })
    }
  }

  onMessage(peer: string, msg: AuthMessage): void {
    switch (msg.type) {
      case 'login':
        void this.#login(peer, msg.code)
        return
      case 'login-needed': {
        const node = this.#c.nameOf(peer) ?? peer
        this.#needed.set(peer, { node, reason: msg.reason, since: this.#now() })
        this.#c.log.warn({ node, reason: msg.reason }, `login needed: quicether login --peer ${node}`)
        return
      }
      case 'login-result': {
        const p = this.#pending.get(peer)
        if (!p) return
        this.#pending.delete(peer)
        clearTimeout(p.timer)
        if (msg.ok) this.#needed.delete(peer)
        p.resolve({ peer: this.#c.nameOf(peer) ?? peer, ok: msg.ok, ...(msg.ok ? { expiresAt: msg.expiresAt } : { reason: msg.reason, ...(msg.retryAfterMs !== undefined ? { retryAfterMs: msg.retryAfterMs } : {}) }) })
        return
      }
    }
  }

  /** The control socket's `login`: send the code to the node, wait for its answer. */
  async clientLogin(args: { peer?: unknown; code?: unknown }): Promise<Record<string, unknown>> {
    const code = typeof args.code === 'string' ? args.code : ''
    let key: string | null
    if (typeof args.peer === 'string' && args.peer !== '') {
      key = this.#c.keyOf(args.peer)
      if (!key) throw new LoginError('QE_2FA_NO_PEER', `no peer named '${args.peer}' in this node's config`)
    } else {
      const asked = [...this.#needed.keys()]
      if (asked.length !== 1) throw new LoginError('QE_2FA_NO_PEER', asked.length === 0 ? 'no node asked this one to log in: name one with --peer' : `several nodes asked for a login (${asked.map((k) => this.#c.nameOf(k) ?? k).join(', ')}): name one with --peer`)
      key = asked[0]!
    }
    const target = key
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(target)
        reject(new LoginError('QE_2FA_TIMEOUT', `${this.#c.nameOf(target) ?? target} did not answer the login within ${LOGIN_TIMEOUT_MS / 1000} s (is its tunnel up?)`))
      }, LOGIN_TIMEOUT_MS)
      timer.unref()
      this.#pending.get(target)?.resolve({ peer: this.#c.nameOf(target) ?? target, ok: false, reason: 'superseded' })
      this.#pending.set(target, { resolve, timer })
    })
    this.#send(target, { type: 'login', v: PROTOCOL_VERSION, code })
    return answer
  }

  async #login(peer: string, code: string): Promise<void> {
    const name = this.#c.nameOf(peer)
    const store = this.#store
    if (!store || !name) {
      this.#send(peer, { type: 'login-result', v: PROTOCOL_VERSION, ok: false, reason: 'not-enrolled' })
      return
    }
    const r: VerifyResult = await store.verify(name, code, this.#now()).catch((err: Error): VerifyResult => {
      this.#c.log.error({ err: err.message }, 'the second-factor store failed')
      return { ok: false, reason: 'not-enrolled' }
    })
    this.#noteEnrolments(store, false)
    this.#c.audit(r.ok ? '2fa-login' : '2fa-failure', { peer: name, ...(r.ok ? { expiresAt: new Date(r.session.expiresAt).toISOString() } : { reason: r.reason }) })
    if (r.ok) {
      this.#send(peer, { type: 'login-result', v: PROTOCOL_VERSION, ok: true, expiresAt: r.session.expiresAt })
      this.#c.log.info({ peer: name, until: new Date(r.session.expiresAt).toISOString() }, 'second factor: logged in')
    } else {
      this.#send(peer, { type: 'login-result', v: PROTOCOL_VERSION, ok: false, reason: r.reason, ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}) })
      this.#c.log.warn({ peer: name, reason: r.reason }, 'second factor: login refused')
    }
  }

  #onSession(ch: SessionChange): void {
    if (ch.kind !== 'started') {
      const key = this.#c.keyOf(ch.peer)
      if (key) {
        this.#told.add(key)
        this.#send(key, { type: 'login-needed', v: PROTOCOL_VERSION, reason: ch.kind === 'expired' ? 'expired' : 'no-session', node: this.#self })
      }
      this.#c.audit(ch.kind === 'expired' ? '2fa-expired' : '2fa-revoked', { peer: ch.peer })
    }
    this.#c.onChange()
  }

  /** Enrolments as last seen (the CLI writes them into the store's file): new ones become audit events. */
  #enrolled = new Map<string, number>()

  #noteEnrolments(store: SecondFactorStore, quiet: boolean): void {
    const now = new Map(store.list(this.#now()).map((e) => [e.peer, e.enrolledAt]))
    if (!quiet) {
      for (const [peer, at] of now) if (this.#enrolled.get(peer) !== at) this.#c.audit('2fa-enrolled', { peer, enrolledAt: new Date(at).toISOString() })
      for (const peer of this.#enrolled.keys()) if (!now.has(peer)) this.#c.audit('2fa-unenrolled', { peer })
    }
    this.#enrolled = now
  }

  async #tick(): Promise<void> {
    const store = this.#store
    if (!store) return
    try {
      if (await store.refresh()) this.#noteEnrolments(store, false)
      await store.expire(this.#now())
    } catch (err) {
      this.#c.log.error({ err: (err as Error).message }, 'the second-factor store failed')
    }
  }

  #send(peer: string, msg: WireMessage): void {
    try {
      this.#c.send(peer, msg)
    } catch (err) {
      this.#c.log.debug({ peer, err: (err as Error).message }, 'cannot send a second-factor message')
    }
  }

  status(): AuthStatus {
    const now = this.#now()
    return {
      required: this.#store !== null,
      sessions: this.#store ? [...this.#store.sessions].filter(([, exp]) => exp > now).map(([peer, expiresAt]) => ({ peer, expiresAt })) : [],
      gated: [...this.#gated].map((k) => this.#c.nameOf(k) ?? k),
      loginNeeded: [...this.#needed.values()].map((n) => ({ node: n.node, reason: n.reason, since: new Date(n.since).toISOString() })),
    }
  }
}
