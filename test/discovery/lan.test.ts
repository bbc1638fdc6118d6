/**
 * LAN discovery's pure parts: framing (magic, size) and which interfaces
 * are used. The multicast itself runs in test/e2e/discovery.test.ts, inside
 * namespaces (never on the host's own interfaces).
 */
import t from 'tap'
import { frame, LAN_MAGIC, MAX_LAN_PAYLOAD, pickInterfaces, unframe } from '../../src/discovery/lan.js'

t.test('frames carry the magic; anything else or too big is refused, never thrown', async (t) => {
  const p = Buffer.from('record')
  t.same(unframe(frame(p)), { ok: true, payload: p })
  t.same(unframe(Buffer.from('QEL2record')), { ok: false, reason: 'malformed' })
  t.same(unframe(Buffer.from('QE')), { ok: false, reason: 'malformed' })
  t.same(unframe(Buffer.concat([LAN_MAGIC, Buffer.alloc(MAX_LAN_PAYLOAD + 1)])), { ok: false, reason: 'oversize' })
  t.throws(() => frame(Buffer.alloc(MAX_LAN_PAYLOAD + 1)), RangeError)
})

t.test('interfaces: up, with an address, not loopback; or exactly the ones named', async (t) => {
  const v4 = (address: string, cidr: string) => ({ address, cidr, family: 'IPv4' as const, internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:01' })
  const ll = (address: string) => ({ address, cidr: `${address}/64`, family: 'IPv6' as const, internal: false, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:01', scopeid: 2 })
  const table = {
    lo: [{ address: '127.0.0.1', cidr: '127.0.0.1/8', family: 'IPv4' as const, internal: true, netmask: '255.0.0.0', mac: '00:00:00:00:00:00' }],
    eth0: [v4('192.168.1.5', '192.168.1.5/24'), ll('fe80::1')],
    wlan0: [ll('fe80::2%wlan0')],
    wg0: [{ address: '2001:db8::9', cidr: '2001:db8::9/64', family: 'IPv6' as const, internal: false, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', scopeid: 0 }],
  }
  t.same(pickInterfaces(table, []).map((i) => [i.name, i.ipv4, i.ipv6LinkLocal]), [
    ['eth0', ['192.168.1.5'], 'fe80::1'],
    ['wlan0', [], 'fe80::2'],
  ], 'loopback and an interface without IPv4 or link-local are left out')
  t.same(pickInterfaces(table, ['wlan0']).map((i) => i.name), ['wlan0'])
})
