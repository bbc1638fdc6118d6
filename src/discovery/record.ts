/**
 * A member's record: what a node tells the network about itself, and the one
 * thing discovery trusts.
 *
 * A record is a BEP 44 mutable item signed with the node's own Ed25519 key
 * (`k` is the node key), stored under the network's salt, its value sealed
 * with the network's record key (AES-256-GCM). Inside: the node's certificate
 * (signed by the network CA), the endpoints its tunnel listens on, and its
 * discovery endpoint when it serves as a bootstrap node.
 *
 * Both keys come from the network secret that only members hold, so:
 * - outsiders (and bootstrap nodes, which store records) can neither
 *   enumerate members by salt nor read a record;
 * - a record is used only once its item signature, its seal, its certificate
 *   (CA, network, validity, revocation) and the match between the
 *   certificate's key and the signing key all hold. The DHT, the LAN and
 *   peers are untrusted carriers.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, type KeyObject } from 'node:crypto'
import { Ajv } from 'ajv'
import type { Endpoint } from '../config/types.js'
import { parseAddress } from '../net/index.js'
import { parseCertificate, verifyCertificate, type Certificate } from '../pki/index.js'
import { signItem, verifyItem, type SignedItem } from './bep44.js'

/** BEP 44's cap on a value (bittorrent-dht refuses 1000 bytes and more). */
export const MAX_VALUE_BYTES = 999
const NONCE = 12
/** Endpoints a record carries at most (the first ones are the preferred ones). */
export const MAX_ENDPOINTS = 16
const TAG = 16

/** The keys a network secret gives. */
export interface NetworkKeys {
  readonly network: string
  /** The CA's public key (base64). */
  readonly ca: string
  /** Salt of every member record (16 bytes). */
  readonly salt: Buffer
  /** AES-256-GCM key that seals record values (32 bytes). */
  readonly recordKey: Buffer
}

/** What a record says, once opened. */
export interface MemberRecord {
  readonly cert: Certificate
  /** Where the node's tunnel listens: its configured public address, then its local addresses. */
  readonly endpoints: readonly Endpoint[]
  /** Its discovery (DHT) endpoint when it serves as a bootstrap node; null otherwise. */
  readonly bootstrap: Endpoint | null
}

/** Why a record was refused. Each has its own counter; each refusal is one log line. */
export type RecordRefusal =
  | 'bad-signature' // the item's signature does not verify
  | 'other-network' // another salt, or a value that does not open with our key
  | 'malformed' // opens, but is not a record
  | 'key-mismatch' // the certificate is for another key than the one that signed
  | 'cert-invalid' // not issued by our CA for this network, or its signature fails
  | 'cert-expired' // expired or not yet valid
  | 'revoked' // the key is on the revocation list
  | 'replayed' // an older (or the same) sequence number than one already accepted

export type OpenResult = { readonly ok: true; readonly record: MemberRecord; readonly key: string } | { readonly ok: false; readonly refusal: RecordRefusal; readonly reason: string }

/** Derives the salt and record key of a network from its secret (HMAC-SHA256, one label each). */
export function networkKeys(secret: Buffer, network: string, ca: string): NetworkKeys {
  const derive = (label: string) => createHmac('sha256', secret).update(`quicether-${label}-v1:${network}`).digest()
  return { network, ca, salt: derive('salt').subarray(0, 16), recordKey: derive('record') }
}

/** The plaintext inside a sealed value: short keys, since a value holds at most 1000 bytes. */
interface Plain {
  readonly c: unknown
  readonly e: readonly string[]
  readonly b: string | null
}

const ajv = new Ajv({ strict: true })
const validatePlain = ajv.compile<Plain>({
  type: 'object',
  additionalProperties: false,
  required: ['c', 'e', 'b'],
  properties: {
    c: { type: 'object' },
    e: { type: 'array', maxItems: MAX_ENDPOINTS, items: { type: 'string', maxLength: 47 } },
    b: { type: ['string', 'null'], maxLength: 47 },
  },
})

/**
 * Seals and signs a record as item `seq`. Endpoints past the 16th, or that
 * do not fit BEP 44's value, are left off the end (the first ones are the preferred
 * ones); throws RangeError when even the certificate alone does not fit.
 */
