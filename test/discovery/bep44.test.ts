import t from 'tap'
import { createSocket } from 'node:dgram'
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import DHT from 'bittorrent-dht'
import krpc from 'k-rpc'
import { decodeItem, encodeItem, itemTarget, signItem, signingBuffer, verifyItem, verifyRaw, type SignedItem } from '../../src/discovery/bep44.js'
import { Dht } from '../../src/discovery/dht.js'
import { silentLogger } from '../../src/log.js'

const key = (): KeyObject => generateKeyPairSync('ed25519').privateKey

t.test('sign and verify round trip, with and without a salt', async (t) => {
  const k = key()
  for (const salt of [Buffer.from('net-1'), Buffer.alloc(0), Buffer.alloc(64, 7)]) {
    const item = signItem(k, salt, 1_733_000_000_000, Buffer.from('value'))
    t.equal(item.k.length, 32)
    t.equal(item.sig.length, 64)
    t.ok(verifyItem(item), `salt of ${salt.length} bytes`)
    t.ok(verifyRaw(item.sig, signingBuffer(item.salt, item.seq, item.v), item.k))
  }
  t.ok(verifyItem(signItem(k, Buffer.alloc(0), 0, Buffer.alloc(0))), 'seq 0, empty value')
  t.ok(verifyItem(signItem(k, Buffer.alloc(0), 5, Buffer.alloc(1000, 1))), 'a 1000-byte value')
})

t.test("the signing buffer is BEP 44's", async (t) => {
  t.equal(signingBuffer(Buffer.from('foobar'), 4, Buffer.from('Hello World!')).toString(), '4:salt6:foobar3:seqi4e1:v12:Hello World!')
  t.equal(signingBuffer(Buffer.alloc(0), 1, Buffer.from('Hello World!')).toString(), '3:seqi1e1:v12:Hello World!', 'no salt part for an empty salt')
})

t.test('each field tampered: verify is false (and never throws)', async (t) => {
  const item = signItem(key(), Buffer.from('salt'), 42, Buffer.from('payload'))
  const flip = (b: Buffer): Buffer => {
    const c = Buffer.from(b)
    c[0] = (c[0] ?? 0) ^ 1
    return c
  }
  t.notOk(verifyItem({ ...item, k: flip(item.k) }), 'k')
  t.notOk(verifyItem({ ...item, k: signItem(key(), item.salt, 42, item.v).k }), 'another key')
  t.notOk(verifyItem({ ...item, salt: flip(item.salt) }), 'salt')
  t.notOk(verifyItem({ ...item, salt: Buffer.alloc(0) }), 'salt removed')
  t.notOk(verifyItem({ ...item, seq: 43 }), 'seq')
  t.notOk(verifyItem({ ...item, v: flip(item.v) }), 'v')
  t.notOk(verifyItem({ ...item, v: Buffer.concat([item.v, Buffer.from('x')]) }), 'v longer')
  t.notOk(verifyItem({ ...item, sig: flip(item.sig) }), 'sig')
  t.notOk(verifyItem({ ...item, sig: item.sig.subarray(0, 63) }), 'short sig')
  t.notOk(verifyItem({ ...item, seq: -1 }), 'negative seq')
  t.notOk(verifyItem({ ...item, seq: 1.5 }), 'fractional seq')
  t.notOk(verifyItem({ ...item, v: Buffer.alloc(1001) }), 'oversize v')
  t.notOk(verifyItem({ ...item, salt: Buffer.alloc(65) }), 'oversize salt')
  t.notOk(verifyItem({ ...item, k: Buffer.alloc(32, 0xff) }), 'k not a curve point')
  t.notOk(verifyItem({ ...item, v: 'payload' } as unknown as SignedItem), 'v a string')
  t.notOk(verifyItem(null as unknown as SignedItem), 'null')
  t.notOk(verifyRaw(1, 2, 3))
  t.throws(() => signItem(generateKeyPairSync('x25519').privateKey, Buffer.alloc(0), 1, Buffer.alloc(1)), TypeError)
  t.throws(() => signItem(key(), Buffer.alloc(65), 1, Buffer.alloc(1)), TypeError)
  t.throws(() => signItem(key(), Buffer.alloc(0), 1, Buffer.alloc(1001)), TypeError)
})

t.test('itemTarget is sha1(k ‖ salt)', async (t) => {
  const item = signItem(key(), Buffer.from('s'), 1, Buffer.from('v'))
  t.equal(itemTarget(item.k, item.salt).length, 20)
  t.not(itemTarget(item.k, item.salt).toString('hex'), itemTarget(item.k, Buffer.alloc(0)).toString('hex'))
})

