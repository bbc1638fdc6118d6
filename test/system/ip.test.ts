import t from 'tap'
import { bytesToIp, canonicalCidr, canonicalIp, familyOf, ipToBytes, isLinkLocal, parseCidr } from '../../src/system/ip.js'
import { InvalidRecordError } from '../../src/system/errors.js'

t.test('canonical forms', async (t) => {
  t.equal(canonicalCidr('10.1.2.3/16'), '10.1.0.0/16')
  t.equal(canonicalCidr('192.168.1.77/28'), '192.168.1.64/28')
  t.equal(canonicalCidr('FD00:0080:0::5/48'), 'fd00:80::/48')
  t.equal(canonicalCidr('10.0.0.1'), '10.0.0.1/32', 'a bare address is a host prefix')
  t.equal(canonicalCidr('::/0'), '::/0')
  t.equal(canonicalIp('fd00:0:0::1'), 'fd00::1')
  t.same(parseCidr('fd00::1/64'), { family: 6, network: 'fd00::', prefixLen: 64, cidr: 'fd00::/64' })
})

t.test('bytes round-trip', async (t) => {
  for (const ip of ['10.0.0.1', '255.255.255.255', '0.0.0.0', 'fd00::1', '::', 'fe80::1:2']) {
    t.equal(bytesToIp(ipToBytes(ip)), ip)
  }
  t.equal(ipToBytes('10.1.2.3').length, 4)
  t.equal(ipToBytes('fd00::1').length, 16)
  t.throws(() => bytesToIp(Buffer.alloc(5)), InvalidRecordError)
})

t.test('strict parsing: no shorthand IPv4, no zones, no bad lengths', async (t) => {
  for (const bad of ['10', '010.1.1.1', '256.1.1.1', '1.2.3', '0x0a.0.0.1', 'fe80::1%eth0', '1.2.3.4/33', 'fd00::/129', '1.2.3.4/-1', '1.2.3.4/ 8', '']) {
    t.throws(() => canonicalCidr(bad), InvalidRecordError, JSON.stringify(bad))
  }
})

t.test('family and link-local', async (t) => {
  t.equal(familyOf('10.0.0.1'), 4)
  t.equal(familyOf('fd00::1'), 6)
  t.ok(isLinkLocal('fe80::abcd'))
  t.notOk(isLinkLocal('fd00::1'))
  t.notOk(isLinkLocal('169.254.1.1'), 'only IPv6 link-local is left to the kernel')
})
