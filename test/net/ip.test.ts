import t from 'tap'
import { parsePrefix } from '../../src/net/index.js'
import { bytesToIp, canonicalCidr, canonicalIp, familyOf, InvalidAddressError, ipToBytes, isLinkLocal, parseCidr } from '../../src/net/index.js'

t.test('canonical forms', async (t) => {
  t.equal(canonicalCidr('10.1.2.3/16'), '10.1.0.0/16')
  t.equal(canonicalCidr('192.168.1.77/28'), '192.168.1.64/28')
  t.equal(canonicalCidr('FD00:0080:0::5/48'), 'fd00:80::/48')
  t.equal(canonicalCidr('10.0.0.1'), '10.0.0.1/32', 'a bare address is a host prefix')
  t.equal(canonicalCidr('::/0'), '::/0')
  t.equal(canonicalIp('fd00:0:0::1'), 'fd00::1')
  t.match(parseCidr('fd00::1/64'), { family: 6, network: 'fd00::', prefixLen: 64, cidr: 'fd00::/64' })
})

t.test('bytes round-trip', async (t) => {
  for (const ip of ['10.0.0.1', '255.255.255.255', '0.0.0.0', 'fd00::1', '::', 'fe80::1:2']) {
    t.equal(bytesToIp(ipToBytes(ip)), ip)
  }
  t.equal(ipToBytes('10.1.2.3').length, 4)
  t.equal(ipToBytes('fd00::1').length, 16)
  t.throws(() => bytesToIp(Buffer.alloc(5)), InvalidAddressError)
})

t.test('strict parsing: no shorthand IPv4, no zones, no bad lengths', async (t) => {
  for (const bad of ['10', '010.1.1.1', '256.1.1.1', '1.2.3', '0x0a.0.0.1', 'fe80::1%eth0', '1.2.3.4/33', 'fd00::/129', '1.2.3.4/-1', '1.2.3.4/ 8', '']) {
    t.throws(() => canonicalCidr(bad), InvalidAddressError, JSON.stringify(bad))
  }
})

t.test('family and link-local', async (t) => {
  t.equal(familyOf('10.0.0.1'), 4)
  t.equal(familyOf('fd00::1'), 6)
  t.ok(isLinkLocal('fe80::abcd'))
  t.notOk(isLinkLocal('fd00::1'))
  t.notOk(isLinkLocal('169.254.1.1'), 'only IPv6 link-local is left to the kernel')
})

t.test('link-local is exactly fe80::/10', async (t) => {
  t.ok(isLinkLocal('febf:ffff::1'))
  t.notOk(isLinkLocal('fec0::1'))
  t.notOk(isLinkLocal('fe7f::1'))
})

t.test('a bad address in a checked place is a named, non-retryable error', async (t) => {
  const err = t.throws(() => canonicalIp('10.0.0')) as InvalidAddressError
  t.equal(err.code, 'QE_INVALID_ADDRESS')
  t.equal(err.retryable, false)
  t.throws(() => familyOf('fe80::1%eth0'), InvalidAddressError, 'no zone ids')
  t.throws(() => ipToBytes('1.2.3.4/8'), InvalidAddressError, 'a prefix is not an address')
})

t.test('the kernel face and the config face agree on every prefix both accept', async (t) => {
  for (const text of ['10.0.0.0/8', '0.0.0.0/0', '255.255.255.255/32', 'fd00::/8', '::/0', '2001:db8:0:0::/64', '::ffff:1.2.3.0/120']) {
    const a = parseCidr(text)
    t.equal(a.cidr, parsePrefix(text).value?.cidr, text)
    t.equal(bytesToIp(ipToBytes(a.network)), a.network, `${text}: bytes round-trip`)
  }
})
