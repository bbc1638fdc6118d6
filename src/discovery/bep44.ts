/**
 * BEP 44 mutable items, signed with a node's Ed25519 key (node:crypto only).
 *
 * The value `v` is opaque bytes (the caller encrypts it); on the wire it is a
 * bencoded byte string. The signature covers BEP 44's signing buffer:
 * `4:salt<len>:<salt>3:seqi<seq>e1:v<len>:<v>`, the salt part left out when
 * the salt is empty (so any BEP 44 node, bittorrent-dht included, verifies
 * it). An item is self-authenticating: whoever relays it (a DHT node, a
 * rendezvous) cannot change it, and every receiver verifies it.
 *
 * `encodeItem`/`decodeItem` are the item's own storage form, a canonical
 * bencoded dict `{k, salt, seq, sig, v}` (keys sorted, no extra keys). The
 * codec is written out here because the item is one fixed dict and a strict
 * decoder is the point: `decodeItem` never throws and checks every size.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'

/** Length of a raw Ed25519 public key. */
export const KEY_BYTES = 32
/** Length of an Ed25519 signature. */
export const SIG_BYTES = 64
/** BEP 44: a salt is at most 64 bytes. */
export const MAX_SALT_BYTES = 64
/** BEP 44: a value is at most 1000 bytes. */
export const MAX_VALUE_BYTES = 1000
/** Length of a DHT target (SHA-1). */
export const TARGET_BYTES = 20

export interface SignedItem {
  /** Raw 32-byte Ed25519 public key of the signer (the node key). */
  readonly k: Buffer
  /** At most 64 bytes; empty means no salt. */
  readonly salt: Buffer
  /** Integer ≥ 0 (QuicEther uses ms timestamps); a higher seq replaces a lower one. */
  readonly seq: number
  /** Opaque value, at most 1000 bytes; stored as a bencoded byte string. */
  readonly v: Buffer
  /** 64-byte Ed25519 signature over the BEP 44 signing buffer. */
  readonly sig: Buffer
}

/** BEP 44's signing buffer for (salt, seq, v), v being a byte string. */
export function signingBuffer(salt: Buffer, seq: number, v: Buffer): Buffer {
  const parts: Buffer[] = []
  if (salt.length > 0) parts.push(Buffer.from(`4:salt${salt.length}:`), salt)
  parts.push(Buffer.from(`3:seqi${seq}e1:v${v.length}:`), v)
  return Buffer.concat(parts)
}

/** True when the fields have BEP 44's types and sizes (the signature is not checked). */
export function isWellFormed(item: SignedItem): boolean {
  return (
    Buffer.isBuffer(item.k) &&
    item.k.length === KEY_BYTES &&
    Buffer.isBuffer(item.salt) &&
    item.salt.length <= MAX_SALT_BYTES &&
    Number.isSafeInteger(item.seq) &&
    item.seq >= 0 &&
    Buffer.isBuffer(item.v) &&
    item.v.length <= MAX_VALUE_BYTES &&
    Buffer.isBuffer(item.sig) &&
    item.sig.length === SIG_BYTES
  )
}

/**
 * Signs (salt, seq, v) with an Ed25519 private key; `k` is the key's raw
 * public half. Throws a TypeError for a key that is not Ed25519 or fields out
 * of range (a caller bug, not network input).
 */
export function signItem(privateKey: KeyObject, salt: Buffer, seq: number, v: Buffer): SignedItem {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('signItem needs an Ed25519 private key')
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  const k = Buffer.from(String(jwk.x), 'base64url')
  const item = { k, salt: Buffer.from(salt), seq, v: Buffer.from(v), sig: Buffer.alloc(SIG_BYTES) }
  if (!isWellFormed(item)) throw new TypeError(`item out of range (salt ≤ ${MAX_SALT_BYTES} B, value ≤ ${MAX_VALUE_BYTES} B, seq a safe integer ≥ 0)`)
  return Object.freeze({ ...item, sig: sign(null, signingBuffer(item.salt, seq, item.v), privateKey) })
}

/** Ed25519 public key from its raw 32 bytes; throws for a point that is not a key. */
function rawPublicKey(k: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.toString('base64url') }, format: 'jwk' })
}

