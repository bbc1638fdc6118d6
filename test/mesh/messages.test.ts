import t from 'tap'
import fc from 'fast-check'
import { decodeMessage, encodeMessage, MAX_CONTROL_MESSAGE_BYTES, type HelloMessage } from '../../src/mesh/messages.js'

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
