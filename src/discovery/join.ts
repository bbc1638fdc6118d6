/**
 * Joining by invite, on the wire: UDP datagrams to the inviter's discovery
 * port (the DHT socket hands over every datagram that is not bencoded;
 * these start with "QEJ1").
 *
 *   request   QEJ1 | 1 | id(8) | nonce(16) | joiner key(32) | HMAC-SHA256(secret, all before)
 *   response  QEJ1 | 2 | id(8) | nonce(16) | status(1) | body
 *     status 0 (granted): iv(12) | AES-256-GCM(HMAC(secret, "quicether-join-v1"), the JSON grant, AAD = header) | tag(16)
 *     status 2 (expired), 3 (used), 4 (inviter error): HMAC-SHA256(secret, header), so the joiner knows it is genuine
 *     status 1 (unknown invite: forged, or another node's): no body (the inviter has no secret to prove it with)
 *
 * The grant carries the certificate, the network secret and where to find
 * the network, sealed with the one-time secret: only the token holder reads
 * it. A request is retried (UDP loses datagrams); a retry of the same id and
 * key gets the same grant again, another key gets "used".
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { isIP } from 'node:net'
import { Ajv } from 'ajv'
import { QeError } from '../errors.js'
import type { Logger } from '../log.js'
import { parseCertificate, verifyCertificate, type Certificate } from '../pki/index.js'
import type { InviteStore, InviteToken } from './invite.js'
import { formatEndpoint, parseEndpointText } from './record.js'

export const JOIN_MAGIC = Buffer.from('QEJ1')
const REQ = 1
const RES = 2
const HEADER = 4 + 1 + 8 + 16
const REQUEST_LEN = HEADER + 32 + 32

export type JoinStatus = 0 | 1 | 2 | 3 | 4

export interface JoinGrant {
  readonly cert: Certificate
  /** The network secret, base64. */
  readonly secret: string
  readonly network: { readonly name: string; readonly ca: string; readonly overlay: { readonly ipv4: string; readonly ipv6: string } }
  /** Bootstrap nodes' discovery endpoints, "ip:port". */
  readonly bootstrap: readonly string[]
  /** The inviter: the joiner pins it as its first contact. */
  readonly inviter: { readonly name: string; readonly key: string; readonly endpoints: readonly string[] }
}

export class InviteUsedError extends QeError {
  override readonly code = 'QE_INVITE_USED'
  constructor(message = 'this invite was already used by another device: ask for a new one', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteUsedError'
  }
}
export class InviteExpiredError extends QeError {
  override readonly code = 'QE_INVITE_EXPIRED'
  constructor(message = 'this invite has expired: ask for a new one', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteExpiredError'
  }
}
export class InviteUnknownError extends QeError {
  override readonly code = 'QE_INVITE_UNKNOWN'
  constructor(message = 'the inviter does not know this invite (forged, or issued by another node)', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteUnknownError'
  }
}
export class InviteUnreachableError extends QeError {
  override readonly code = 'QE_INVITE_UNREACHABLE'
  constructor(message = 'the inviter did not answer', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteUnreachableError'
  }
}
export class InviteRefusedError extends QeError {
  override readonly code = 'QE_INVITE_REFUSED'
  constructor(message = 'the inviter could not issue a certificate', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteRefusedError'
  }
}

