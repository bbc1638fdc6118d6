import t from 'tap'
import fc from 'fast-check'
import { decodeMessage, decodeWireMessage, encodeMessage, isAuthMessage, MAX_CONTROL_MESSAGE_BYTES, type HelloMessage, type WireMessage } from '../../src/mesh/messages.js'

const hello: HelloMessage = {
  type: 'hello', v: 1, name: 'office', role: 'gateway',
  overlay: { ipv4: '100.88.0.7', ipv6: 'fd00::7' }, subnets: ['192.168.1.0/24'],
}

t.test('a hello survives encode and decode', async (t) => {
  const r = decodeMessage(encodeMessage(hello))
  t.same(r, { ok: true, msg: hello })
})

t.test('unknown extra fields from newer peers are tolerated', async (t) => {
  const r = decodeMessage(Buffer.from(JSON.stringify({ ...hello, future: [1, 2] })))
  t.equal(r.ok, true)
})

t.test('malformed messages are values, not exceptions', async (t) => {
  const cases: [string, string][] = [
    ['{', 'not JSON'],
    ['[]', 'not an object'],
    ['null', 'not an object'],
    ['{"type":"nope"}', 'unknown message type'],
    [JSON.stringify({ ...hello, name: '' }), 'bad hello'],
    [JSON.stringify({ ...hello, subnets: 'x' }), 'bad hello'],
    [JSON.stringify({ ...hello, role: 'king' }), 'bad hello'],
    [JSON.stringify({ type: 'bye', v: 1 }), 'bad bye'],
  ]
  for (const [text, reason] of cases) {
    const r = decodeMessage(Buffer.from(text))
    t.equal(r.ok, false, text)
    if (!r.ok) t.match(r.reason, reason, text)
  }
})

t.test('oversized messages are refused unread', async (t) => {
  const r = decodeMessage(Buffer.alloc(MAX_CONTROL_MESSAGE_BYTES + 1, 0x20))
  t.equal(r.ok, false)
  t.throws(() => encodeMessage({ ...hello, subnets: new Array(5000).fill('10.0.0.0/24') }), RangeError)
})

t.test('random bytes never throw', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
    decodeMessage(bytes)
  }))
  fc.assert(fc.property(fc.json(), (text) => {
    decodeMessage(Buffer.from(text))
  }))
})

t.test('second factor: login, login-result and login-needed survive encode and decode', async (t) => {
  const msgs: WireMessage[] = [
    { type: 'login', v: 1, code: '012345' },
    { type: 'login-result', v: 1, ok: true, expiresAt: 1_700_000_000_000 },
    { type: 'login-result', v: 1, ok: false, reason: 'rate-limited', retryAfterMs: 30_000 },
    { type: 'login-result', v: 1, ok: false, reason: 'wrong-code' },
    { type: 'login-needed', v: 1, reason: 'expired', node: 'office' },
    { type: 'login-needed', v: 1, reason: 'no-session', node: 'office' },
  ]
  for (const msg of msgs) {
    t.same(decodeWireMessage(encodeMessage(msg)), { ok: true, msg }, msg.type)
    t.equal(isAuthMessage(msg), true)
  }
  t.equal(isAuthMessage(hello), false)
})

t.test('a login code is exactly six digits; anything else is refused by the decoder', async (t) => {
  for (const code of ['', '12345', '1234567', '12345a', ' 123456', '123456\n', '１２３４５６', 123456, null]) {
    const r = decodeWireMessage(Buffer.from(JSON.stringify({ type: 'login', v: 1, code })))
    t.equal(r.ok, false, JSON.stringify(code))
    if (!r.ok) t.match(r.reason, 'bad login', JSON.stringify(code))
  }
  t.equal(decodeWireMessage(Buffer.from(JSON.stringify({ type: 'login', v: 1 }))).ok, false, 'no code')
})

t.test('malformed second-factor answers are refused', async (t) => {
  const cases: unknown[] = [
    { type: 'login-result', v: 1 },
    { type: 'login-result', v: 1, ok: 'yes' },
    { type: 'login-result', v: 1, ok: false, reason: 'bored' },
    { type: 'login-result', v: 1, ok: false, reason: 'rate-limited', retryAfterMs: -1 },
    { type: 'login-result', v: 1, ok: true, expiresAt: 1.5 },
    { type: 'login-needed', v: 1, reason: 'expired' },
    { type: 'login-needed', v: 1, reason: 'because', node: 'office' },
    { type: 'login-needed', v: 1, reason: 'expired', node: '' },
    { type: 'login-needed', v: 1, reason: 'expired', node: 'x'.repeat(64) },
  ]
  for (const c of cases) t.equal(decodeWireMessage(Buffer.from(JSON.stringify(c))).ok, false, JSON.stringify(c))
})

t.test('decodeMessage (what Mesh dispatches today) refuses the second-factor types as a value', async (t) => {
  const r = decodeMessage(encodeMessage({ type: 'login', v: 1, code: '123456' }))
  t.same(r, { ok: false, reason: 'login is not handled by this node' })
  t.same(decodeMessage(encodeMessage(hello)), { ok: true, msg: hello }, 'the others still decode')
})
