/**
 * Invites: a short token a member prints (`quicether invite`) and a new
 * device redeems once (`quicether join`), and the store of pending invites
 * on the node that issued them.
 *
 * The token is `qe1` + base64url of
 *
 *   version(1) | id(8) | secret(16) | expires(4, seconds) | inviter key(32)
 *   | network length(1) | network | endpoint count(1) | endpoints | sha256(all before)[0..4)
 *   endpoint = family(1: 4 or 6) | address(4 or 16) | port(2)
 *
 * The checksum makes a mistyped token "not a valid token" at once instead of
 * a timeout. The secret proves the joiner holds the token and keys the
 * answer; it is single-use: the first valid request binds the invite to the
 * joiner's key (see join.ts).
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import qrcode from 'qrcode-terminal'
import type { Endpoint } from '../config/types.js'
import { writeFileAtomic } from '../atomic-file.js'
import { QeError } from '../errors.js'
import { bytesToIp, ipToBytes, parseAddress } from '../net/index.js'

/** The text is not a token this version reads: junk, a typo (checksum), cut short, another version. */
export class InviteTokenError extends QeError {
  override readonly code = 'QE_INVITE_TOKEN'
  constructor(message = 'not a valid invite token', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteTokenError'
  }
}

export interface InviteToken {
  readonly network: string
  /** 8 random bytes: which invite, in the inviter's store. */
  readonly id: Buffer
  /** 16 random bytes, one-time: keys the request's HMAC and the sealed answer. */
  readonly secret: Buffer
  /** ms since the epoch; carried in whole seconds (rounded up). */
  readonly expiresAt: number
  /** The inviter's public key, base64 of 32 bytes. */
  readonly inviterKey: string
  /** Where join requests go: the inviter's discovery endpoints (IP literals), then bootstrap nodes'. */
  readonly endpoints: readonly Endpoint[]
}

export const TOKEN_PREFIX = 'qe1'
const VERSION = 1
/** More would only make the QR code denser; the first ones are the preferred ones. */
export const MAX_TOKEN_ENDPOINTS = 6
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const SUM = 4
const FIXED = 1 + 8 + 16 + 4 + 32 + 1 + 1

/**
 * Encodes a token. Throws InviteTokenError for what cannot be carried: a bad
 * network name, a key that is not 32 bytes, an endpoint that is not an IP
 * literal, no endpoint at all. Endpoints past MAX_TOKEN_ENDPOINTS are left off.
 */
export function encodeToken(t: InviteToken): string {
  if (!NAME.test(t.network)) throw new InviteTokenError(`'${t.network}' is not a network name`)
  if (t.id.length !== 8 || t.secret.length !== 16) throw new InviteTokenError('an invite id is 8 bytes and its secret 16')
  const key = Buffer.from(t.inviterKey, 'base64')
  if (key.length !== 32) throw new InviteTokenError('the inviter key is not 32 bytes of base64')
  const seconds = Math.ceil(t.expiresAt / 1000)
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xffffffff) throw new InviteTokenError(`expiry ${t.expiresAt} does not fit a token`)
  if (t.endpoints.length === 0) throw new InviteTokenError('a token needs at least one endpoint to reach the inviter')
  const eps = t.endpoints.slice(0, MAX_TOKEN_ENDPOINTS).map((e) => {
    const ip = parseAddress(e.host).value
    if (!ip) throw new InviteTokenError(`endpoint '${e.host}' is not an IP address (a token carries no names)`)
    if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new InviteTokenError(`endpoint port ${e.port} is not 1-65535`)
    const port = Buffer.alloc(2)
    port.writeUInt16BE(e.port)
    return Buffer.concat([Buffer.from([ip.family]), ipToBytes(ip.text), port])
  })
  const net = Buffer.from(t.network, 'ascii')
  const exp = Buffer.alloc(4)
  exp.writeUInt32BE(seconds)
  const body = Buffer.concat([Buffer.from([VERSION]), t.id, t.secret, exp, key, Buffer.from([net.length]), net, Buffer.from([eps.length]), ...eps])
  return TOKEN_PREFIX + Buffer.concat([body, checksum(body)]).toString('base64url')
}

/**
 * Decodes a token; whitespace anywhere in it is ignored (a token copied out
 * of a wrapped terminal line). Throws InviteTokenError with a message a
 * person can act on. Does not look at the expiry: the caller compares it
 * with its clock.
 */