const mac = (key: Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest()
const sealKey = (secret: Buffer) => mac(secret, Buffer.from('quicether-join-v1'))

function header(type: number, id: Buffer, nonce: Buffer): Buffer {
  return Buffer.concat([JOIN_MAGIC, Buffer.from([type]), id, nonce])
}

export function encodeRequest(token: Pick<InviteToken, 'id' | 'secret'>, joinerKey: Buffer, nonce: Buffer): Buffer {
  const body = Buffer.concat([header(REQ, token.id, nonce), joinerKey])
  return Buffer.concat([body, mac(token.secret, body)])
}

// ---- the inviter's side ----

type JoinStats = { granted: number; unknown: number; expired: number; used: number; malformed: number; errors: number }

export class JoinServer {
  readonly #store: InviteStore
  readonly #log: Logger
  readonly #now: () => number
  readonly #grant: (req: { key: string; name: string; groups: readonly string[] }) => Promise<JoinGrant>
  readonly #stats: JoinStats = { granted: 0, unknown: 0, expired: 0, used: 0, malformed: 0, errors: 0 }
  /** Invites (hex id) whose grant is being made, and for which key: the first valid request binds the invite. */
  readonly #pending = new Map<string, string>()

  constructor(init: { store: InviteStore }, components: { log: Logger; now?: () => number; grant: (req: { key: string; name: string; groups: readonly string[] }) => Promise<JoinGrant> }) {
    this.#store = init.store
    this.#log = components.log
    this.#now = components.now ?? Date.now
    this.#grant = components.grant
  }

  stats(): JoinStats {
    return { ...this.#stats }
  }

  /**
   * One datagram (already known to start with the magic); `reply` sends a
   * datagram back to its source. Never throws, nor rejects later; every
   * refusal is counted and is one log line. A request that arrives while
   * the same key's grant is being made is dropped (the joiner retries and
   * then gets the stored answer).
   */
  handle(msg: Buffer, from: { address: string; port: number }, reply: (buf: Buffer) => void): void {
    const send = (b: Buffer) => {
      try {
        reply(b)
      } catch (err) {
        this.#log.warn({ from: `${from.address}:${from.port}`, err: (err as Error).message }, 'cannot send a join answer')
      }
    }
    this.#handle(msg, from, send).catch((err: unknown) => {
      this.#stats.errors++
      this.#log.error({ from: `${from.address}:${from.port}`, err: err instanceof Error ? err.message : String(err) }, 'join request failed')
    })
  }

  async #handle(msg: Buffer, from: { address: string; port: number }, reply: (buf: Buffer) => void): Promise<void> {
    const src = `${from.address}:${from.port}`
    if (msg.length !== REQUEST_LEN || !msg.subarray(0, 4).equals(JOIN_MAGIC) || msg[4] !== REQ) {
      this.#stats.malformed++
      this.#log.warn({ from: src, bytes: msg.length }, 'refused a malformed join request')
      return
    }
    const id = Buffer.from(msg.subarray(5, 13))
    const nonce = Buffer.from(msg.subarray(13, 29))
    const key = msg.subarray(HEADER, HEADER + 32)
    const inv = this.#store.lookup(id)
    const secret = inv ? Buffer.from(inv.secret, 'base64') : null
    if (!inv || !secret || !safeEqual(mac(secret, msg.subarray(0, HEADER + 32)), msg.subarray(HEADER + 32))) {
      this.#stats.unknown++
      this.#log.warn({ from: src, invite: id.toString('hex') }, 'refused a join request: unknown invite or wrong secret (forged)')
      return reply(Buffer.concat([header(RES, id, nonce), Buffer.from([1])]))
    }
    const keyB64 = key.toString('base64')
    const refuse = (status: JoinStatus) => {
      const h = Buffer.concat([header(RES, id, nonce), Buffer.from([status])])
      reply(Buffer.concat([h, mac(secret, h)]))
    }
    const pendingKey = this.#pending.get(inv.id)
    const boundTo = pendingKey ?? inv.usedBy
    if (boundTo !== null && boundTo !== keyB64) {
      this.#stats.used++
      this.#log.warn({ from: src, invite: inv.name }, 'refused a join request: the invite was already used by another key')
      return refuse(3)
    }
    if (pendingKey !== undefined) return // this key's grant is being made (or written down): the next retry gets it
    if (inv.response !== null) return reply(sealGrant(secret, id, nonce, inv.response)) // a retry: the same answer again
    if (this.#now() > inv.expiresAt) {
      this.#stats.expired++
      this.#log.warn({ from: src, invite: inv.name }, 'refused a join request: the invite has expired')
      return refuse(2)
    }
    this.#pending.set(inv.id, keyB64)
    let json: string
    try {
      json = JSON.stringify(await this.#grant({ key: keyB64, name: inv.name, groups: inv.groups }))
      // On disk before it is answered: a used invite must stay used across a restart.
      await this.#store.markUsed(id, keyB64, json)
    } catch (err) {
      this.#stats.errors++
      this.#log.error({ from: src, invite: inv.name, err: err instanceof Error ? err.message : String(err) }, 'cannot grant a join request')
      return refuse(4)
    } finally {
      this.#pending.delete(inv.id)
    }
    this.#stats.granted++
    this.#log.info({ from: src, name: inv.name, key: keyB64 }, 'granted an invite: a new member joins')
    reply(sealGrant(secret, id, nonce, json))
  }
}

