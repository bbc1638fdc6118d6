/**
 * The pure parts of LAN discovery: framing, size cap, own echoes, interface
 * selection and IPv4 arrival. No sockets here (the multicast itself is in
 * test/e2e/discovery-lan.test.ts, inside namespaces).
 */
import t from 'tap'
import {
  LAN_GROUP_V4,
  LAN_GROUP_V6,
  LAN_MAGIC,
  LAN_MAX_PAYLOAD,
  LanDiscovery,
  LanPayloadInvalidError,
  autoEligible,
  decodeFrame,
  encodeFrame,
  ipv4Arrival,
  isOwnEcho,
  selectLinks,
  stripScope,
  type RawInterface,
} from '../../src/discovery/lan.js'
import { silentLogger } from '../../src/log.js'
import ipaddr from 'ipaddr.js'

t.test('the groups are scoped: IPv4 local scope, IPv6 link-local', async (t) => {
  t.ok(ipaddr.IPv4.parse(LAN_GROUP_V4).match(ipaddr.IPv4.parseCIDR('239.255.0.0/16')))
  t.match(LAN_GROUP_V6, /^ff02:/)
})

t.test('encodeFrame / decodeFrame round-trip; the payload is a view, not a copy', async (t) => {
  const payload = Buffer.from('signed record')
  const frame = encodeFrame(payload)
  t.same(frame.subarray(0, 4), Buffer.from('QEL1'))
  t.equal(frame.length, 4 + payload.length)
  const d = decodeFrame(frame)
  t.ok(d.ok)
  if (d.ok) {
    t.same(d.payload, payload)
    t.equal(d.payload.buffer, frame.buffer, 'a view on the datagram')
  }
})

t.test('decodeFrame drops what is not an announcement, as a value', async (t) => {
  t.same(decodeFrame(Buffer.alloc(0)), { ok: false, drop: 'malformed' }, 'empty')
  t.same(decodeFrame(Buffer.from('QEL')), { ok: false, drop: 'malformed' }, 'short magic')
  t.same(decodeFrame(Buffer.from('QEL1')), { ok: false, drop: 'malformed' }, 'magic and no payload')
  t.same(decodeFrame(Buffer.from('QEL2hello')), { ok: false, drop: 'malformed' }, 'other version')
  t.same(decodeFrame(Buffer.from('qel1hello')), { ok: false, drop: 'malformed' }, 'case matters')
  t.same(decodeFrame(Buffer.from('XXXXhello')), { ok: false, drop: 'malformed' })
})

t.test('decodeFrame: the size cap is on the payload, inclusive', async (t) => {
  t.ok(decodeFrame(Buffer.concat([LAN_MAGIC, Buffer.alloc(LAN_MAX_PAYLOAD)])).ok, 'exactly the cap')
  t.same(decodeFrame(Buffer.concat([LAN_MAGIC, Buffer.alloc(LAN_MAX_PAYLOAD + 1)])), { ok: false, drop: 'oversize' })
  t.same(decodeFrame(Buffer.concat([LAN_MAGIC, Buffer.alloc(11)]), 10), { ok: false, drop: 'oversize' }, 'a smaller cap')
  t.same(decodeFrame(Buffer.concat([Buffer.from('nope'), Buffer.alloc(5000)])), { ok: false, drop: 'malformed' }, 'no magic wins over size')
})

t.test('isOwnEcho compares bytes with what this node sent recently', async (t) => {
  const mine = Buffer.from('record-1')
  t.ok(isOwnEcho(Buffer.from('record-1'), [mine]))
  t.notOk(isOwnEcho(Buffer.from('record-2'), [mine]))
  t.notOk(isOwnEcho(Buffer.from('record-1'), []), 'nothing announced: nothing is ours')
  t.ok(isOwnEcho(Buffer.from('old'), [Buffer.from('old'), Buffer.from('new')]), 'the previous payload still counts')
})

t.test('stripScope', async (t) => {
  t.equal(stripScope('fe80::1%lan0'), 'fe80::1')
  t.equal(stripScope('fe80::1'), 'fe80::1')
  t.equal(stripScope('10.0.0.1'), '10.0.0.1')
})

t.test('autoEligible: up, multicast, not loopback, not point-to-point', async (t) => {
  t.ok(autoEligible(0x1043), 'an ethernet: UP|BROADCAST|RUNNING|MULTICAST')
  t.notOk(autoEligible(0x49), 'lo: UP|LOOPBACK|RUNNING')
  t.notOk(autoEligible(0x10d1), 'a TUN: UP|POINTOPOINT|RUNNING|NOARP|MULTICAST')
  t.notOk(autoEligible(0x1002), 'down')
  t.notOk(autoEligible(0x0043), 'no multicast')
  t.notOk(autoEligible(0), 'flags unknown')
})

