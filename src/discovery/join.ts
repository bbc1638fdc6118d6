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

export class JoinServer {
  readonly #store: InviteStore
  readonly #log: Logger
  readonly #now: () => number
  readonly #grant: (req: { key: string; name: string; groups: readonly string[] }) => Promise<JoinGrant>
  readonly #stats = { granted: 0, unknown: 0, expired: 0, used: 0, malformed: 0, errors: 0 }

  constructor(init: { store: InviteStore }, components: { log: Logger; now?: () => number; grant: (req: { key: string; name: string; groups: readonly string[] }) => Promise<JoinGrant> }) {
    this.#store = init.store
    this.#log = components.log
    this.#now = components.now ?? Date.now
    this.#grant = components.grant
  }

  stats() {
    return { ...this.#stats }
  }

  /** One datagram that starts with the magic. Never throws; every refusal is counted and is one log line. */
  handle(msg: Buffer, from: { address: string; port: number }, reply: (buf: Buffer) => void): void {
    void this.#handle(msg, from, reply).catch((err: Error) => {
      this.#stats.errors++
      this.#log.error({ from: `${from.address}:${from.port}`, err: err.message }, 'join request failed')
    })
  }

  async #handle(msg: Buffer, from: { address: string; port: number }, reply: (buf: Buffer) => void): Promise<void> {
    const src = `${from.address}:${from.port}`
    if (msg.length !== REQUEST_LEN || !msg.subarray(0, 4).equals(JOIN_MAGIC) || msg[4] !== REQ) {
      this.#stats.malformed++
      this.#log.warn({ from: src, bytes: msg.length }, 'refused a malformed join request')
      return
    }
    const id = msg.subarray(5, 13)
    const nonce = msg.subarray(13, 29)
    const key = msg.subarray(HEADER, HEADER + 32)
    const inv = this.#store.get(id)
    const secret = inv ? Buffer.from(inv.secret, 'base64') : null
    if (!inv || !secret || !safeEqual(mac(secret, msg.subarray(0, HEADER + 32)), msg.subarray(HEADER + 32))) {
      this.#stats.unknown++
      this.#log.warn({ from: src }, 'refused a join request: unknown invite or wrong secret (forged)')
      return reply(Buffer.concat([header(RES, id, nonce), Buffer.from([1])]))
    }
    const keyB64 = key.toString('base64')
    const refuse = (status: JoinStatus) => {
      const h = Buffer.concat([header(RES, id, nonce), Buffer.from([status])])
      reply(Buffer.concat([h, mac(secret, h)]))
    }
    if (inv.usedBy !== null && inv.usedBy !== keyB64) {
      this.#stats.used++
      this.#log.warn({ from: src, invite: inv.name }, 'refused a join request: the invite was already used by another key')
      return refuse(3)
    }
    if (inv.usedBy === null && this.#now() > inv.expiresAt) {
      this.#stats.expired++
      this.#log.warn({ from: src, invite: inv.name }, 'refused a join request: the invite has expired')
      return refuse(2)
    }
    let grantJson = inv.grant
    if (grantJson === null) {
      if (inv.usedBy === keyB64) return // the first request of this key is being answered
      inv.usedBy = keyB64
      try {
        grantJson = JSON.stringify(await this.#grant({ key: keyB64, name: inv.name, groups: inv.groups }))
      } catch (err) {
        inv.usedBy = null
        this.#stats.errors++
        this.#log.error({ from: src, invite: inv.name, err: (err as Error).message }, 'cannot grant a join request')
        return refuse(4)
      }
      await this.#store.use(id, keyB64, grantJson)
      this.#stats.granted++
      this.#log.info({ from: src, name: inv.name, key: keyB64 }, 'granted an invite: a new member joins')
    }
    const h = Buffer.concat([header(RES, id, nonce), Buffer.from([0])])
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', sealKey(secret), iv)
    c.setAAD(h)
    const body = Buffer.concat([c.update(grantJson, 'utf8'), c.final()])
    reply(Buffer.concat([h, iv, body, c.getAuthTag()]))
  }
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

// ---- the joiner's side ----

const ajv = new Ajv({ strict: false })
const validateGrant = ajv.compile<JoinGrant>({
  type: 'object',
  required: ['cert', 'secret', 'network', 'bootstrap', 'inviter'],
  properties: {
    cert: { type: 'object' },
    secret: { type: 'string', maxLength: 200 },
    network: { type: 'object', required: ['name', 'ca', 'overlay'], properties: { name: { type: 'string' }, ca: { type: 'string' }, overlay: { type: 'object', required: ['ipv4', 'ipv6'] } } },
    bootstrap: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 60 } },
    inviter: { type: 'object', required: ['name', 'key', 'endpoints'], properties: { endpoints: { type: 'array', maxItems: 16, items: { type: 'string' } } } },
  },
})