function sealGrant(secret: Buffer, id: Buffer, nonce: Buffer, json: string): Buffer {
  const h = Buffer.concat([header(RES, id, nonce), Buffer.from([0])])
  const iv = randomBytes(12)
  const c = createCipheriv('aes-256-gcm', sealKey(secret), iv)
  c.setAAD(h)
  const body = Buffer.concat([c.update(json, 'utf8'), c.final()])
  return Buffer.concat([h, iv, body, c.getAuthTag()])
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

// ---- the joiner's side ----

const ajv = new Ajv({ strict: true })
const KEY = { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' } as const
const ENDPOINT = { type: 'string', maxLength: 47 } as const
const validateGrant = ajv.compile<JoinGrant>({
  type: 'object',
  additionalProperties: false,
  required: ['cert', 'secret', 'network', 'bootstrap', 'inviter'],
  properties: {
    cert: { type: 'object' },
    secret: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
    network: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'ca', 'overlay'],
      properties: {
        name: { type: 'string', maxLength: 63 },
        ca: KEY,
        overlay: { type: 'object', additionalProperties: false, required: ['ipv4', 'ipv6'], properties: { ipv4: { type: 'string', maxLength: 43 }, ipv6: { type: 'string', maxLength: 43 } } },
      },
    },
    bootstrap: { type: 'array', maxItems: 32, items: ENDPOINT },
    inviter: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'key', 'endpoints'],
      properties: { name: { type: 'string', maxLength: 63 }, key: KEY, endpoints: { type: 'array', maxItems: 16, items: ENDPOINT } },
    },
  },
})

export interface RequestJoinOptions {
  /** Give up after this long with InviteUnreachableError (or InviteUnknownError); default 10 s. */
  timeoutMs?: number
  /** Send the request again this often (UDP loses datagrams); default 300 ms. */
  retryMs?: number
  /** Local address of the socket(s); default any. Tests bind 127.0.0.1. */
  bind?: string
  /** The clock the certificate is checked against; default Date.now(). */
  now?: () => number
}

/**
 * Asks the inviter (each of the token's endpoints, again every `retryMs`)
 * for a certificate for `joinerKey`; resolves with the checked grant: the
 * certificate parses, verifies against grant.network.ca for the token's
 * network, and is for `joinerKey`; the inviter is the token's. Throws
 * InviteUsedError, InviteExpiredError, InviteUnknownError (only unauthenticated
 * "unknown" answers came back), InviteRefusedError (the inviter failed, or
 * its grant does not check), or InviteUnreachableError after `timeoutMs`.
 * Answers that do not authenticate with the token's secret are ignored.
 */