export function sealRecord(record: MemberRecord, keys: NetworkKeys, privateKey: KeyObject, seq: number): SignedItem {
  let endpoints = record.endpoints.slice(0, MAX_ENDPOINTS).map(formatEndpoint)
  for (;;) {
    const plain: Plain = { c: record.cert, e: endpoints, b: record.bootstrap ? formatEndpoint(record.bootstrap) : null }
    const v = seal(Buffer.from(JSON.stringify(plain), 'utf8'), keys.recordKey)
    if (v.length <= MAX_VALUE_BYTES) return signItem(privateKey, keys.salt, seq, v)
    if (endpoints.length === 0) throw new RangeError(`a record with this certificate is ${v.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit`)
    endpoints = endpoints.slice(0, -1)
  }
}

/** Checks everything a record must pass before anything in it is used. Never throws. */
export function openRecord(item: SignedItem, keys: NetworkKeys, opts: { now: number; revoked: ReadonlySet<string> }): OpenResult {
  const key = item.k.toString('base64')
  if (!item.salt.equals(keys.salt)) return refuse('other-network', 'stored under another network\'s salt')
  if (!verifyItem(item)) return refuse('bad-signature', 'the item signature does not verify')
  const plainBytes = open(item.v, keys.recordKey)
  if (plainBytes === null) return refuse('other-network', 'the value does not open with this network\'s key')
  let plain: unknown
  try {
    plain = JSON.parse(plainBytes.toString('utf8'))
  } catch {
    return refuse('malformed', 'the value is not JSON')
  }
  if (!validatePlain(plain)) return refuse('malformed', `not a record: ${ajv.errorsText(validatePlain.errors)}`)
  const parsed = parseCertificate(plain.c)
  if (!parsed.ok) return refuse('malformed', `its certificate does not parse: ${parsed.reason}`)
  const cert = parsed.cert
  if (cert.key !== key) return refuse('key-mismatch', `its certificate is for ${cert.key.slice(0, 8)}…, not the signing key`)
  const check = verifyCertificate(cert, { ca: keys.ca, network: keys.network, now: opts.now, revoked: opts.revoked })
  if (!check.ok) {
    const refusal: RecordRefusal = check.code === 'QE_CERT_REVOKED' ? 'revoked' : check.code === 'QE_CERT_EXPIRED' || check.code === 'QE_CERT_NOT_YET_VALID' ? 'cert-expired' : 'cert-invalid'
    return refuse(refusal, check.reason)
  }
  const endpoints: Endpoint[] = []
  for (const e of plain.e) {
    const ep = parseEndpointText(e)
    if (ep === null) return refuse('malformed', `endpoint ${JSON.stringify(e.slice(0, 50))} is not ip:port`)
    endpoints.push(ep)
  }
  const bootstrap = plain.b === null ? null : parseEndpointText(plain.b)
  if (plain.b !== null && bootstrap === null) return refuse('malformed', 'its bootstrap endpoint is not ip:port')
  return { ok: true, key, record: { cert, endpoints, bootstrap } }
}

function refuse(refusal: RecordRefusal, reason: string): OpenResult {
  return { ok: false, refusal, reason }
}

function seal(plain: Buffer, key: Buffer): Buffer {
  const nonce = randomBytes(NONCE)
  const c = createCipheriv('aes-256-gcm', key, nonce)
  const body = Buffer.concat([c.update(plain), c.final()])
  return Buffer.concat([nonce, body, c.getAuthTag()])
}

function open(v: Buffer, key: Buffer): Buffer | null {
  if (v.length < NONCE + TAG) return null
  try {
    const d = createDecipheriv('aes-256-gcm', key, v.subarray(0, NONCE))
    d.setAuthTag(v.subarray(v.length - TAG))
    return Buffer.concat([d.update(v.subarray(NONCE, v.length - TAG)), d.final()])
  } catch {
    return null
  }
}

/** `1.2.3.4:7443` or `[fd00::1]:7443`. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}

/** An IP-literal endpoint (records carry no names: nothing to resolve, nothing to spoof); null otherwise. */
export function parseEndpointText(s: string): Endpoint | null {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([0-9.]+):(\d{1,5})$/.exec(s)
  if (!m) return null
  const port = Number(m[2])
  const ip = parseAddress(m[1]).value
  if (!ip || port < 1 || port > 65535) return null
  return { host: ip.text, port }
}
