/**
 * Punches: the small datagrams two peers send each other from their tunnel
 * sockets, at the same moment, when a mediator introduced them. Each opens
 * the sender's NAT mapping toward the other, and the one that arrives tells
 * the receiver where the sender's packets really come from (peer-reflexive,
 * as in ICE): that address is dialled.
 *
 *   00 51 45 50  "\0QEP" (a QUIC v1 packet always has bit 0x40 of byte 0 set)
 *   01           PUNCH
 *   token (16)   from the introduction: only the two peers and the mediator know it
 *   nonce (8)    random per punch
 *
 * A punch proves nothing but knowledge of the token; the QUIC handshake that
 * follows authenticates the peer (its key is pinned), so a punch can at most
 * make a node dial an address, never redirect a tunnel.
 */
import { randomBytes } from 'node:crypto'
import { RELAY_MAGIC as RAW_MAGIC, TOKEN_LEN as TOKEN_BYTES } from './relay-wire.js'

export { TOKEN_BYTES }
export const PUNCH = 0x01
export const PUNCH_BYTES = 4 + 1 + TOKEN_BYTES + 8

export function encodePunch(token: Buffer): Buffer {
  if (token.length !== TOKEN_BYTES) throw new RangeError(`a punch token is ${TOKEN_BYTES} bytes`)
  return Buffer.concat([RAW_MAGIC, Buffer.from([PUNCH]), token, randomBytes(8)])
}

/** The token of a well-formed punch, else null (never throws). */
export function decodePunch(data: Uint8Array): Buffer | null {
  if (data.length !== PUNCH_BYTES || data[4] !== PUNCH) return null
  for (let i = 0; i < 4; i++) if (data[i] !== RAW_MAGIC[i]) return null
  return Buffer.from(data.subarray(5, 5 + TOKEN_BYTES))
}