const ETH = 0x1043
const raw: RawInterface[] = [
  { name: 'lo', index: 1, flags: 0x49, ipv4: ['127.0.0.1/8'], ipv6LinkLocal: null },
  { name: 'wlan0', index: 3, flags: ETH, ipv4: ['192.168.1.20/24'], ipv6LinkLocal: 'fe80::3' },
  { name: 'eth0', index: 2, flags: ETH, ipv4: ['10.0.0.5/24', '10.9.0.5/16'], ipv6LinkLocal: 'fe80::2' },
  { name: 'qe0', index: 4, flags: 0x10d1, ipv4: ['100.64.0.1/10'], ipv6LinkLocal: 'fe80::4' },
  { name: 'v6only', index: 5, flags: ETH, ipv4: [], ipv6LinkLocal: 'fe80::5' },
  { name: 'bare', index: 6, flags: ETH, ipv4: [], ipv6LinkLocal: null },
]

t.test('selectLinks: auto mode takes the eligible interfaces with an address, sorted', async (t) => {
  t.same(
    selectLinks(raw, []).map((l) => l.name),
    ['eth0', 'v6only', 'wlan0'],
  )
  const eth0 = selectLinks(raw, []).find((l) => l.name === 'eth0')
  t.same(eth0, { name: 'eth0', index: 2, ipv4: ['10.0.0.5/24', '10.9.0.5/16'], ipv6LinkLocal: 'fe80::2' })
})

t.test('selectLinks: named interfaces are taken as named, if present and addressed', async (t) => {
  t.same(
    selectLinks(raw, ['qe0', 'eth0', 'missing', 'bare']).map((l) => l.name),
    ['eth0', 'qe0'],
    'a point-to-point interface named explicitly is used; a missing or bare one is not',
  )
  t.same(selectLinks([], ['eth0']), [])
})

t.test('ipv4Arrival: the in-use interfaces whose subnets hold the source', async (t) => {
  const links = selectLinks(raw, [])
  t.same(ipv4Arrival('10.0.0.9', links), ['eth0'])
  t.same(ipv4Arrival('10.9.200.1', links), ['eth0'], 'a secondary subnet')
  t.same(ipv4Arrival('192.168.1.1', links), ['wlan0'])
  t.same(ipv4Arrival('172.16.0.1', links), [], 'off every subnet: unplaced')
  t.same(ipv4Arrival('100.64.0.2', links), [], 'an interface not in use does not count')
  t.same(ipv4Arrival('fe80::1', links), [], 'not IPv4')
  const twins = selectLinks(
    [
      { name: 'a', index: 1, flags: ETH, ipv4: ['192.168.1.2/24'], ipv6LinkLocal: null },
      { name: 'b', index: 2, flags: ETH, ipv4: ['192.168.1.3/24'], ipv6LinkLocal: null },
    ],
    [],
  )
  t.same(ipv4Arrival('192.168.1.9', twins), ['a', 'b'], 'two interfaces on one subnet: both')
})

t.test('LanDiscovery: the constructor only wires; announce() checks the payload', async (t) => {
  const lan = new LanDiscovery({ interfaces: ['nonexistent0'] }, { log: silentLogger, onAnnouncement: () => t.fail('nothing arrives') })
  t.same(lan.interfaces(), [], 'nothing in use before start()')
  t.same(lan.stats(), { sent: 0, received: 0, ownDropped: 0, malformed: 0, oversize: 0, sendErrors: 0, unplaced: 0 })
  t.throws(() => lan.announce(Buffer.alloc(0)), { name: 'LanPayloadInvalidError', code: 'QE_LAN_PAYLOAD_INVALID' })
  t.throws(() => lan.announce(Buffer.alloc(LAN_MAX_PAYLOAD + 1)), LanPayloadInvalidError)
  lan.announce(Buffer.alloc(LAN_MAX_PAYLOAD))
  lan.announce(null)
  t.equal(lan.stats().sent, 0, 'nothing sent before start()')
  await lan.stop() // stop() before start() is a no-op
  t.equal(new LanPayloadInvalidError().retryable, false)
})

t.test('LanDiscovery with named interfaces that do not exist opens nothing and stops cleanly', async (t) => {
  const lan = new LanDiscovery({ interfaces: ['qe-nonexistent9'], intervalMs: 20 }, { log: silentLogger, onAnnouncement: () => undefined })
  lan.announce(Buffer.from('x'))
  await lan.start()
  t.same(lan.interfaces(), [])
  await new Promise((r) => setTimeout(r, 60))
  await lan.stop()
  t.same(lan.stats(), { sent: 0, received: 0, ownDropped: 0, malformed: 0, oversize: 0, sendErrors: 0, unplaced: 0 })
})
