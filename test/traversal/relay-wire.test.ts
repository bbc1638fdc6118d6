/**
 * BIND / BOUND framing: exact layout, round trips, and a total decoder
 * (null for everything else, never a throw), also on random input.
 */
import t from 'tap'
import fc from 'fast-check'
import {
  BIND,
  BIND_LEN,
  BOUND,
  BOUND_LEN,
  NONCE_LEN,
  RELAY_MAGIC,
  TOKEN_LEN,
  decodeBind,
  decodeBound,
  decodeRelayPacket,
  encodeBind,
  encodeBound,
  hasRelayMagic,
  relayPacketType,
} from '../../src/traversal/relay-wire.js'

const token = Buffer.from('00112233445566778899aabbccddeeff', 'hex')
const nonce = Buffer.from('0102030405060708', 'hex')

t.test('constants: magic "\\0QEP", 29-byte BIND and BOUND', async (t) => {
  t.same(RELAY_MAGIC, Buffer.from('\0QEP', 'latin1'))
  t.equal(BIND, 0x10)
  t.equal(BOUND, 0x11)
  t.equal(TOKEN_LEN, 16)
  t.equal(NONCE_LEN, 8)
  t.equal(BIND_LEN, 29)
  t.equal(BOUND_LEN, BIND_LEN, 'the answer is never longer than the question')
})

t.test('encodeBind: the exact bytes', async (t) => {
  const b = encodeBind(token, nonce)
  t.same(b, Buffer.from('0051455010' + '00112233445566778899aabbccddeeff' + '0102030405060708', 'hex'))
  t.same(encodeBound(token, nonce), Buffer.from('0051455011' + '00112233445566778899aabbccddeeff' + '0102030405060708', 'hex'))
})

t.test('round trip; decoded fields are copies', async (t) => {
  const b = encodeBind(token, nonce)
  const d = decodeRelayPacket(b)
  t.same(d, { type: BIND, token, nonce })
  t.same(decodeBind(b), { token, nonce })
  t.equal(decodeBound(b), null, 'a BIND is not a BOUND')
  const o = encodeBound(token, nonce)
  t.same(decodeBound(o), { token, nonce })
  t.equal(decodeBind(o), null)
  b.fill(0xff)
  t.same(d?.token, token, 'not a view on the datagram')
  t.same(d?.nonce, nonce)
  t.ok(decodeBind(new Uint8Array(encodeBind(token, nonce))), 'a plain Uint8Array decodes too')
})

t.test('encode refuses wrong-length tokens and nonces (a caller bug)', async (t) => {
  t.throws(() => encodeBind(Buffer.alloc(15), nonce), TypeError)
  t.throws(() => encodeBind(token, Buffer.alloc(9)), TypeError)
  t.throws(() => encodeBound(Buffer.alloc(0), nonce), TypeError)
})

t.test('decode: null for malformed input', async (t) => {
  const b = encodeBind(token, nonce)
  t.equal(decodeRelayPacket(Buffer.alloc(0)), null, 'empty')
  t.equal(decodeRelayPacket(b.subarray(0, 28)), null, 'one byte short')
  t.equal(decodeRelayPacket(Buffer.concat([b, Buffer.alloc(1)])), null, 'one byte long')
  t.equal(decodeRelayPacket(RELAY_MAGIC), null, 'magic alone')
  for (const i of [0, 1, 2, 3]) {
    const bad = Buffer.from(b)
    bad[i]! ^= 0x01
    t.equal(decodeRelayPacket(bad), null, `magic byte ${i} wrong`)
  }
  for (const type of [0x00, 0x01, 0x05, 0x0f, 0x12, 0x40, 0xff]) {
    const other = Buffer.from(b)
    other[4] = type
    t.equal(decodeRelayPacket(other), null, `type 0x${type.toString(16)} is not ours`)
  }
  const quic = Buffer.from(b)
  quic[0] = 0xc0
  t.equal(decodeRelayPacket(quic), null, 'a QUIC long header')
  for (const x of [null, undefined, 'x'.repeat(29), 29, {}, [...b]]) t.equal(decodeRelayPacket(x), null, `not bytes: ${typeof x}`)
})

t.test('hasRelayMagic / relayPacketType', async (t) => {
  t.ok(hasRelayMagic(RELAY_MAGIC))
  t.notOk(hasRelayMagic(RELAY_MAGIC.subarray(0, 3)))
  t.equal(relayPacketType(RELAY_MAGIC), null, 'no type byte')
  t.equal(relayPacketType(Buffer.concat([RELAY_MAGIC, Buffer.from([0x03])])), 0x03, 'a punch type is reported, not decoded')
  t.equal(relayPacketType(Buffer.from([0x40, 0x51, 0x45, 0x50, 0x10])), null, 'a QUIC short header')
})

t.test('fuzz: decode never throws; whatever decodes re-encodes to the same bytes', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const d = decodeRelayPacket(bytes)
      if (d === null) return true
      const again = d.type === BIND ? encodeBind(d.token, d.nonce) : encodeBound(d.token, d.nonce)
      return again.equals(Buffer.from(bytes))
    }),
    { numRuns: 5000 },
  )
})

t.test('fuzz: a magic prefix with random type and tail decodes only as BIND/BOUND of 29 bytes', async () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 }), (type, tail) => {
      const bytes = Buffer.concat([RELAY_MAGIC, Buffer.from([type]), tail])
      const d = decodeRelayPacket(bytes)
      const expected = (type === BIND || type === BOUND) && bytes.length === BIND_LEN
      return expected ? d !== null && d.type === type : d === null
    }),
    { numRuns: 5000 },
  )
})

t.test('fuzz: round trip for any token and nonce', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.boolean(), (tok, non, bind) => {
      const b = bind ? encodeBind(tok, non) : encodeBound(tok, non)
      const d = decodeRelayPacket(b)
      return d !== null && d.type === (bind ? BIND : BOUND) && d.token.equals(tok) && d.nonce.equals(non) && b.length === 29
    }),
  )
})
