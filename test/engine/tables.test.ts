/**
 * The engine's tables as data, without root: the normal form setTables
 * takes and readTables returns (so that a deep-equal verifies), validation
 * that throws before anything is sent, and the addon's record formats both
 * ways. The native side of the round trip is in test/e2e/engine.test.ts.
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { Engine, EngineArgumentError, EngineStateError, normalizeTables, type EngineTables } from '../../src/engine/index.js'
import { packTables, unpackTables } from '../../src/engine/tables.js'

const key = (): string => Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString('base64')
const [k1, k2] = [key(), key()].sort() as [string, string]

const tables: EngineTables = {
  version: 7,
  allowedPeers: [k2, k1, k2],
  routes: [
    { prefix: 'fd00:0:0::1/128', peer: k2 },
    { prefix: '10.1.0.0/16', peer: k1 },
    { prefix: '10.1.0.0/16', peer: k1 },
    { prefix: '0.0.0.0/0', peer: k2 },
  ],
  uplinks: [{ name: 'wwan0', weight: 1.234, cost: 50, rateBps: 2_500_000 }, { name: 'eth0', role: 'backup', priority: 2 }],
  classes: [{ dscp: [46, 10, 46], maxPacketSize: 200 }, { ports: [[5060, 5061]], uplink: 'eth0' }, {}],
  acceptBonded: false,
  reorder: { maxDelayMs: 120, maxBytes: 65536 },
}

t.test('normal form: sorted, unique, canonical, defaults filled', (t) => {
  const n = normalizeTables(tables)
  t.same(n.allowedPeers, [k1, k2], 'keys sorted and unique')
  t.same(
    n.routes.map((r) => r.prefix),
    ['0.0.0.0/0', '10.1.0.0/16', 'fd00::1/128'],
    'routes sorted by prefix, duplicates gone, IPv6 compressed',
  )
  t.same(n.uplinks, [
    { name: 'wwan0', weight: 1.23, role: 'primary', priority: 0, cost: 50, rateBps: 2_500_000 },
    { name: 'eth0', weight: 1, role: 'backup', priority: 2, cost: 0 },
  ], 'uplinks keep their order (path index); weight in hundredths')
  t.same(n.classes, [
    { dscp: [10, 46], ports: [], maxPacketSize: 200 },
    { dscp: [], ports: [[5060, 5061]], uplink: 'eth0' },
    { dscp: [], ports: [] },
  ], 'classes keep their order (first match wins)')
  t.same(normalizeTables(n), n, 'idempotent')
  t.end()
})

t.test('records round trip: unpack(pack(normal)) is the normal form', (t) => {
  const n = normalizeTables(tables)
  const p = packTables(n)
  t.equal(p.allowed.length, 64)
  t.equal(p.routes.length, 3 * 50)
  t.equal(p.uplinks.length, 2 * 26)
  t.equal(p.classes.length, 3 * 155)
  t.same(unpackTables(p), n)
  const empty = normalizeTables({ ...tables, allowedPeers: [], routes: [], uplinks: [], classes: [] })
  t.same(unpackTables(packTables(empty)), empty, 'empty tables too')
  t.end()
})

t.test('every bad entry throws EngineArgumentError', (t) => {
  const bad: Array<[string, unknown]> = [
    ['version 0', { ...tables, version: 0 }],
    ['fractional version', { ...tables, version: 1.5 }],
    ['bad key', { ...tables, allowedPeers: ['abc'] }],
    ['bad prefix', { ...tables, routes: [{ prefix: '10.0.0.0/33', peer: k1 }] }],
    ['bad route key', { ...tables, routes: [{ prefix: '10.0.0.0/8', peer: 'x' }] }],
    ['9 uplinks', { ...tables, uplinks: Array.from({ length: 9 }, (_, i) => ({ name: `u${i}` })) }],
    ['duplicate uplink', { ...tables, uplinks: [{ name: 'a' }, { name: 'a' }] }],
    ['bad weight', { ...tables, uplinks: [{ name: 'a', weight: 0 }] }],
    ['bad class', { ...tables, classes: [{ dscp: [64] }] }],
    ['17 classes', { ...tables, classes: Array.from({ length: 17 }, () => ({})) }],
    ['acceptBonded not a boolean', { ...tables, acceptBonded: 'yes' }],
    ['reorder delay 0', { ...tables, reorder: { maxDelayMs: 0, maxBytes: 65536 } }],
    ['reorder bytes too small', { ...tables, reorder: { maxDelayMs: 10, maxBytes: 1024 } }],
    ['no reorder', { ...tables, reorder: undefined }],
    ['routes not an array', { ...tables, routes: null }],
  ]
  for (const [what, x] of bad) t.throws(() => normalizeTables(x as EngineTables), EngineArgumentError, what)
  t.end()
})

t.test('an engine that is not started validates first, then refuses', (t) => {
  const e = new Engine({ tun: { name: 'qe-x', mtu: 1400 }, identity: { privateKeyPem: '', publicKey: Buffer.alloc(32) }, listen: { address: '::', port: 0 } })
  t.throws(() => e.setTables({ ...tables, version: -1 }), EngineArgumentError, 'bad tables: argument error')
  t.throws(() => e.setTables(tables), EngineStateError, 'good tables: not running')
  t.throws(() => e.readTables(), EngineStateError)
  t.end()
})