export function decodeToken(s: string): InviteToken {
  const text = s.replace(/\s+/g, '')
  if (!text.startsWith(TOKEN_PREFIX)) {
    const m = /^qe(\d+)/.exec(text)
    if (m) throw new InviteTokenError(`a version ${m[1]} invite token: this quicether reads version 1 (update quicether on this device)`)
    throw new InviteTokenError(`not an invite token: a token starts with '${TOKEN_PREFIX}' (this starts '${text.slice(0, 6)}')`)
  }
  const b64 = text.slice(TOKEN_PREFIX.length)
  if (!/^[A-Za-z0-9_-]*$/.test(b64)) throw new InviteTokenError('the token has characters a token never has: copy it again')
  const raw = Buffer.from(b64, 'base64url')
  if (raw.length < FIXED + SUM) throw new InviteTokenError('the token is cut short: copy all of it')
  const body = raw.subarray(0, raw.length - SUM)
  if (!checksum(body).equals(raw.subarray(raw.length - SUM))) throw new InviteTokenError('the token does not check out: a character is wrong or missing (copy it again)')
  if (body[0] !== VERSION) throw new InviteTokenError(`a version ${String(body[0])} invite token: this quicether reads version ${VERSION} (update quicether on this device)`)
  let o = 1
  const take = (n: number): Buffer => {
    if (o + n > body.length) throw new InviteTokenError('the token is malformed (a field runs past its end)')
    const b = body.subarray(o, o + n)
    o += n
    return Buffer.from(b)
  }
  const id = take(8)
  const secret = take(16)
  const expiresAt = take(4).readUInt32BE() * 1000
  const inviterKey = take(32).toString('base64')
  const network = take(take(1)[0] as number).toString('ascii')
  if (!NAME.test(network)) throw new InviteTokenError('the token is malformed (its network name is not a name)')
  const count = take(1)[0] as number
  if (count === 0 || count > MAX_TOKEN_ENDPOINTS) throw new InviteTokenError(`the token is malformed (${count} endpoints)`)
  const endpoints: Endpoint[] = []
  for (let i = 0; i < count; i++) {
    const fam = take(1)[0]
    if (fam !== 4 && fam !== 6) throw new InviteTokenError('the token is malformed (an endpoint of no address family)')
    const host = bytesToIp(take(fam === 4 ? 4 : 16))
    const port = take(2).readUInt16BE()
    if (port === 0) throw new InviteTokenError('the token is malformed (port 0)')
    endpoints.push({ host, port })
  }
  if (o !== body.length) throw new InviteTokenError('the token is malformed (bytes after its end)')
  return { network, id, secret, expiresAt, inviterKey, endpoints }
}

/** The token as a QR code for a terminal (small: two rows of modules per line of text). */
export function tokenQr(token: string): Promise<string> {
  return new Promise((resolve) => qrcode.generate(token, { small: true }, (q: string) => resolve(q)))
}

function checksum(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, SUM)
}

// ---------------------------------------------------------------- pending invites

export interface PendingInvite {
  /** Hex of the 8-byte id. */
  readonly id: string
  /** Base64 of the 16-byte secret. */
  readonly secret: string
  /** The certificate the joiner gets: node name and groups. */
  readonly name: string
  readonly groups: readonly string[]
  readonly expiresAt: number
  /** The joiner's key (base64) once redeemed; null while unused. */
  readonly usedBy: string | null
  /** The answer it got (the grant's JSON), sent again to a retry of the same request. */
  readonly response: string | null
}

/** How long an expired invite is kept: a late retry then hears "expired", not "unknown". */
export const EXPIRED_KEPT_MS = 3_600_000

/**
 * The invites a node issued, at a path the daemon gives
 * (`<state-dir>/invites.json`, mode 0600: it holds the one-time secrets).
 * Every change is written whole to a temporary file, fsynced and renamed
 * over the old one; writes are serialized, so concurrent changes never
 * interleave. Invites expired over EXPIRED_KEPT_MS ago are dropped on load
 * and on create. One process owns a store file.
 */
export class InviteStore {
  readonly #path: string
  #invites = new Map<string, PendingInvite>()
  #writing: Promise<void> = Promise.resolve()

