/**
 * Control messages exchanged on each tunnel's control stream.
 *
 * The engine frames messages (length-prefixed) and hands each one whole; this
 * module turns them into typed values and back. A peer is authenticated (its
 * key is pinned) but not trusted: everything it sends is size-checked and
 * schema-validated here, and a message that does not decode is a value
 * (`{ ok: false, reason }`), never an exception, so nothing a peer sends can
 * crash the daemon.
 */
import { Ajv } from 'ajv'

/** Upper bound for one control message; larger ones are refused unread. */
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024
export const PROTOCOL_VERSION = 1

/**
 * The first message each side sends once a tunnel is up: who it is, where it
 * lives on the overlay and which subnets it offers. Sent again whenever any of
 * that changes (a config reload), so it is also the update message.
 */
export interface HelloMessage {
  readonly type: 'hello'
  readonly v: number
  readonly name: string
  readonly role: 'client' | 'gateway' | 'bootstrap'
  readonly overlay: { readonly ipv4: string | null; readonly ipv6: string | null }
  /** Canonical CIDRs this node advertises (its LANs; `0.0.0.0/0` only when it is an exit). */
  readonly subnets: readonly string[]
  /** It relays for members that cannot reach each other (`gateway.relay`, or a bootstrap node); absent from older peers. */
  readonly relay?: boolean
  /** Its advertised bandwidth, bits/s (`gateway.advertise-bandwidth`), for choosing a relay or a gateway; absent: not advertised. */
  readonly bandwidth?: number
  /** Priority of each of `subnets`, in order (lower is preferred among gateways advertising one prefix); absent: 100 each. */
  readonly priorities?: readonly number[]
  /** A hub (`gateway.forward-for`): prefixes it routes for the receiver (other members' addresses and subnets); absent: none. */
  readonly via?: readonly string[]
  /** The exit (a node name) this node sends its internet traffic through now; absent: none. An ingress gateway keeps client addresses toward a node that uses it as its exit. */
  readonly exit?: string
}

/** Sent before a clean stop, so the peer withdraws routes at once instead of waiting for a timeout. */
export interface ByeMessage {
  readonly type: 'bye'
  readonly v: number
  readonly reason: string
}

/**
 * Peer exchange: signed member records (BEP 44 items, fields base64) this
 * node knows. Sent to a peer when its tunnel comes up, and passed on when a
 * newer record arrives. Untrusted: each item is verified like one from the DHT.
 */
export interface RecordsMessage {
  readonly type: 'records'
  readonly v: number
  readonly items: readonly { readonly k: string; readonly salt: string; readonly seq: number; readonly sig: string; readonly v: string }[]
}

/** The newest signed revocation list this node holds (verified by the receiver against its CA). */
export interface RevocationsMessage {
  readonly type: 'revocations'
  readonly v: number
  readonly list: unknown
}

/** A renewed certificate for the receiving node, pushed by a node holding the CA (verified by the receiver). */
export interface CertMessage {
  readonly type: 'cert'
  readonly v: number
  readonly cert: unknown
}

/**
 * NAT traversal (src/traversal/). `observed`: the address this node's packets
 * reach the receiver from (its reflexive address as the sender sees it).
 */
export interface ObservedMessage {
  readonly type: 'observed'
  readonly v: number
  readonly address: string
  readonly port: number
}

/** Asks a mediator (connected to both) to introduce this node to `peer`; `candidates` are the asker's own (host:port). */
export interface IntroRequestMessage {
  readonly type: 'intro-request'
  readonly v: number
  readonly peer: string
  readonly candidates: readonly string[]
}

/** From a mediator: punch toward `peer` at `candidates` now; punches carry `token` (base64, 16 bytes). */
export interface IntroMessage {
  readonly type: 'intro'
  readonly v: number
  readonly peer: string
  readonly candidates: readonly string[]
  readonly token: string
}

/** Asks a relay for a pair of ports between this node and `peer`. */
export interface RelayRequestMessage {
  readonly type: 'relay-request'
  readonly v: number
  readonly peer: string
}

