/**
 * The relay's two control packets, BIND and BOUND, on the tunnel's UDP port.
 *
 * Every non-QUIC packet of ours starts with the magic 00 51 45 50 ("\0QEP")
 * and a type byte. A QUIC v1 packet always has the fixed bit 0x40 set in its
 * first byte, so a first byte of 0 can never be QUIC. Types 0x01..0x0f
 * (punches) belong to the hole-punching module; this one knows 0x10 and 0x11:
 *
 *   BIND  = magic(4) 0x10 token(16) nonce(8)   29 bytes, peer → relay
 *   BOUND = magic(4) 0x11 token(16) nonce(8)   29 bytes, relay → peer, echoing token and nonce
 *
 * BOUND is exactly as long as BIND, so a relay answering a spoofed bind never
 * sends more bytes than it received. Decoding is total: anything that is not
 * exactly one of these two packets is `null`, never an exception.
 */

/** The 4 bytes every non-QUIC packet of ours starts with. Shared: copy before writing into it. */
export const RELAY_MAGIC: Buffer = Buffer.from([0x00, 0x51, 0x45, 0x50])
export const MAGIC_LEN = 4
/** Type byte of a BIND (peer → relay). */
export const BIND = 0x10
/** Type byte of a BOUND (relay → peer). */
export const BOUND = 0x11
export const TOKEN_LEN = 16
export const NONCE_LEN = 8
/** magic + type + token + nonce. */
export const BIND_LEN = MAGIC_LEN + 1 + TOKEN_LEN + NONCE_LEN
/** Same as BIND_LEN, on purpose (no amplification). */
export const BOUND_LEN = BIND_LEN

const TOKEN_AT = MAGIC_LEN + 1
const NONCE_AT = TOKEN_AT + TOKEN_LEN

export type RelayPacketType = typeof BIND | typeof BOUND

/** A decoded BIND or BOUND. `token` and `nonce` are copies: the caller may keep them. */
export interface RelayPacket {
  readonly type: RelayPacketType
  readonly token: Buffer
  readonly nonce: Buffer
}

/** True when `buf` starts with the magic (a packet of ours, of any type, not QUIC). Never throws. */
export function hasRelayMagic(buf: Uint8Array): boolean {
  return buf.length >= MAGIC_LEN && buf[0] === 0x00 && buf[1] === 0x51 && buf[2] === 0x45 && buf[3] === 0x50
}

/** The type byte of a packet of ours, or null when `buf` is not one (no magic, or no type byte). */
export function relayPacketType(buf: Uint8Array): number | null {
  return buf.length > MAGIC_LEN && hasRelayMagic(buf) ? buf[MAGIC_LEN]! : null
}

function encode(type: RelayPacketType, token: Uint8Array, nonce: Uint8Array): Buffer {
  if (token.length !== TOKEN_LEN) throw new TypeError(`a relay token is ${TOKEN_LEN} bytes, got ${token.length}`)
  if (nonce.length !== NONCE_LEN) throw new TypeError(`a relay nonce is ${NONCE_LEN} bytes, got ${nonce.length}`)
  const out = Buffer.allocUnsafe(BIND_LEN)
  RELAY_MAGIC.copy(out, 0)
  out[MAGIC_LEN] = type
  out.set(token, TOKEN_AT)
  out.set(nonce, NONCE_AT)
  return out
}

/** A fresh 29-byte BIND. Throws TypeError when token or nonce has the wrong length (a caller bug). */
export function encodeBind(token: Uint8Array, nonce: Uint8Array): Buffer {
  return encode(BIND, token, nonce)
}

/** A fresh 29-byte BOUND. Throws TypeError when token or nonce has the wrong length (a caller bug). */
export function encodeBound(token: Uint8Array, nonce: Uint8Array): Buffer {
  return encode(BOUND, token, nonce)
}

/**
 * BIND or BOUND, or null for anything else: wrong length, no magic, a type
 * that is not 0x10 or 0x11 (punches 0x01..0x0f included), not a byte array.
 */
export function decodeRelayPacket(buf: unknown): RelayPacket | null {
  if (!(buf instanceof Uint8Array) || buf.length !== BIND_LEN || !hasRelayMagic(buf)) return null
  const type = buf[MAGIC_LEN]
  if (type !== BIND && type !== BOUND) return null
  return {
    type,
    token: Buffer.from(buf.subarray(TOKEN_AT, TOKEN_AT + TOKEN_LEN)),
    nonce: Buffer.from(buf.subarray(NONCE_AT, NONCE_AT + NONCE_LEN)),
  }
}

/** A BIND's token and nonce, or null when `buf` is not exactly a BIND. */
export function decodeBind(buf: unknown): { token: Buffer; nonce: Buffer } | null {
  const p = decodeRelayPacket(buf)
  return p && p.type === BIND ? { token: p.token, nonce: p.nonce } : null
}

/** A BOUND's token and nonce, or null when `buf` is not exactly a BOUND. */
export function decodeBound(buf: unknown): { token: Buffer; nonce: Buffer } | null {
  const p = decodeRelayPacket(buf)
  return p && p.type === BOUND ? { token: p.token, nonce: p.nonce } : null
}
