/**
 * The revocation list: the CA's signed list of node keys that are no longer
 * members. It spreads from node to node (any node holding a newer list passes
 * it on), so it carries its own proof: an issuer, a network and a signature
 * over `"quicether-revocations-v1\n" + JSON.stringify(body)`, keys in the
 * order of `RevocationBody` (entries: key, name, at). `seq` orders lists: a
 * node adopts a verified list only when its seq is higher than the one it
 * holds. Revocation is by node key, so it outlives every certificate of that
 * key, renewals included.
 */
import type { KeyObject } from 'node:crypto'
import { sign } from 'node:crypto'
import { QeError } from '../errors.js'
import { isCanonicalBase64, NAME_PATTERN, pkiAjv, publicKeyOf, readSmallFile, verifySignature, writeFileAtomic } from './cert.js'

export interface RevokedEntry {
  /** The revoked node key, base64 of 32 raw bytes. */
  readonly key: string
  /** The node's name when it was revoked, for people; null when unknown. */
  readonly name: string | null
  /** When it was revoked, ms since the epoch. */
  readonly at: number
}

export interface RevocationBody {
  readonly v: 1
  readonly network: string
  /** The CA public key, base64. */
  readonly issuer: string
  /** Integer ≥ 0; a newer list has a higher seq. */
  readonly seq: number
  /** Ms since the epoch. */
  readonly issuedAt: number
  /** Sorted by key (UTF-16 code unit order), one entry per key. */
  readonly revoked: readonly RevokedEntry[]
}

export interface RevocationList extends RevocationBody {
  /** Base64 of the 64-byte Ed25519 signature. */
  readonly sig: string
}

export type ParsedRevocationList = { ok: true; list: RevocationList } | { ok: false; reason: string }

export type RevocationCheck = { ok: true } | { ok: false; code: 'QE_CRL_SIGNATURE' | 'QE_CRL_ISSUER' | 'QE_CRL_NETWORK'; reason: string }

/** Largest revocation list (its pretty JSON encoding), in bytes; every valid list fits. */
export const MAX_REVOCATION_LIST_BYTES = 1024 * 1024
const CRL_DOMAIN = 'quicether-revocations-v1\n'

/** A revocation list file (or a body to sign) is malformed. */
export class RevocationListInvalidError extends QeError {
  override readonly code = 'QE_CRL_INVALID'
  constructor(message = 'the revocation list is not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'RevocationListInvalidError'
  }
}

const KEY = { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' } as const
const time = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const

const listSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'network', 'issuer', 'seq', 'issuedAt', 'revoked', 'sig'],
  properties: {
    v: { const: 1 },
    network: { type: 'string', pattern: NAME_PATTERN },
    issuer: KEY,
    seq: time,
    issuedAt: time,
    revoked: {
      type: 'array',
      maxItems: 10_000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'name', 'at'],
        properties: {
          key: KEY,
          name: { anyOf: [{ type: 'null' }, { type: 'string', pattern: NAME_PATTERN }] },
          at: time,
        },
      },
    },
    sig: { type: 'string', pattern: '^[A-Za-z0-9+/]{86}==$' },
  },
} as const

const validateListShape = pkiAjv.compile<RevocationList>(listSchema)

function bodyOf(l: RevocationBody): RevocationBody {
  return {
    v: l.v,
    network: l.network,
    issuer: l.issuer,
    seq: l.seq,
    issuedAt: l.issuedAt,
    revoked: l.revoked.map((e) => ({ key: e.key, name: e.name, at: e.at })),
  }
}

function signedBytes(l: RevocationBody): Buffer {
  return Buffer.from(CRL_DOMAIN + JSON.stringify(bodyOf(l)), 'utf8')
}

/** The `revoked.json` file: pretty JSON, fields in signing order, and a newline. */
export function encodeRevocationList(list: RevocationList): string {
  return JSON.stringify({ ...bodyOf(list), sig: list.sig }, null, 2) + '\n'
}

function problemOf(l: RevocationList): string | null {
  if (!isCanonicalBase64(l.issuer, 32)) return 'issuer is not canonical base64'
  if (!isCanonicalBase64(l.sig, 64)) return 'sig is not canonical base64'
  for (let i = 0; i < l.revoked.length; i++) {
    const key = l.revoked[i]!.key
    if (!isCanonicalBase64(key, 32)) return `revoked[${i}].key is not canonical base64`
    if (i > 0 && !(l.revoked[i - 1]!.key < key)) return 'revoked entries are not sorted by key and unique'
  }
  return null
}

/**
 * Reads a revocation list from text or from a value already parsed from JSON.
 * Checks shape and canonical forms, not the signature (`verifyRevocationList`
 * does). Never throws.
 */
