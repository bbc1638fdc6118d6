/**
 * The TypeScript face of the engine without root: MTU arithmetic, argument
 * checks that fire before anything touches the system, route and uplink
 * packing.
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import {
  Engine,
  EngineArgumentError,
  EngineStateError,
  BOND_OVERHEAD,
  QUIC_DATAGRAM_OVERHEAD,
  packClasses,
  packRoute,
  packUplinks,
  peerKeyBytes,
  tunMtuFor,
} from '../../src/engine/index.js'

function identity(): { privateKeyPem: string; publicKey: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url'),
  }
}

t.test('tunMtuFor leaves room for IP, UDP and QUIC', (t) => {
  t.equal(QUIC_DATAGRAM_OVERHEAD, 32)
  t.equal(tunMtuFor(1500, 4), 1500 - 20 - 8 - 32)
  t.equal(tunMtuFor(1500, 6), 1500 - 40 - 8 - 32)
  t.equal(tunMtuFor(9000, 6), 9000 - 80)
  t.ok(tunMtuFor(1280, 6) < 1280, 'an IPv6 minimum path cannot carry a 1280-byte inner packet')
  t.throws(() => tunMtuFor(1000, 4), EngineArgumentError)
  t.throws(() => tunMtuFor(1500.5, 4), EngineArgumentError)
  t.throws(() => tunMtuFor(1500, 5 as 4), EngineArgumentError)
  t.equal(tunMtuFor(1500, 4, { bonded: true }), tunMtuFor(1500, 4) - BOND_OVERHEAD, 'bonded paths carry a sequence number and a hold')
  t.end()
})

t.test('traffic classes pack to DSCP mask, size, ports and uplink', (t) => {
  const buf = packClasses([{ dscp: [46, 0, 63], maxPacketSize: 256 }, { ports: [[5060, 5061], [3478, 3478]], uplink: 'wwan0' }, {}])
  t.equal(buf.length, 3 * 155)
  t.equal(buf.readBigUInt64BE(0), (1n << 46n) | 1n | (1n << 63n), 'DSCP 46, 0 and 63 as bits')
  t.equal(buf.readUInt16BE(8), 256)
  t.equal(buf[10], 0, 'no ports: any')
  t.equal(buf.subarray(11, 27).toString('utf8').replace(/\0+$/, ''), '', 'lowest latency')
  const k = buf.subarray(155)
  t.equal(k.readBigUInt64BE(0), 0n, 'no DSCP: any')
  t.equal(k.readUInt16BE(8), 0, 'no size: any')
  t.equal(k[10], 2)
  t.same([k.readUInt16BE(27), k.readUInt16BE(29), k.readUInt16BE(31), k.readUInt16BE(33)], [5060, 5061, 3478, 3478])
  t.equal(k.subarray(11, 27).toString('utf8').replace(/\0+$/, ''), 'wwan0')
  t.equal(packClasses([]).length, 0, 'no classes')
  t.throws(() => packClasses([{ dscp: [64] }]), EngineArgumentError)
  t.throws(() => packClasses([{ maxPacketSize: 0 }]), EngineArgumentError)
  t.throws(() => packClasses([{ ports: [[10, 9]] }]), EngineArgumentError, 'an empty range')
  t.throws(() => packClasses([{ ports: Array.from({ length: 33 }, (_, i): [number, number] => [i, i]) }]), EngineArgumentError)
  t.throws(() => packClasses([{ uplink: 'a-name-that-is-too-long' }]), EngineArgumentError)
  t.throws(() => packClasses(Array.from({ length: 17 }, () => ({}))), EngineArgumentError)
  t.end()
})

t.test('uplinks pack to name, weight, priority and role', (t) => {
  const buf = packUplinks([{ name: 'eth0' }, { name: 'wwan0', weight: 2.5, role: 'backup', priority: 7, cost: 200, rateBps: 1_250_000 }])
  t.equal(buf.length, 52)
  t.equal(buf.subarray(0, 16).toString('utf8').replace(/\0+$/, ''), 'eth0')
  t.equal(buf.readUInt16BE(16), 100, 'default weight 1, in hundredths')
  t.equal(buf.readUInt16BE(18), 0, 'default priority 0')
  t.equal(buf[20], 0, 'default role primary')
  t.equal(buf[21], 0, 'default cost 0')
  t.equal(buf.readUInt32BE(22), 0, 'no rate: unknown')
  const w = buf.subarray(26)
  t.equal(w.subarray(0, 16).toString('utf8').replace(/\0+$/, ''), 'wwan0')
  t.equal(w.readUInt16BE(16), 250)
  t.equal(w.readUInt16BE(18), 7)
  t.equal(w[20], 1, 'backup')
  t.equal(w[21], 200, 'cost')
  t.equal(w.readUInt32BE(22), 1_250_000, 'rate, bytes/s')
  t.throws(() => packUplinks([{ name: 'eth0', cost: 256 }]), EngineArgumentError, 'cost over 255')
  t.throws(() => packUplinks([{ name: 'eth0', rateBps: 0 }]), EngineArgumentError, 'rate 0')
  t.throws(() => packUplinks([{ name: 'eth0', rateBps: 2 ** 32 }]), EngineArgumentError, 'rate over u32')
  t.equal(packUplinks([]).length, 0, 'no uplinks: bonding off')
  t.throws(() => packUplinks([{ name: '' }]), EngineArgumentError)
  t.throws(() => packUplinks([{ name: 'a-name-that-is-too-long' }]), EngineArgumentError)
  t.throws(() => packUplinks([{ name: 'eth0' }, { name: 'eth0' }]), EngineArgumentError, 'duplicates')
  t.throws(() => packUplinks([{ name: 'eth0', weight: 0 }]), EngineArgumentError)
  t.throws(() => packUplinks([{ name: 'eth0', priority: -1 }]), EngineArgumentError)
  t.throws(() => packUplinks([{ name: 'eth0', role: 'spare' as 'backup' }]), EngineArgumentError)
  t.throws(() => packUplinks(Array.from({ length: 9 }, (_, i) => ({ name: `u${i}` }))), EngineArgumentError)
  t.end()
})

t.test('peer keys are canonical base64 of 32 bytes', (t) => {
  const key = Buffer.alloc(32, 7).toString('base64')
  t.same(peerKeyBytes(key), Buffer.alloc(32, 7))
  t.throws(() => peerKeyBytes('short'), EngineArgumentError)
  t.throws(() => peerKeyBytes(Buffer.alloc(33, 1).toString('base64')), EngineArgumentError)
  t.throws(() => peerKeyBytes(key.replace('=', '')), EngineArgumentError, 'non-canonical (unpadded) form')
  t.end()
})

t.test('routes pack to family, prefix length, address and key', (t) => {
  const key = Buffer.alloc(32, 9).toString('base64')
  const r4 = packRoute({ prefix: '10.77.0.0/16', peer: key })
  t.equal(r4.length, 50)
  t.equal(r4[0], 4)
  t.equal(r4[1], 16)
  t.same([...r4.subarray(2, 6)], [10, 77, 0, 0])
  t.same(r4.subarray(18), Buffer.alloc(32, 9))
  const r6 = packRoute({ prefix: 'fd77::/48', peer: key })
  t.equal(r6[0], 6)
  t.equal(r6[1], 48)
  t.same([...r6.subarray(2, 4)], [0xfd, 0x77])
  t.throws(() => packRoute({ prefix: '10.77.0.0', peer: key }), EngineArgumentError, 'no prefix length')
  t.throws(() => packRoute({ prefix: '10.77.0.0/33', peer: key }), EngineArgumentError)
  t.throws(() => packRoute({ prefix: 'fd77::/48', peer: 'nope' }), EngineArgumentError)
  t.end()
})

t.test('bad init is refused before the system is touched', async (t) => {
  const id = identity()
  const ok = { tun: { name: 'qetest0', mtu: 1420 }, identity: id, listen: { address: '127.0.0.1', port: 0 } }
  await t.rejects(new Engine({ ...ok, tun: { name: '', mtu: 1420 } }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, tun: { name: 'a-name-that-is-too-long', mtu: 1420 } }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, tun: { name: 'qetest0', mtu: 100 } }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, identity: { ...id, publicKey: Buffer.alloc(31) } }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, pathMtu: 1000 }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, idleTimeoutMs: 10 }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, congestion: 'vegas' as 'cubic' }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, reorder: { maxDelayMs: 0 } }).start(), EngineArgumentError)
  await t.rejects(new Engine({ ...ok, reorder: { maxBytes: 1000 } }).start(), EngineArgumentError)
})

t.test('commands before start are a state error, stop is a no-op', async (t) => {
  const e = new Engine({ tun: { name: 'qetest0', mtu: 1420 }, identity: identity(), listen: { address: '127.0.0.1', port: 0 } })
  const key = Buffer.alloc(32, 1).toString('base64')
  t.throws(() => e.setAllowedPeers([key]), EngineStateError)
  t.throws(() => e.setRoutes([]), EngineStateError)
  t.throws(() => e.sendControl(key, new Uint8Array(1)), EngineStateError)
  t.throws(() => e.stats(), EngineStateError)
  t.throws(() => e.connect({ address: 'not-an-ip', port: 1 }), EngineArgumentError)
  t.throws(() => e.connect({ address: '10.0.0.1', port: 1 }, { bond: 'fastest' as 'aggregate' }), EngineArgumentError)
  t.throws(() => e.setUplinks([{ name: 'eth0' }]), EngineStateError)
  t.equal(e.tunIfindex, 0)
  await e.stop()
})

t.test('a mismatched identity is refused by the native side', { skip: process.getuid?.() === 0 ? false : 'needs root (creates a TUN)' }, async (t) => {
  const a = identity()
  const b = identity()
  const e = new Engine({ tun: { name: 'qetest9', mtu: 1420 }, identity: { privateKeyPem: a.privateKeyPem, publicKey: b.publicKey }, listen: { address: '127.0.0.1', port: 0 } })
  await t.rejects(e.start(), { code: 'QE_ENGINE_START', nativeCode: 'QE_ENGINE_INVALID' })
})