t.test('encode/decode round trip; junk decodes to null', async (t) => {
  const k = key()
  for (const [salt, v] of [
    [Buffer.from('salt'), Buffer.from('value')],
    [Buffer.alloc(0), Buffer.alloc(0)],
    [Buffer.alloc(64, 1), Buffer.alloc(1000, 2)],
  ] as const) {
    const item = signItem(k, salt, 1_733_000_000_123, v)
    const enc = encodeItem(item)
    t.match(enc.subarray(0, 4).toString(), 'd1:k')
    const back = decodeItem(enc)
    t.ok(back)
    t.same(back, item)
    t.ok(back && verifyItem(back))
  }
  const good = encodeItem(signItem(k, Buffer.from('s'), 7, Buffer.from('v')))
  const junk: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['random', randomBytes(200)],
    ['truncated', good.subarray(0, good.length - 1)],
    ['trailing byte', Buffer.concat([good, Buffer.from('e')])],
    ['leading zero in seq', Buffer.from(good.toString('latin1').replace('3:seqi7e', '3:seqi07e'), 'latin1')],
    ['negative seq', Buffer.from(good.toString('latin1').replace('3:seqi7e', '3:seqi-7e'), 'latin1')],
    ['key out of order', Buffer.from(good.toString('latin1').replace('d1:k', 'd1:z'), 'latin1')],
    ['not a dict', Buffer.from('l1:ae')],
    ['huge length', Buffer.from('d1:k99999999999999999999:')],
    ['oversize value', encodeItem({ ...signItem(k, Buffer.alloc(0), 1, Buffer.alloc(1)), v: Buffer.alloc(1001) })],
    ['short key', encodeItem({ ...signItem(k, Buffer.alloc(0), 1, Buffer.alloc(1)), k: Buffer.alloc(31) })],
  ]
  for (const [what, buf] of junk) t.equal(decodeItem(buf), null, what)
  t.equal(decodeItem('d' as unknown as Buffer), null, 'not a buffer')
  // Every single-byte truncation of a good encoding is refused.
  for (let i = 0; i < good.length; i++) if (decodeItem(good.subarray(0, i)) !== null) t.fail(`prefix of ${i} bytes decoded`)
})

t.test("interoperability: bittorrent-dht's own put and get accept our signature", async (t) => {
  // Our Dht serves; a plain bittorrent-dht client (explicit bootstrap, socket bound to loopback) talks to it.
  const server = new Dht({ address: '127.0.0.1', port: 0, bootstrap: [], rendezvous: false }, { log: silentLogger })
  await server.start()
  t.teardown(() => server.stop())
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const rpc = krpc({ socket, bootstrap: [{ host: '127.0.0.1', port: server.port }], timeout: 1000 })
  const client = new DHT({ krpc: rpc, bootstrap: [{ host: '127.0.0.1', port: server.port }], verify: verifyRaw })
  t.teardown(() => new Promise<void>((resolve) => client.destroy(() => resolve())))
  const put = (item: SignedItem): Promise<number> =>
    new Promise((resolve) => {
      const opts = { k: item.k, v: item.v, seq: item.seq, sig: item.sig, ...(item.salt.length ? { salt: item.salt } : {}) }
      client.put(opts, (err, _target, n) => resolve(err ? 0 : n))
    })
  const get = (item: SignedItem): Promise<{ v: unknown; seq?: number } | null> =>
    new Promise((resolve) => client.get(itemTarget(item.k, item.salt), { ...(item.salt.length ? { salt: item.salt } : {}), cache: false }, (err, value) => resolve(err ? null : value)))

  const k = key()
  for (const salt of [Buffer.from('quicether'), Buffer.alloc(0)]) {
    const item = signItem(k, salt, 1000 + salt.length, Buffer.from(`hello ${salt.length}`))
    t.equal(await put(item), 1, `bittorrent-dht's put of our item is stored (salt ${salt.length} bytes)`)
    const value = await get(item)
    t.ok(value, "bittorrent-dht's get accepts our signature")
    t.same(Buffer.from(value?.v as Uint8Array), item.v)
    t.equal(value?.seq, item.seq)
    const back = await server.get(item.k, item.salt)
    t.same(back, item, 'our get reads what bittorrent-dht stored')
  }
  // And the other way: a forged signature is refused by the server.
  const forged = { ...signItem(k, Buffer.from('x'), 1, Buffer.from('a')), v: Buffer.from('b') }
  t.equal(await put(forged), 0, 'a forged item is not stored')
  t.equal(server.stats().badItems, 1)
})