export function parseRevocationList(input: string | unknown): ParsedRevocationList {
  const tooLarge = { ok: false, reason: `a revocation list is at most ${MAX_REVOCATION_LIST_BYTES} bytes` } as const
  try {
    let value: unknown = input
    if (typeof input === 'string') {
      if (Buffer.byteLength(input, 'utf8') > MAX_REVOCATION_LIST_BYTES) return tooLarge
      try {
        value = JSON.parse(input)
      } catch {
        return { ok: false, reason: 'not JSON' }
      }
    }
    if (!validateListShape(value)) return { ok: false, reason: `bad revocation list: ${pkiAjv.errorsText(validateListShape.errors, { dataVar: 'list' })}` }
    const problem = problemOf(value)
    if (problem !== null) return { ok: false, reason: `bad revocation list: ${problem}` }
    const body = bodyOf(value)
    const list: RevocationList = Object.freeze({ ...body, revoked: Object.freeze(body.revoked.map((e) => Object.freeze(e))), sig: value.sig })
    if (Buffer.byteLength(encodeRevocationList(list), 'utf8') > MAX_REVOCATION_LIST_BYTES) return tooLarge
    return { ok: true, list }
  } catch (err) {
    return { ok: false, reason: `not a revocation list (${err instanceof Error ? err.message : String(err)})` }
  }
}

/**
 * Signs a list with the CA key (fills `v` and `issuer`). Entries are sorted
 * by key; two entries for one key, or anything that would not parse back, is
 * a RevocationListInvalidError.
 */
export function signRevocationList(body: Omit<RevocationBody, 'v' | 'issuer'>, caPrivateKey: KeyObject): RevocationList {
  if (caPrivateKey.type !== 'private') throw new RevocationListInvalidError('signing needs the CA private key')
  const full: RevocationBody = {
    v: 1,
    network: body.network,
    issuer: publicKeyOf(caPrivateKey),
    seq: body.seq,
    issuedAt: body.issuedAt,
    revoked: [...body.revoked].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
  }
  const sig = sign(null, signedBytes(full), caPrivateKey).toString('base64')
  const parsed = parseRevocationList({ ...bodyOf(full), sig })
  if (!parsed.ok) throw new RevocationListInvalidError(parsed.reason.replace(/^bad revocation list: /, 'cannot sign the revocation list: '))
  return parsed.list
}

/** Checks issuer, network, then signature; reports the first failure. Expects a parsed list; never throws. */
export function verifyRevocationList(list: RevocationList, opts: { ca: string; network: string }): RevocationCheck {
  if (list.issuer !== opts.ca) return { ok: false, code: 'QE_CRL_ISSUER', reason: `issued by ${list.issuer.slice(0, 8)}…, not by this network's CA ${opts.ca.slice(0, 8)}…` }
  if (list.network !== opts.network) return { ok: false, code: 'QE_CRL_NETWORK', reason: `for network '${list.network}', not '${opts.network}'` }
  let data: Buffer
  try {
    data = signedBytes(list)
  } catch {
    return { ok: false, code: 'QE_CRL_SIGNATURE', reason: 'the list cannot be encoded' }
  }
  if (!verifySignature(data, list.sig, opts.ca)) return { ok: false, code: 'QE_CRL_SIGNATURE', reason: 'the signature does not verify' }
  return { ok: true }
}

/** The revoked node keys (base64), for `verifyCertificate`'s `revoked`. A new set each call. */
export function revokedKeys(list: RevocationList): Set<string> {
  return new Set(list.revoked.map((e) => e.key))
}

/**
 * Reads and parses the list at `path` (the signature is not checked); null
 * when the file does not exist. Throws RevocationListInvalidError otherwise.
 */
export async function loadRevocationList(path: string): Promise<RevocationList | null> {
  let text: string
  try {
    text = await readSmallFile(path, MAX_REVOCATION_LIST_BYTES, {
      missing: () => new NoFile(),
      invalid: (message, cause) => new RevocationListInvalidError(`revocation list ${path}: ${message}`, { cause }),
    })
  } catch (err) {
    if (err instanceof NoFile) return null
    throw err
  }
  const parsed = parseRevocationList(text)
  if (!parsed.ok) throw new RevocationListInvalidError(`revocation list ${path}: ${parsed.reason}`)
  return parsed.list
}

class NoFile extends Error {}

/** Writes `encodeRevocationList(list)` to `path` atomically, mode 0644; a missing parent directory is created 0700. */
export async function saveRevocationList(path: string, list: RevocationList): Promise<void> {
  await writeFileAtomic(path, encodeRevocationList(list), 0o644)
}