/** From a relay: bind `port` on it with `token`; the `dial` side then dials through it, the `accept` side waits. */
export interface RelayMessage {
  readonly type: 'relay'
  readonly v: number
  readonly peer: string
  readonly port: number
  readonly token: string
  readonly role: 'dial' | 'accept'
}

/** A mediator or relay could not help with `peer`. */
export interface TraversalRefusedMessage {
  readonly type: 'traversal-refused'
  readonly v: number
  readonly peer: string
  readonly what: 'intro' | 'relay'
  readonly reason: string
}

export type TraversalMessage = ObservedMessage | IntroRequestMessage | IntroMessage | RelayRequestMessage | RelayMessage | TraversalRefusedMessage

/**
 * Second factor (src/auth/). Client → a node with `auth.require-2fa`: a TOTP
 * code (exactly six ASCII digits; the decoder refuses anything else). The
 * node answers with `login-result`.
 */
export interface LoginMessage {
  readonly type: 'login'
  readonly v: number
  readonly code: string
}

/**
 * Node → client, the answer to `login`. `ok`: a session until `expiresAt`
 * (ms since the epoch). Not ok: `reason` (src/auth/types.ts `VerifyRefusal`),
 * and `retryAfterMs` when the client is locked out.
 */
export interface LoginResultMessage {
  readonly type: 'login-result'
  readonly v: number
  readonly ok: boolean
  readonly reason?: 'not-enrolled' | 'wrong-code' | 'replayed' | 'rate-limited'
  readonly expiresAt?: number
  readonly retryAfterMs?: number
}

/**
 * Node → client, when it refuses the client's traffic for want of a session
 * (`no-session`: never logged in, or revoked; `expired`). `node` is the
 * sender's name, for "login needed: quicether login --peer NODE". Rate-limited
 * by the sender (not one per refused packet).
 */
export interface LoginNeededMessage {
  readonly type: 'login-needed'
  readonly v: number
  readonly reason: 'no-session' | 'expired'
  readonly node: string
}

export type AuthMessage = LoginMessage | LoginResultMessage | LoginNeededMessage

/** What `Mesh` dispatches today (`decodeMessage`). */
export type ControlMessage = HelloMessage | ByeMessage | RecordsMessage | RevocationsMessage | CertMessage | TraversalMessage

/**
 * Every message type on the control stream. The second-factor messages are
 * decoded by `decodeWireMessage`; until the daemon routes them (issue 16),
 * `decodeMessage` refuses them as a value, so they never reach a handler
 * that does not expect them. Wiring them in: decode with `decodeWireMessage`
 * in Mesh and hand `isAuthMessage` ones to their own callback.
 */
export type WireMessage = ControlMessage | AuthMessage

export function isAuthMessage(msg: WireMessage): msg is AuthMessage {
  return msg.type === 'login' || msg.type === 'login-result' || msg.type === 'login-needed'
}

/** Most records in one message (each is up to ~1.4 KB of base64; a message is at most 64 KiB). */
export const MAX_RECORDS_PER_MESSAGE = 32

export type DecodeResult = { ok: true; msg: ControlMessage } | { ok: false; reason: string }
export type WireDecodeResult = { ok: true; msg: WireMessage } | { ok: false; reason: string }

const ajv = new Ajv({ allErrors: false, strict: true })

