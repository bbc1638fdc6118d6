/**
 * The second-factor store of a node with `auth.require-2fa`: per peer its
 * TOTP secret, when it was enrolled, the last time step it used (the replay
 * guard) and its failure counters; and the live sessions. Kept in
 * `<state-dir>/2fa.json`, mode 0600, written atomically (src/atomic-file.ts)
 * after every change and before the change is reported, so a code that gave a
 * session can never give another, even across a restart.
 *
 * Rules:
 * - A code is accepted when it matches a step in the ±1 window that is later
 *   than the last step this peer used (so a used code, or an older one, is
 *   `replayed`).
 * - Per peer: `PEER_FAILURE_LIMIT` failures within `PEER_FAILURE_WINDOW_MS`
 *   lock the peer out for 30 s. Once locked out, every further failure locks
 *   it out again for twice as long, up to 15 min (one guess per lockout).
 *   While locked out nothing is checked (a right code is refused too). The
 *   doubling starts over after a success, or after `LOCKOUT_MAX_MS` without
 *   a failure once the last lockout ended.
 * - Across peers: `GLOBAL_FAILURE_LIMIT` failures within a minute refuse every
 *   attempt until the minute has room again (kept in memory only).
 * - A success starts a session of `sessionMs` (`auth.session`); sessions are
 *   kept in the file too, so a restart does not log everyone out.
 *
 * Peers are named by node name. The daemon must pass the name bound to the
 * peer's key (its `peers` entry or its certificate), never the name a peer
 * claims in its `hello`, or one client could log in as another.
 *
 * The store runs no timers: the daemon calls `expire(now)` on its housekeeping
 * tick (or at `sessionsExpiringBefore`), and `onChange` tells it when a
 * session starts or ends. One store per file per process; calls may
 * interleave (each decision is made synchronously, writes are queued in
 * order). `refresh()` picks up edits made by another process (the CLI's
 * `enrol` and `revoke`).
 */
