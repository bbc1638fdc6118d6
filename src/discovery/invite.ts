/**
 * Invites: a short token a member prints (`quicether invite`) and a new
 * device redeems once (`quicether join`), and the store of pending invites
 * on the node that issued them.
 *
 * The token (`qe1` + base64url) holds the network's name, where to reach
 * the inviter (its discovery endpoints), the inviter's key, an invite id, a
 * one-time secret and the expiry, plus a 4-byte checksum so a mistyped
 * token is "not a valid token", not a timeout. The secret proves the joiner
 * holds the token and keys the answer; it is single-use: the first valid
 * request binds the invite to the joiner's key.
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import qrcode from 'qrcode-terminal'
import type { Endpoint } from '../config/types.js'
import { QeError } from '../errors.js'
import { parseAddress } from '../net/index.js'

export class InviteTokenError extends QeError {
  override readonly code = 'QE_INVITE_TOKEN'
  constructor(message = 'not a valid invite token', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteTokenError'
  }
}

export interface InviteToken {
  readonly network: string
  /** 8 random bytes. */
  readonly id: Buffer
  /** 16 random bytes, one-time. */
  readonly secret: Buffer
  /** ms since the epoch (carried in seconds). */
  readonly expiresAt: number
  /** The inviter's public key, base64. */
  readonly inviterKey: string
  /** Where join requests go: the inviter's discovery endpoints, IP literals. */
  readonly endpoints: readonly Endpoint[]
}

const PREFIX = 'qe1'
const VERSION = 1
const MAX_ENDPOINTS = 6

export function encodeToken(t: InviteToken): string {
  const net = Buffer.from(t.network, 'utf8')
  if (net.length > 63) throw new InviteTokenError('the network name is too long for a token')
  const eps = t.endpoints.slice(0, MAX_ENDPOINTS).flatMap((e) => {
    const ip = parseAddress(e.host).value
    if (!ip) return []
    const bytes = ip.family === 4 ? Buffer.from(ip.text.split('.').map(Number)) : ipv6Bytes(ip.text)
    const port = Buffer.alloc(2)
    port.writeUInt16BE(e.port)
    return [Buffer.concat([Buffer.from([ip.family]), bytes, port])]
  })
  const exp = Buffer.alloc(4)
  exp.writeUInt32BE(Math.ceil(t.expiresAt / 1000))
  const body = Buffer.concat([Buffer.from([VERSION]), t.id, t.secret, exp, Buffer.from(t.inviterKey, 'base64'), Buffer.from([net.length]), net, Buffer.from([eps.length]), ...eps])
  const sum = createHash('sha256').update(body).digest().subarray(0, 4)
  return PREFIX + Buffer.concat([body, sum]).toString('base64url')
}

export function decodeToken(s: string): InviteToken {
  const text = s.trim()
  if (!text.startsWith(PREFIX)) throw new InviteTokenError(`not an invite token (it starts with '${PREFIX}'; this is '${text.slice(0, 6)}…')`)
  const raw = Buffer.from(text.slice(PREFIX.length), 'base64url')
  if (raw.length < 1 + 8 + 16 + 4 + 32 + 2 + 4) throw new InviteTokenError('the token is cut short: copy all of it')
  const body = raw.subarray(0, raw.length - 4)
  if (!createHash('sha256').update(body).digest().subarray(0, 4).equals(raw.subarray(raw.length - 4))) throw new InviteTokenError('the token does not check out: a character is wrong or missing (copy it again)')
  if (body[0] !== VERSION) throw new InviteTokenError(`a version ${String(body[0])} token: this quicether reads version ${VERSION}`)
  let o = 1
  const take = (n: number) => {
    if (o + n > body.length) throw new InviteTokenError('the token is malformed')
    const b = body.subarray(o, o + n)
    o += n
    return b
  }
  const id = Buffer.from(take(8))
  const secret = Buffer.from(take(16))
  const expiresAt = take(4).readUInt32BE() * 1000
  const inviterKey = take(32).toString('base64')
  const network = take(take(1)[0] as number).toString('utf8')
  const count = take(1)[0] as number
  const endpoints: Endpoint[] = []
  for (let i = 0; i < count; i++) {
    const fam = take(1)[0]
    const addr = fam === 4 ? [...take(4)].join('.') : fam === 6 ? ipv6Text(take(16)) : null
    if (addr === null) throw new InviteTokenError('the token is malformed')
    endpoints.push({ host: addr, port: take(2).readUInt16BE() })
  }
  return { network, id, secret, expiresAt, inviterKey, endpoints }
}

/** The token as a QR code for a terminal (small: two rows per character). */
export function tokenQr(token: string): Promise<string> {
  return new Promise((resolve) => qrcode.generate(token, { small: true }, (q: string) => resolve(q)))
}

function ipv6Bytes(text: string): Buffer {
  const [head, tail] = text.split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const tl = tail !== undefined && tail !== '' ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

function ipv6Text(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':')
  return parseAddress(groups).value?.text ?? groups
}

// ---- pending invites ----

export interface PendingInvite {
  readonly id: string
  readonly secret: string
  readonly name: string
  readonly groups: readonly string[]
  readonly expiresAt: number
  /** The joiner's key once redeemed; the answer it got (sent again to a retry of the same request). */
  usedBy: string | null
  grant: string | null
}

/**
 * The invites a node issued, persisted (mode 0600: it holds the one-time
 * secrets) with atomic writes. Expired invites are dropped when the store
 * is loaded and when a new one is made.
 */
export class InviteStore {
  readonly #path: string
  #invites = new Map<string, PendingInvite>()

  constructor(path: string) {
    this.#path = path
  }

  async load(now = Date.now()): Promise<void> {
    try {
      const doc = JSON.parse(await readFile(this.#path, 'utf8')) as { invites?: PendingInvite[] }
      this.#invites = new Map((doc.invites ?? []).filter((i) => typeof i.id === 'string').map((i) => [i.id, i]))
    } catch {
      this.#invites = new Map()
    }
    this.#prune(now)
  }

  async create(req: { name: string; groups: readonly string[]; ttlMs: number; now?: number }): Promise<{ id: Buffer; secret: Buffer; expiresAt: number }> {
    const now = req.now ?? Date.now()
    this.#prune(now)
    const id = randomBytes(8)
    const secret = randomBytes(16)
    const expiresAt = now + req.ttlMs
    this.#invites.set(id.toString('hex'), { id: id.toString('hex'), secret: secret.toString('base64'), name: req.name, groups: [...req.groups], expiresAt, usedBy: null, grant: null })
    await this.#save()
    return { id, secret, expiresAt }
  }

  get(id: Buffer): PendingInvite | undefined {
    return this.#invites.get(id.toString('hex'))
  }

  /** Binds an invite to the joiner's key (in memory at once, so a second request in flight sees it; on disk after). */
  async use(id: Buffer, key: string, grant: string | null): Promise<void> {
    const inv = this.#invites.get(id.toString('hex'))
    if (!inv) return
    inv.usedBy = key
    if (grant !== null) inv.grant = grant
    await this.#save()
  }

  #prune(now: number): void {
    // Kept an hour past expiry, so a late retry still gets "expired", not "unknown".
    for (const [id, i] of this.#invites) if (i.expiresAt + 3_600_000 < now) this.#invites.delete(id)
  }

  async #save(): Promise<void> {
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 })
    const tmp = `${this.#path}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify({ invites: [...this.#invites.values()] }, null, 2) + '\n', { mode: 0o600 })
    await chmod(tmp, 0o600)
    await rename(tmp, this.#path)
  }
}