export async function requestJoin(token: InviteToken, joinerKey: Buffer, opts: RequestJoinOptions = {}): Promise<JoinGrant> {
  if (joinerKey.length !== 32) throw new RangeError('a joiner key is 32 raw bytes')
  if (token.endpoints.length === 0) throw new InviteUnreachableError('the token names no endpoint to reach the inviter at')
  const now = opts.now ?? Date.now
  const nonce = randomBytes(16)
  const req = encodeRequest(token, joinerKey, nonce)
  const sockets = new Map<4 | 6, Socket>()
  try {
    for (const fam of new Set(token.endpoints.map((e) => (isIP(e.host) === 6 ? 6 : 4)))) {
      const s = createSocket(fam === 6 ? 'udp6' : 'udp4')
      s.on('error', () => undefined) // a send to an unreachable family or port: the timeout reports it
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.bind(0, opts.bind, () => {
          s.off('error', reject)
          resolve()
        })
      })
      sockets.set(fam, s)
    }
    return await new Promise<JoinGrant>((resolveP, rejectP) => {
      let unknownSeen = false
      const timers: NodeJS.Timeout[] = []
      const finish = () => {
        for (const x of timers) clearTimeout(x)
        for (const s of sockets.values()) s.off('message', onMessage)
      }
      const resolve = (g: JoinGrant) => {
        finish()
        resolveP(g)
      }
      const reject = (e: Error) => {
        finish()
        rejectP(e)
      }
      const onMessage = (m: Buffer) => {
        if (m.length < HEADER + 1 || !m.subarray(0, 4).equals(JOIN_MAGIC) || m[4] !== RES) return
        if (!m.subarray(5, 13).equals(token.id) || !m.subarray(13, 29).equals(nonce)) return
        const status = m[HEADER] as JoinStatus
        const h = m.subarray(0, HEADER + 1)
        if (status === 0) {
          const json = openGrant(m, h, token.secret)
          if (json === null) return // not sealed with the token's secret: not the inviter's answer
          try {
            resolve(checkGrant(JSON.parse(json) as unknown, token, joinerKey, now()))
          } catch (err) {
            reject(err instanceof QeError ? err : new InviteRefusedError(`the inviter's answer is not a grant: ${(err as Error).message}`))
          }
          return
        }
        if (status === 1) {
          unknownSeen = true
          return // unauthenticated: keep listening (another endpoint may know it); reported at the timeout
        }
        if (m.length !== HEADER + 1 + 32 || !safeEqual(mac(token.secret, h), m.subarray(HEADER + 1))) return
        if (status === 2) reject(new InviteExpiredError())
        else if (status === 3) reject(new InviteUsedError())
        else reject(new InviteRefusedError('the inviter could not issue a certificate (its log says why); try again, or ask for a new invite'))
      }
      for (const s of sockets.values()) s.on('message', onMessage)
      const send = () => {
        for (const e of token.endpoints) sockets.get(isIP(e.host) === 6 ? 6 : 4)?.send(req, e.port, e.host)
      }
      const every = () => {
        send()
        timers[0] = setTimeout(every, opts.retryMs ?? 300)
      }
      every()
      timers[1] = setTimeout(() => {
        const where = token.endpoints.map((e) => formatEndpoint(e)).join(', ')
        reject(
          unknownSeen
            ? new InviteUnknownError(`the inviter at ${where} does not know this invite (mistyped, forged, or issued by another node): ask for a new one`)
            : new InviteUnreachableError(`the inviter did not answer at ${where} (is its daemon running, and its discovery port reachable from here?)`),
        )
      }, opts.timeoutMs ?? 10_000)
    })
  } finally {
    for (const s of sockets.values()) s.close()
  }
}

function openGrant(m: Buffer, h: Buffer, secret: Buffer): string | null {
  if (m.length < HEADER + 1 + 12 + 16) return null
  try {
    const d = createDecipheriv('aes-256-gcm', sealKey(secret), m.subarray(HEADER + 1, HEADER + 13))
    d.setAAD(h)
    d.setAuthTag(m.subarray(m.length - 16))
    return Buffer.concat([d.update(m.subarray(HEADER + 13, m.length - 16)), d.final()]).toString('utf8')
  } catch {
    return null
  }
}

function checkGrant(g: unknown, token: InviteToken, joinerKey: Buffer, now: number): JoinGrant {
  if (!validateGrant(g)) throw new InviteRefusedError(`the inviter's answer is malformed: ${ajv.errorsText(validateGrant.errors)}`)
  if (g.network.name !== token.network) throw new InviteRefusedError(`the grant is for network '${g.network.name}', the token for '${token.network}'`)
  if (g.inviter.key !== token.inviterKey) throw new InviteRefusedError('the grant names another inviter than the token')
  const parsed = parseCertificate(g.cert)
  if (!parsed.ok) throw new InviteRefusedError(`the certificate does not parse: ${parsed.reason}`)
  const check = verifyCertificate(parsed.cert, { ca: g.network.ca, network: token.network, now })
  if (!check.ok) throw new InviteRefusedError(`the certificate does not verify: ${check.reason}`)
  if (parsed.cert.key !== joinerKey.toString('base64')) throw new InviteRefusedError('the certificate is for another key')
  for (const e of [...g.bootstrap, ...g.inviter.endpoints]) {
    if (parseEndpointText(e) === null) throw new InviteRefusedError(`the grant's endpoint '${e}' is not ip:port`)
  }
  return { ...g, cert: parsed.cert }
}