const helloSchema = {
  type: 'object',
  additionalProperties: true, // newer peers may add fields; they are ignored
  required: ['type', 'v', 'name', 'role', 'overlay', 'subnets'],
  properties: {
    type: { const: 'hello' },
    v: { type: 'integer', minimum: 1 },
    name: { type: 'string', minLength: 1, maxLength: 63 },
    role: { enum: ['client', 'gateway', 'bootstrap'] },
    overlay: {
      type: 'object',
      required: ['ipv4', 'ipv6'],
      properties: {
        ipv4: { type: ['string', 'null'], maxLength: 15 },
        ipv6: { type: ['string', 'null'], maxLength: 45 },
      },
    },
    subnets: { type: 'array', maxItems: 1024, items: { type: 'string', maxLength: 49 } },
    relay: { type: 'boolean' },
    bandwidth: { type: 'number', minimum: 0 },
    priorities: { type: 'array', maxItems: 1024, items: { type: 'integer', minimum: 0, maximum: 65535 } },
    via: { type: 'array', maxItems: 4096, items: { type: 'string', maxLength: 49 } },
    exit: { type: 'string', minLength: 1, maxLength: 63 },
  },
} as const

const byeSchema = {
  type: 'object',
  additionalProperties: true,
  required: ['type', 'v', 'reason'],
  properties: {
    type: { const: 'bye' },
    v: { type: 'integer', minimum: 1 },
    reason: { type: 'string', maxLength: 200 },
  },
} as const

const b64 = (max: number) => ({ type: 'string', maxLength: max, pattern: '^[A-Za-z0-9+/]*={0,2}$' }) as const
const recordsSchema = {
  type: 'object',
  additionalProperties: true,
  required: ['type', 'v', 'items'],
  properties: {
    type: { const: 'records' },
    v: { type: 'integer', minimum: 1 },
    items: {
      type: 'array',
      maxItems: MAX_RECORDS_PER_MESSAGE,
      items: {
        type: 'object',
        required: ['k', 'salt', 'seq', 'sig', 'v'],
        properties: { k: b64(44), salt: b64(88), seq: { type: 'integer', minimum: 0 }, sig: b64(88), v: b64(1336) },
      },
    },
  },
} as const
const opaqueSchema = (type: string, field: string) =>
  ({ type: 'object', additionalProperties: true, required: ['type', 'v', field], properties: { type: { const: type }, v: { type: 'integer', minimum: 1 }, [field]: { type: 'object' } } }) as const

const keySchema = b64(44)
const candidatesSchema = { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 53 } } as const
const head = (type: string) => ({ type: { const: type }, v: { type: 'integer', minimum: 1 } }) as const
const traversalSchemas = {
  observed: { type: 'object', additionalProperties: true, required: ['type', 'v', 'address', 'port'], properties: { ...head('observed'), address: { type: 'string', maxLength: 45 }, port: { type: 'integer', minimum: 1, maximum: 65535 } } },
  'intro-request': { type: 'object', additionalProperties: true, required: ['type', 'v', 'peer', 'candidates'], properties: { ...head('intro-request'), peer: keySchema, candidates: candidatesSchema } },
  intro: { type: 'object', additionalProperties: true, required: ['type', 'v', 'peer', 'candidates', 'token'], properties: { ...head('intro'), peer: keySchema, candidates: candidatesSchema, token: b64(24) } },
  'relay-request': { type: 'object', additionalProperties: true, required: ['type', 'v', 'peer'], properties: { ...head('relay-request'), peer: keySchema } },
  relay: { type: 'object', additionalProperties: true, required: ['type', 'v', 'peer', 'port', 'token', 'role'], properties: { ...head('relay'), peer: keySchema, port: { type: 'integer', minimum: 1, maximum: 65535 }, token: b64(24), role: { enum: ['dial', 'accept'] } } },
  'traversal-refused': { type: 'object', additionalProperties: true, required: ['type', 'v', 'peer', 'what', 'reason'], properties: { ...head('traversal-refused'), peer: keySchema, what: { enum: ['intro', 'relay'] }, reason: { type: 'string', maxLength: 200 } } },
} as const
const validateTraversal = new Map(Object.entries(traversalSchemas).map(([k, schema]) => [k, ajv.compile<TraversalMessage>(schema)]))