import { chmod, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../atomic-file.js'
import { QeError } from '../errors.js'
import { enrol as newEnrolment, matchStep, type Enrolment } from './totp.js'
import type { EnrolledPeer, Session, SessionChange, VerifyResult } from './types.js'

export type { EnrolledPeer, Session, SessionChange, VerifyRefusal, VerifyResult } from './types.js'

export const STORE_FILE = '2fa.json'
export const STORE_MODE = 0o600
export const PEER_FAILURE_LIMIT = 5
export const PEER_FAILURE_WINDOW_MS = 5 * 60_000
export const LOCKOUT_BASE_MS = 30_000
export const LOCKOUT_MAX_MS = 15 * 60_000
export const GLOBAL_FAILURE_LIMIT = 100
export const GLOBAL_FAILURE_WINDOW_MS = 60_000
/** `auth.session` when the config does not say. */
export const DEFAULT_SESSION_MS = 12 * 3_600_000

/** The store file cannot be read, parsed or written. */
export class SecondFactorStoreError extends QeError {
  override readonly code = 'QE_2FA_STORE'
  constructor(message = 'the second-factor store cannot be used', options?: ErrorOptions) {
    super(message, options)
    this.name = 'SecondFactorStoreError'
  }
}

/** `enrol` for a peer that is already enrolled, without `force`. */
export class AlreadyEnrolledError extends QeError {
  override readonly code = 'QE_2FA_ENROLLED'
  constructor(message = 'the peer is already enrolled (use --force to replace its secret)', options?: ErrorOptions) {
    super(message, options)
    this.name = 'AlreadyEnrolledError'
  }
}

export interface SecondFactorStoreInit {
  /** The state directory; the file is `<stateDir>/2fa.json`. */
  readonly stateDir: string
  /** Length of a session (`auth.session`), ms. Default 12 h. */
  readonly sessionMs?: number
  /** Called (synchronously, after the change is on disk) when a session starts or ends. */
  readonly onChange?: (change: SessionChange) => void
}

interface PeerRecord {
  secret: string
  enrolledAt: number
  /** Last time step a code was accepted for; -1: none yet. */
  lastStep: number
  /** Times of failures within the window (oldest first). */
  failures: number[]
  lastFailureAt: number
  lockedUntil: number
  /** Lockouts since the doubling last started over. */
  lockouts: number
}

interface StoreFile {
  v: 1
  peers: Map<string, PeerRecord>
  sessions: Map<string, number>
}

export class SecondFactorStore {
  readonly path: string
  #sessionMs: number
  readonly #onChange: ((change: SessionChange) => void) | undefined
  #peers = new Map<string, PeerRecord>()
  #sessions = new Map<string, number>()
  #globalFailures: number[] = []
  #writes: Promise<void> = Promise.resolve()
  /** mtime and size of the file as we last read or wrote it, to notice another writer. */
  #seen = ''

  private constructor(init: SecondFactorStoreInit) {
    this.path = join(init.stateDir, STORE_FILE)
    this.#sessionMs = init.sessionMs ?? DEFAULT_SESSION_MS
    this.#onChange = init.onChange
  }

  /** Opens the store, reading the file when it exists (an absent file is an empty store). */
  static async open(init: SecondFactorStoreInit): Promise<SecondFactorStore> {
    const store = new SecondFactorStore(init)
    await store.#load()
    return store
  }

  /** Live sessions: peer → expiresAt (ms). Expired entries stay until `expire(now)`; use `hasSession`. */
  get sessions(): ReadonlyMap<string, number> {
    return this.#sessions
  }

  /** A new `auth.session` (a reload): sessions started from now on last `ms`; live ones keep their end. */
  setSessionMs(ms: number): void {
    this.#sessionMs = ms
  }

  isEnrolled(peer: string): boolean {
    return this.#peers.has(peer)
  }

  /**
   * Makes a new secret for `peer` and stores it (replacing an old one only
   * with `force`, which also ends its session and clears its replay guard and
   * counters). Returns the secret and its otpauth URI: show them once.
   */
  async enrol(peer: string, now: number, opts: { force?: boolean } = {}): Promise<Enrolment> {
    await this.refresh()
    if (this.#peers.has(peer) && !opts.force) throw new AlreadyEnrolledError(`${peer} is already enrolled on this node (use --force to replace its secret)`)
    const e = newEnrolment(peer)
    this.#peers.set(peer, { secret: e.secret, enrolledAt: now, lastStep: -1, failures: [], lastFailureAt: 0, lockedUntil: 0, lockouts: 0 })
    const ended = this.#sessions.delete(peer)
    await this.#persist()
    if (ended) this.#emit({ peer, kind: 'revoked', session: null })
    return e
  }

  /** Forgets `peer`'s enrolment and ends its session. False when it was not enrolled. */
  async revoke(peer: string): Promise<boolean> {
    await this.refresh()
    const had = this.#peers.delete(peer)
    const ended = this.#sessions.delete(peer)
    if (!had && !ended) return false
    await this.#persist()
    if (ended) this.#emit({ peer, kind: 'revoked', session: null })
    return had
  }

  /** Checks one login attempt by `peer` at `now`; see the rules at the top of this file. */
  async verify(peer: string, code: string, now: number): Promise<VerifyResult> {
    const globalRetry = this.#globalRetryAfter(now)
    if (globalRetry > 0) return { ok: false, reason: 'rate-limited', retryAfterMs: globalRetry }
    await this.refresh()
    // From here to the write, nothing awaits: two attempts with one code cannot both pass.
    const rec = this.#peers.get(peer)
    if (!rec) return { ok: false, reason: 'not-enrolled' }
    if (rec.lockedUntil > now) return { ok: false, reason: 'rate-limited', retryAfterMs: rec.lockedUntil - now }

    const step = matchStep(rec.secret, code, now)
    if (step === null || step <= rec.lastStep) {
      const retryAfterMs = this.#fail(rec, now)
      await this.#persist()
      const reason = step === null ? 'wrong-code' : 'replayed'
      return retryAfterMs > 0 ? { ok: false, reason, retryAfterMs } : { ok: false, reason }
    }
    rec.lastStep = step
    rec.failures = []
    rec.lockouts = 0
    rec.lockedUntil = 0
    const session: Session = { peer, expiresAt: now + this.#sessionMs }
    this.#sessions.set(peer, session.expiresAt)
    await this.#persist()
    this.#emit({ peer, kind: 'started', session })
    return { ok: true, session }
  }

  /** True while `peer` has a session that lasts past `now`. */
  hasSession(peer: string, now: number): boolean {
    const until = this.#sessions.get(peer)
    return until !== undefined && until > now
  }

  /** Sessions that end at or before `t`, soonest first (to schedule the next `expire`). */
  sessionsExpiringBefore(t: number): Session[] {
    return [...this.#sessions]
      .filter(([, expiresAt]) => expiresAt <= t)
      .map(([peer, expiresAt]) => ({ peer, expiresAt }))
      .sort((a, b) => a.expiresAt - b.expiresAt)
  }

  /** Ends every session over at `now` (one `expired` change each); returns the peers. */
  async expire(now: number): Promise<string[]> {
    // Our write carries the whole state: first take in what the CLI wrote meanwhile.
    await this.refresh()
    const ended = this.sessionsExpiringBefore(now).map((s) => s.peer)
    if (ended.length === 0) return []
    for (const peer of ended) this.#sessions.delete(peer)
    await this.#persist()
    for (const peer of ended) this.#emit({ peer, kind: 'expired', session: null })
    return ended
  }

  /** Every enrolled peer, by name, with its session and lockout as of `now`. */
  list(now: number): EnrolledPeer[] {
    return [...this.#peers]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([peer, r]) => ({
        peer,
        enrolledAt: r.enrolledAt,
        sessionExpiresAt: this.hasSession(peer, now) ? this.#sessions.get(peer)! : null,
        lockedUntil: r.lockedUntil > now ? r.lockedUntil : null,
      }))
  }

  /**
   * Re-reads the file when another process changed it since we last saw it
   * (the CLI enrols and revokes on the file). Sessions that disappear are
   * reported as `revoked`. True when it re-read.
   */
  async refresh(): Promise<boolean> {
    await this.#writes
    if ((await this.#fingerprint()) === this.#seen) return false
    const before = new Set(this.#sessions.keys())
    await this.#load()
    for (const peer of before) if (!this.#sessions.has(peer)) this.#emit({ peer, kind: 'revoked', session: null })
    return true
  }

  /** Counts a failure; returns how long the peer is now locked out (0: not). */
  #fail(rec: PeerRecord, now: number): number {
    this.#globalFailures.push(now)
    if (now - Math.max(rec.lastFailureAt, rec.lockedUntil) >= LOCKOUT_MAX_MS) rec.lockouts = 0
    rec.lastFailureAt = now
    rec.failures = rec.failures.filter((t) => now - t < PEER_FAILURE_WINDOW_MS)
    rec.failures.push(now)
    if (rec.failures.length < PEER_FAILURE_LIMIT && rec.lockouts === 0) return 0
    const ms = Math.min(LOCKOUT_BASE_MS * 2 ** rec.lockouts, LOCKOUT_MAX_MS)
    rec.lockouts = Math.min(rec.lockouts + 1, 16)
    rec.lockedUntil = now + ms
    return ms
  }

  #globalRetryAfter(now: number): number {
    this.#globalFailures = this.#globalFailures.filter((t) => now - t < GLOBAL_FAILURE_WINDOW_MS)
    if (this.#globalFailures.length < GLOBAL_FAILURE_LIMIT) return 0
    return this.#globalFailures[this.#globalFailures.length - GLOBAL_FAILURE_LIMIT]! + GLOBAL_FAILURE_WINDOW_MS - now
  }

  #emit(change: SessionChange): void {
    this.#onChange?.(change)
  }

  async #fingerprint(): Promise<string> {
    try {
      const st = await stat(this.path)
      return `${st.ino}:${st.mtimeMs}:${st.size}`
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ''
      throw new SecondFactorStoreError(`cannot read ${this.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
    }
  }

  async #load(): Promise<void> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') {
        this.#peers = new Map()
        this.#sessions = new Map()
        this.#seen = ''
        return
      }
      throw new SecondFactorStoreError(`cannot read ${this.path}: ${code ?? String(err)}`, { cause: err })
    }
    const parsed = parseStoreFile(text)
    if (typeof parsed === 'string') throw new SecondFactorStoreError(`${this.path} is damaged: ${parsed}`)
    this.#peers = parsed.peers
    this.#sessions = new Map([...parsed.sessions].filter(([peer]) => this.#peers.has(peer)))
    // A secret readable by others is a secret no more; make the file private again.
    const st = await stat(this.path)
    if ((st.mode & 0o777) !== STORE_MODE) await chmod(this.path, STORE_MODE)
    this.#seen = await this.#fingerprint()
  }

  /** Queues a write of the state as it is now; resolves once it (and every earlier one) is on disk. */
  #persist(): Promise<void> {
    const doc = { v: 1, peers: Object.fromEntries(this.#peers), sessions: Object.fromEntries(this.#sessions) }
    const text = JSON.stringify(doc, null, 2) + '\n'
    const write = this.#writes.then(async () => {
      try {
        await writeFileAtomic(this.path, text, STORE_MODE)
      } catch (err) {
        throw new SecondFactorStoreError(`cannot write ${this.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
      }
      this.#seen = await this.#fingerprint()
    })
    // A failed write fails its caller; later writes still run (they carry the whole state).
    this.#writes = write.catch(() => undefined)
    return write
  }
}

/** The file's content, or what is wrong with it. */
function parseStoreFile(text: string): StoreFile | string {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return 'not JSON'
  }
  if (!isObject(doc) || doc.v !== 1) return 'not a version 1 store'
  if (!isObject(doc.peers) || !isObject(doc.sessions)) return 'no peers or sessions'
  // Maps, not objects: a peer named __proto__ stays a peer.
  const peers = new Map<string, PeerRecord>()
  for (const [name, r] of Object.entries(doc.peers)) {
    if (!isObject(r) || typeof r.secret !== 'string' || !/^[A-Z2-7]+=*$/.test(r.secret)) return `peer ${JSON.stringify(name)} has no valid secret`
    const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d)
    peers.set(name, {
      secret: r.secret,
      enrolledAt: num(r.enrolledAt, 0),
      lastStep: num(r.lastStep, -1),
      failures: Array.isArray(r.failures) ? r.failures.filter((t): t is number => typeof t === 'number') : [],
      lastFailureAt: num(r.lastFailureAt, 0),
      lockedUntil: num(r.lockedUntil, 0),
      lockouts: num(r.lockouts, 0),
    })
  }
  const sessions = new Map<string, number>()
  for (const [name, t] of Object.entries(doc.sessions)) if (typeof t === 'number' && Number.isFinite(t)) sessions.set(name, t)
  return { v: 1, peers, sessions }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
