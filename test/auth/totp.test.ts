import t from 'tap'
import { Secret } from 'otpauth'
import { enrol, generate, matchStep, stepAt, uriFor } from '../../src/auth/totp.js'

// RFC 6238 Appendix B, SHA1: the seed is the ASCII string "12345678901234567890".
// The RFC's codes have 8 digits; a 6-digit code is their last six (the truncation is mod 10^digits).
const SEED = Secret.fromLatin1('12345678901234567890').base32
const VECTORS: [seconds: number, code8: string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
]

t.test('RFC 6238 SHA1 test vectors, at the spec\'s times', async (t) => {
  t.equal(SEED, 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ')
  for (const [s, code8] of VECTORS) {
    const now = s * 1000
    t.equal(generate(SEED, now), code8.slice(2), `T = ${s}`)
    t.equal(matchStep(SEED, code8.slice(2), now), stepAt(now), `T = ${s} verifies at its own step`)
  }
})

t.test('the window is one step either side, no more', async (t) => {
  const now = 1111111111 * 1000
  const code = generate(SEED, now)
  t.equal(matchStep(SEED, code, now + 30_000), stepAt(now), 'a step later: still its own step')
  t.equal(matchStep(SEED, code, now - 30_000), stepAt(now), 'a step earlier')
  t.equal(matchStep(SEED, code, now + 90_000), null, 'three steps later')
  t.equal(matchStep(SEED, code, now - 90_000), null, 'three steps earlier')
})

t.test('anything but six digits never matches', async (t) => {
  const now = 59_000
  for (const bad of ['', '28708', '2870821', '94287082', ' 287082', '287082\n', 'abcdef', '２８７０８２']) {
    t.equal(matchStep(SEED, bad, now), null, JSON.stringify(bad))
  }
})

t.test('enrol makes a 20-byte secret and an otpauth URI for the peer', async (t) => {
  const a = enrol('alice')
  const b = enrol('alice')
  t.not(a.secret, b.secret, 'secrets are random')
  t.equal(Secret.fromBase32(a.secret).bytes.length, 20)
  const u = new URL(a.uri)
  t.equal(u.protocol, 'otpauth:')
  t.equal(u.host, 'totp')
  t.equal(decodeURIComponent(u.pathname), '/QuicEther:alice')
  t.equal(u.searchParams.get('secret'), a.secret)
  t.equal(u.searchParams.get('issuer'), 'QuicEther')
  t.equal(u.searchParams.get('algorithm'), 'SHA1')
  t.equal(u.searchParams.get('digits'), '6')
  t.equal(u.searchParams.get('period'), '30')
  t.equal(uriFor('alice', a.secret), a.uri)
  t.equal(matchStep(a.secret, generate(a.secret, 1e12), 1e12), stepAt(1e12))
})
