/**
 * BEP 44 mutable items: a value signed with an Ed25519 key, stored in the
 * DHT at sha1(k ‖ salt). The signature covers BEP 44's signing buffer, the
 * bencoding of {salt, seq, v} without its outer `d…e`, so any BEP 44 node
 * (bittorrent-dht's own `put` checks) accepts what we sign.
 *
 * Nothing here throws on bad input: `verifyItem` and `decodeItem` return
 * false / null.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import bencode from 'bencode'

/** BEP 44: a value is at most 1000 bytes bencoded; bittorrent-dht refuses 1000 and more for a byte string. */
export const MAX_ITEM_VALUE = 999
export const MAX_SALT = 64

export interface SignedItem {
  /** The signer's raw 32-byte Ed25519 public key (the node key). */
  readonly k: Buffer
  readonly salt: Buffer
  /** Integer ≥ 0; a newer item has a higher one (we use ms timestamps). */
  readonly seq: number
  /** The opaque value (a bencoded byte string on the wire). */
  readonly v: Buffer
  /** 64-byte Ed25519 signature over `signingBuffer`. */
  readonly sig: Buffer
}

/** "4:salt<n>:<salt>3:seqi<seq>e1:v<n>:<v>" (the salt part absent when empty), as BEP 44 says. */
export function signingBuffer(salt: Buffer, seq: number, v: Buffer): Buffer {
  const ref: Record<string, unknown> = { seq, v }
  if (salt.length > 0) ref.salt = salt
  const enc = Buffer.from(bencode.encode(ref))
  return enc.subarray(1, enc.length - 1)
}

export function signItem(privateKey: KeyObject, salt: Buffer, seq: number, v: Buffer): SignedItem {
  if (v.length > MAX_ITEM_VALUE) throw new RangeError(`a BEP 44 value is at most ${MAX_ITEM_VALUE} bytes, got ${v.length}`)
  if (salt.length > MAX_SALT) throw new RangeError(`a BEP 44 salt is at most ${MAX_SALT} bytes`)
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError('seq must be a non-negative integer')
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  const k = Buffer.from(String(jwk.x), 'base64url')
  const sig = sign(null, signingBuffer(salt, seq, v), privateKey)
  return Object.freeze({ k, salt: Buffer.from(salt), seq, v: Buffer.from(v), sig })
}

const keyCache = new Map<string, KeyObject>()

/** The Ed25519 public KeyObject of a raw key (cached: the same members sign again and again). */
function publicKey(k: Buffer): KeyObject | null {
  const id = k.toString('base64')
  let key = keyCache.get(id)
  if (!key) {
    try {
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.toString('base64url') }, format: 'jwk' })
    } catch {
      return null
    }
    if (keyCache.size > 10_000) keyCache.clear()
    keyCache.set(id, key)
  }
  return key
}

/** True when the item is well-formed and its signature verifies with its own key. */
export function verifyItem(item: SignedItem): boolean {
  if (!Buffer.isBuffer(item.k) || item.k.length !== 32 || !Buffer.isBuffer(item.sig) || item.sig.length !== 64) return false
  if (!Buffer.isBuffer(item.v) || item.v.length > MAX_ITEM_VALUE || !Buffer.isBuffer(item.salt) || item.salt.length > MAX_SALT) return false
  if (!Number.isSafeInteger(item.seq) || item.seq < 0) return false
  const key = publicKey(item.k)
  if (!key) return false
  try {
    return verify(null, signingBuffer(item.salt, item.seq, item.v), key, item.sig)
  } catch {
    return false
  }
}

/** The DHT target of an item: sha1(k ‖ salt). */
export function itemTarget(k: Buffer, salt: Buffer): Buffer {
  return createHash('sha1').update(k).update(salt).digest()
}

/** The bencoded dict {k, salt, seq, sig, v}: how an item travels outside the DHT (the LAN). */
export function encodeItem(item: SignedItem): Buffer {
  return Buffer.from(bencode.encode({ k: item.k, salt: item.salt, seq: item.seq, sig: item.sig, v: item.v }))
}

/** An item from `encodeItem`'s form, sizes checked; null for anything else. The signature is not checked here. */
export function decodeItem(buf: Buffer): SignedItem | null {
  if (buf.length > 2048) return null
  let d: unknown
  try {
    d = bencode.decode(buf)
  } catch {
    return null
  }
  return itemFrom(d)
}

/** An item from a decoded dict (a DHT message's fields); null when a field is missing or the wrong size. */
export function itemFrom(d: unknown): SignedItem | null {
  if (typeof d !== 'object' || d === null) return null
  const o = d as Record<string, unknown>
  const buf = (x: unknown): Buffer | null => (x instanceof Uint8Array ? Buffer.from(x) : null)
  const k = buf(o.k)
  const salt = o.salt === undefined ? Buffer.alloc(0) : buf(o.salt)
  const sig = buf(o.sig)
  const v = buf(o.v)
  const seq = o.seq
  if (!k || k.length !== 32 || !salt || salt.length > MAX_SALT || !sig || sig.length !== 64 || !v || v.length > MAX_ITEM_VALUE) return null
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return null
  return { k, salt, seq, sig, v }
}