  constructor(path: string) {
    this.#path = path
  }

  get path(): string {
    return this.#path
  }

  /**
   * Reads the file. A missing file is an empty store; an unreadable or
   * corrupt one is an empty store too, and `load` resolves with the reason
   * (for the log): losing pending invites makes them unknown, never reusable.
   */
  async load(now = Date.now()): Promise<string | null> {
    this.#invites = new Map()
    let text: string
    try {
      text = await readFile(this.#path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      return `cannot read ${this.#path}: ${(err as Error).message}`
    }
    let problem: string | null = null
    try {
      const doc = JSON.parse(text) as { invites?: unknown }
      for (const i of Array.isArray(doc.invites) ? doc.invites : []) {
        if (isPending(i)) this.#invites.set(i.id, i)
        else problem = `${this.#path}: skipped an entry that is not an invite`
      }
    } catch {
      problem = `${this.#path} is not JSON; starting with no pending invites`
    }
    this.#prune(now)
    return problem
  }

  /** A new invite: random id and secret, valid for `ttlMs` from `now`. Resolves once it is on disk. */
  async create(req: { name: string; groups: readonly string[]; ttlMs: number; now?: number }): Promise<{ id: Buffer; secret: Buffer; expiresAt: number }> {
    const now = req.now ?? Date.now()
    if (!Number.isFinite(req.ttlMs) || req.ttlMs <= 0) throw new RangeError(`an invite's lifetime must be positive, got ${req.ttlMs}`)
    this.#prune(now)
    const id = randomBytes(8)
    const secret = randomBytes(16)
    const expiresAt = now + req.ttlMs
    this.#invites.set(id.toString('hex'), { id: id.toString('hex'), secret: secret.toString('base64'), name: req.name, groups: [...req.groups], expiresAt, usedBy: null, response: null })
    await this.#save()
    return { id, secret, expiresAt }
  }

  lookup(id: Buffer): PendingInvite | undefined {
    return this.#invites.get(id.toString('hex'))
  }

  /**
   * Binds an invite to the joiner's key with the answer it got; resolves once
   * that is on disk, false for an unknown id. When the write fails, the
   * invite is unused again and the promise rejects.
   */
  async markUsed(id: Buffer, key: string, response: string): Promise<boolean> {
    const inv = this.#invites.get(id.toString('hex'))
    if (!inv) return false
    this.#invites.set(inv.id, { ...inv, usedBy: key, response })
    try {
      await this.#save()
    } catch (err) {
      // Not on disk: not used either (a restart would forget it), so a retry may try again.
      if (this.#invites.get(inv.id)?.usedBy === key) this.#invites.set(inv.id, inv)
      throw err
    }
    return true
  }

  /** Every invite, for status and tests. */
  list(): PendingInvite[] {
    return [...this.#invites.values()]
  }

  #prune(now: number): void {
    for (const [id, i] of this.#invites) if (i.expiresAt + EXPIRED_KEPT_MS < now) this.#invites.delete(id)
  }

  /**
   * Queues a write of the whole store as it is when the write starts (so a
   * later write never puts back an older state); rejects when that write
   * fails (the next one may still succeed).
   */
  #save(): Promise<void> {
    const next = this.#writing.then(() => writeSecretFile(this.#path, JSON.stringify({ v: 1, invites: [...this.#invites.values()] }, null, 2) + '\n'))
    this.#writing = next.catch(() => undefined)
    return next
  }
}

function isPending(x: unknown): x is PendingInvite {
  if (typeof x !== 'object' || x === null) return false
  const i = x as Record<string, unknown>
  return (
    typeof i.id === 'string' &&
    /^[0-9a-f]{16}$/.test(i.id) &&
    typeof i.secret === 'string' &&
    Buffer.from(i.secret, 'base64').length === 16 &&
    typeof i.name === 'string' &&
    Array.isArray(i.groups) &&
    i.groups.every((g) => typeof g === 'string') &&
    typeof i.expiresAt === 'number' &&
    (i.usedBy === null || typeof i.usedBy === 'string') &&
    (i.response === null || typeof i.response === 'string')
  )
}

/**
 * Writes `text` to `path`, mode 0600, atomically: a temporary file beside it,
 * fsync, rename. The parent directory is created with mode 0700 when missing.
 */
export async function writeSecretFile(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text, 0o600)
}