const authSchemas = {
  login: { type: 'object', additionalProperties: true, required: ['type', 'v', 'code'], properties: { ...head('login'), code: { type: 'string', pattern: '^[0-9]{6}$' } } },
  'login-result': {
    type: 'object',
    additionalProperties: true,
    required: ['type', 'v', 'ok'],
    properties: {
      ...head('login-result'),
      ok: { type: 'boolean' },
      reason: { enum: ['not-enrolled', 'wrong-code', 'replayed', 'rate-limited'] },
      expiresAt: { type: 'integer', minimum: 0 },
      retryAfterMs: { type: 'integer', minimum: 0 },
    },
  },
  'login-needed': {
    type: 'object',
    additionalProperties: true,
    required: ['type', 'v', 'reason', 'node'],
    properties: { ...head('login-needed'), reason: { enum: ['no-session', 'expired'] }, node: { type: 'string', minLength: 1, maxLength: 63 } },
  },
} as const
const validateAuth = new Map(Object.entries(authSchemas).map(([k, schema]) => [k, ajv.compile<AuthMessage>(schema)]))

const validateHello = ajv.compile<HelloMessage>(helloSchema)
const validateRecords = ajv.compile<RecordsMessage>(recordsSchema)
const validateRevocations = ajv.compile<RevocationsMessage>(opaqueSchema('revocations', 'list'))
const validateCert = ajv.compile<CertMessage>(opaqueSchema('cert', 'cert'))
const validateBye = ajv.compile<ByeMessage>(byeSchema)

export function encodeMessage(msg: WireMessage): Buffer {
  const buf = Buffer.from(JSON.stringify(msg), 'utf8')
  if (buf.length > MAX_CONTROL_MESSAGE_BYTES) throw new RangeError(`control message of ${buf.length} bytes exceeds the limit`)
  return buf
}

/** `decodeWireMessage` without the second-factor types (see `WireMessage`). */
export function decodeMessage(data: Uint8Array): DecodeResult {
  const r = decodeWireMessage(data)
  if (!r.ok) return r
  if (isAuthMessage(r.msg)) return { ok: false, reason: `${r.msg.type} is not handled by this node` }
  return { ok: true, msg: r.msg }
}

/** Any control-stream message, or why it is refused (never throws). */
export function decodeWireMessage(data: Uint8Array): WireDecodeResult {
  if (data.length > MAX_CONTROL_MESSAGE_BYTES) return { ok: false, reason: `message of ${data.length} bytes is over the limit` }
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'))
  } catch {
    return { ok: false, reason: 'not JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not an object' }
  const type = (value as { type?: unknown }).type
  if (type === 'hello') {
    return validateHello(value) ? { ok: true, msg: value } : { ok: false, reason: `bad hello: ${ajv.errorsText(validateHello.errors)}` }
  }
  if (type === 'bye') {
    return validateBye(value) ? { ok: true, msg: value } : { ok: false, reason: `bad bye: ${ajv.errorsText(validateBye.errors)}` }
  }
  if (type === 'records') {
    return validateRecords(value) ? { ok: true, msg: value } : { ok: false, reason: `bad records: ${ajv.errorsText(validateRecords.errors)}` }
  }
  if (type === 'revocations') {
    return validateRevocations(value) ? { ok: true, msg: value } : { ok: false, reason: `bad revocations: ${ajv.errorsText(validateRevocations.errors)}` }
  }
  if (type === 'cert') {
    return validateCert(value) ? { ok: true, msg: value } : { ok: false, reason: `bad cert: ${ajv.errorsText(validateCert.errors)}` }
  }
  const auth = typeof type === 'string' ? validateAuth.get(type) : undefined
  if (auth) {
    return auth(value) ? { ok: true, msg: value } : { ok: false, reason: `bad ${type}: ${ajv.errorsText(auth.errors)}` }
  }
  const traversal = typeof type === 'string' ? validateTraversal.get(type) : undefined
  if (traversal) {
    return traversal(value) ? { ok: true, msg: value } : { ok: false, reason: `bad ${type}: ${ajv.errorsText(traversal.errors)}` }
  }
  return { ok: false, reason: `unknown message type ${JSON.stringify(type)?.slice(0, 40)}` }
}