/** Checks sizes and the signature. Never throws: anything malformed is false. */
export function verifyItem(item: SignedItem): boolean {
  try {
    if (!isWellFormed(item)) return false
    return verify(null, signingBuffer(item.salt, item.seq, item.v), rawPublicKey(item.k), item.sig)
  } catch {
    return false
  }
}

/**
 * The raw Ed25519 check bittorrent-dht asks for (`opts.verify(sig, msg, k)`).
 * Never throws; anything that is not three byte arrays of the right sizes is false
 * (bittorrent-dht's bencode 4 hands the message over as a Uint8Array).
 */
export function verifyRaw(sig: unknown, msg: unknown, k: unknown): boolean {
  try {
    if (!(sig instanceof Uint8Array) || sig.length !== SIG_BYTES || !(msg instanceof Uint8Array) || !(k instanceof Uint8Array) || k.length !== KEY_BYTES) return false
    return verify(null, msg, rawPublicKey(Buffer.from(k)), sig)
  } catch {
    return false
  }
}

/** The item's DHT target: sha1(k ‖ salt). */
export function itemTarget(k: Buffer, salt: Buffer): Buffer {
  return createHash('sha1').update(k).update(salt).digest()
}

function bstr(b: Buffer): Buffer[] {
  return [Buffer.from(`${b.length}:`), b]
}

/** The canonical bencoded dict {k, salt, seq, sig, v} (keys in bencode's sorted order). */
export function encodeItem(item: SignedItem): Buffer {
  return Buffer.concat([
    Buffer.from('d1:k'),
    ...bstr(item.k),
    Buffer.from('4:salt'),
    ...bstr(item.salt),
    Buffer.from(`3:seqi${item.seq}e3:sig`),
    ...bstr(item.sig),
    Buffer.from('1:v'),
    ...bstr(item.v),
    Buffer.from('e'),
  ])
}

/** Longest encoding decodeItem looks at: the fields at their limits plus framing. */
const MAX_ENCODED_BYTES = 64 + KEY_BYTES + MAX_SALT_BYTES + SIG_BYTES + MAX_VALUE_BYTES

/**
 * Reads what encodeItem wrote. Never throws: anything else (other keys, keys
 * out of order, non-canonical numbers, sizes out of range, trailing bytes) is
 * null. The signature is not checked: call verifyItem.
 */
export function decodeItem(buf: Buffer): SignedItem | null {
  if (!Buffer.isBuffer(buf) || buf.length > MAX_ENCODED_BYTES) return null
  let pos = 0
  const lit = (s: string): boolean => {
    if (buf.toString('latin1', pos, pos + s.length) !== s) return false
    pos += s.length
    return true
  }
  // A non-negative decimal without leading zeros, up to `end`; null if not canonical.
  const num = (end: number): number | null => {
    const i = buf.indexOf(end, pos)
    if (i <= pos || i - pos > 16) return null
    const s = buf.toString('latin1', pos, i)
    if (!/^(0|[1-9][0-9]*)$/.test(s)) return null
    const n = Number(s)
    if (!Number.isSafeInteger(n)) return null
    pos = i + 1
    return n
  }
  const str = (max: number): Buffer | null => {
    const len = num(0x3a) // ':'
    if (len === null || len > max || pos + len > buf.length) return null
    const out = Buffer.from(buf.subarray(pos, pos + len))
    pos += len
    return out
  }
  if (!lit('d1:k')) return null
  const k = str(KEY_BYTES)
  if (!k || !lit('4:salt')) return null
  const salt = str(MAX_SALT_BYTES)
  if (!salt || !lit('3:seqi')) return null
  const seq = num(0x65) // 'e'
  if (seq === null || !lit('3:sig')) return null
  const sig = str(SIG_BYTES)
  if (!sig || !lit('1:v')) return null
  const v = str(MAX_VALUE_BYTES)
  if (!v || !lit('e') || pos !== buf.length) return null
  const item = { k, salt, seq, v, sig }
  return isWellFormed(item) ? Object.freeze(item) : null
}
