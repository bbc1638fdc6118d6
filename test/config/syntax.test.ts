import t from 'tap'
import { formatEndpoint, parseEndpoint, parsePortSpec, parsePublicKey } from '../../src/config/syntax.js'

t.test('endpoints', async (t) => {
  t.same(parseEndpoint('vpn.example.com:7443').value, { host: 'vpn.example.com', port: 7443 })
  t.same(parseEndpoint('[2001:db8::1]:7443').value, { host: '2001:db8::1', port: 7443 })
  t.same(parseEndpoint('203.0.113.5', 7443).value, { host: '203.0.113.5', port: 7443 })
  t.match(parseEndpoint('203.0.113.5').error, /port is missing/)
  t.match(parseEndpoint('2001:db8::1:7443').error, /brackets/)
  t.match(parseEndpoint('host:0').error, /1\.\.65535/)
  t.match(parseEndpoint('999.1.1.1:80').error, /not a valid IPv4/)
  t.match(parseEndpoint('bad_host!:80').error, /host name/)
  t.equal(formatEndpoint({ host: '2001:db8::1', port: 7443 }), '[2001:db8::1]:7443')
  t.equal(formatEndpoint({ host: 'a.example.com', port: 1 }), 'a.example.com:1')
})

t.test('port specs', async (t) => {
  t.same(parsePortSpec(22).value, { from: 22, to: 22 })
  t.same(parsePortSpec('8000-8100').value, { from: 8000, to: 8100 })
  t.same(parsePortSpec('443').value, { from: 443, to: 443 })
  t.match(parsePortSpec(0).error, /0 is not a port/)
  t.match(parsePortSpec(65536).error, /1\.\.65535/)
  t.match(parsePortSpec('9000-8000').error, /did you mean 8000-9000/)
  t.match(parsePortSpec('http').error, /not a port/)
  t.match(parsePortSpec(2.5).error, /whole number/)
})

t.test('public keys', async (t) => {
  const key = Buffer.alloc(32, 7).toString('base64')
  t.equal(parsePublicKey(key).value, key)
  const url = Buffer.alloc(32, 0xfb).toString('base64url')
  t.match(parsePublicKey(url).error, new RegExp(`standard base64: ${Buffer.alloc(32, 0xfb).toString('base64').replace(/[+/]/g, '\\$&')}`))
  t.match(parsePublicKey(key.slice(0, 43)).error, /standard base64/, 'unpadded')
  t.match(parsePublicKey('abc').error, /got 3 characters/)
  t.match(parsePublicKey(Buffer.alloc(33).toString('base64')).error, /32 bytes/)
  t.equal(parsePublicKey(42).code, 'bad-key')
})