/**
 * Asks the inviter (each of the token's endpoints, again every `retryMs`)
 * for a certificate for `joinerKey`; resolves with the checked grant.
 * Throws InviteUsedError, InviteExpiredError, InviteUnknownError,
 * InviteRefusedError, or InviteUnreachableError after `timeoutMs`.
 */
export async function requestJoin(token: InviteToken, joinerKey: Buffer, opts: { timeoutMs?: number; retryMs?: number; now?: number } = {}): Promise<JoinGrant> {
  const nonce = randomBytes(16)
  const req = encodeRequest(token, joinerKey, nonce)
  const sockets: Socket[] = []
  const families = new Set(token.endpoints.map((e) => (isIP(e.host) === 6 ? 6 : 4)))
  try {
    return await new Promise<JoinGrant>((resolveP, rejectP) => {
      let unknownSeen = false
      let every: NodeJS.Timeout | null = null
      let timer: NodeJS.Timeout | null = null
      const done = () => {
        if (every) clearInterval(every)
        if (timer) clearTimeout(timer)
      }
      const resolve = (g: JoinGrant) => {
        done()
        resolveP(g)
      }
      const reject = (e: Error) => {
        done()
        rejectP(e)
      }
      const onMessage = (m: Buffer) => {
        if (m.length < HEADER + 1 || !m.subarray(0, 4).equals(JOIN_MAGIC) || m[4] !== RES) return
        if (!m.subarray(5, 13).equals(token.id) || !m.subarray(13, 29).equals(nonce)) return
        const status = m[HEADER] as JoinStatus
        const h = m.subarray(0, HEADER + 1)
        if (status === 0) {
          try {
            const iv = m.subarray(HEADER + 1, HEADER + 13)
            const d = createDecipheriv('aes-256-gcm', sealKey(token.secret), iv)
            d.setAAD(h)
            d.setAuthTag(m.subarray(m.length - 16))
            const json = Buffer.concat([d.update(m.subarray(HEADER + 13, m.length - 16)), d.final()]).toString('utf8')
            resolve(checkGrant(JSON.parse(json) as unknown, token, joinerKey, opts.now ?? Date.now()))
          } catch (err) {
            reject(err instanceof QeError ? err : new InviteRefusedError(`the inviter's answer does not open: ${(err as Error).message}`))
          }
          return
        }
        if (status === 1) {
          unknownSeen = true
          return // unauthenticated: keep listening (another endpoint may know it); reported at the timeout
        }
        if (!safeEqual(mac(token.secret, h), m.subarray(HEADER + 1))) return
        if (status === 2) reject(new InviteExpiredError())
        else if (status === 3) reject(new InviteUsedError())
        else reject(new InviteRefusedError())
      }
      for (const fam of families) {
        const s = createSocket(fam === 6 ? 'udp6' : 'udp4')
        s.on('message', onMessage)
        s.on('error', () => undefined)
        sockets.push(s)
      }
      const order = [...families]
      const send = () => {
        for (const e of token.endpoints) sockets[order.indexOf(isIP(e.host) === 6 ? 6 : 4)]?.send(req, e.port, e.host)
      }
      send()
      every = setInterval(send, opts.retryMs ?? 300)
      timer = setTimeout(() => {
        const where = token.endpoints.map((e) => `${e.host}:${e.port}`).join(', ')
        reject(unknownSeen ? new InviteUnknownError() : new InviteUnreachableError(`the inviter did not answer at ${where} (is its daemon running, and its discovery port reachable from here?)`))
      }, opts.timeoutMs ?? 10_000)
    })
  } finally {
    for (const s of sockets) s.close()
  }
}

function checkGrant(g: unknown, token: InviteToken, joinerKey: Buffer, now: number): JoinGrant {
  if (!validateGrant(g)) throw new InviteRefusedError(`the inviter's answer is malformed: ${ajv.errorsText(validateGrant.errors)}`)
  const parsed = parseCertificate(g.cert)
  if (!parsed.ok) throw new InviteRefusedError(`the certificate does not parse: ${parsed.reason}`)
  const check = verifyCertificate(parsed.cert, { ca: g.network.ca, network: token.network, now })
  if (!check.ok) throw new InviteRefusedError(`the certificate does not verify: ${check.reason}`)
  if (parsed.cert.key !== joinerKey.toString('base64')) throw new InviteRefusedError('the certificate is for another key')
  if (g.network.name !== token.network) throw new InviteRefusedError('the grant is for another network')
  return { ...g, cert: parsed.cert }
}
