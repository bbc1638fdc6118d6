/**
 * The private DHT on loopback: records stored and found, a rendezvous that
 * keeps only verified, newer records and pages them out, bad input refused
 * and counted, a query flood cut per source, and no datagram ever addressed
 * to anything but the nodes it was given (never a host name, never the
 * public routers).
 */
import { createSocket } from 'node:dgram'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import bencode from 'bencode'
import t from 'tap'
import { signItem, signingBuffer, verifyItem, itemTarget, encodeItem, decodeItem } from '../../src/discovery/bep44.js'
import { Dht, MEMBERS_PAGE } from '../../src/discovery/dht.js'
import { silentLogger } from '../../src/log.js'

const key = () => generateKeyPairSync('ed25519').privateKey
const salt = randomBytes(16)

async function swarm(t: { teardown(fn: () => unknown): void }, n: number, opts: { rate?: number } = {}) {
  const boot = new Dht({ address: '127.0.0.1', port: 0, bootstrap: [], rendezvous: true, ...(opts.rate ? { maxQueriesPerSecondPerSource: opts.rate } : {}) }, { log: silentLogger })
  await boot.start()
  const seeds = [{ host: '127.0.0.1', port: boot.port }]
  const nodes = [boot]
  for (let i = 1; i < n; i++) {
    const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: seeds, rendezvous: false, maxQueriesPerSecondPerSource: 1_000_000 }, { log: silentLogger })
    await d.start()
    nodes.push(d)
  }
  t.teardown(async () => {
    for (const d of nodes) await d.stop()
  })
  await new Promise((r) => setTimeout(r, 300))
  return { boot, nodes, seeds }
}

t.test('BEP 44: our signing buffer is the spec\'s, a signed item verifies, any change breaks it', async (t) => {
  t.equal(signingBuffer(Buffer.from('foobar'), 1, Buffer.from('Hello World!')).toString(), '4:salt6:foobar3:seqi1e1:v12:Hello World!', 'the example of BEP 44')
  const item = signItem(key(), salt, 7, Buffer.from('value'))
  t.ok(verifyItem(item))
  t.notOk(verifyItem({ ...item, seq: 8 }), 'another seq')
  t.notOk(verifyItem({ ...item, v: Buffer.from('valuf') }), 'another value')
  t.notOk(verifyItem({ ...item, salt: randomBytes(16) }), 'another salt')
  t.notOk(verifyItem({ ...item, k: signItem(key(), salt, 7, Buffer.from('value')).k }), 'another key')
  t.same(decodeItem(encodeItem(item)), item, 'encode / decode round trip')
  for (const junk of [Buffer.from('x'), Buffer.from('de'), Buffer.alloc(3000), Buffer.from(bencode.encode({ k: Buffer.alloc(3) }))]) t.equal(decodeItem(junk), null)
  t.equal(itemTarget(item.k, salt).length, 20)
})

t.test('a record put by one node is found by others; the newest wins', async (t) => {
  const { nodes } = await swarm(t, 8)
  const k = key()
  const a = nodes[3] as Dht
  await a.put(signItem(k, salt, 1, Buffer.from('one')))
  const found = await (nodes[6] as Dht).get(signItem(k, salt, 1, Buffer.from('one')).k, salt)
  t.equal(found?.v.toString(), 'one')
  await a.put(signItem(k, salt, 2, Buffer.from('two')))
  t.equal((await (nodes[1] as Dht).get(found!.k, salt))?.v.toString(), 'two')
  t.equal(await (nodes[2] as Dht).get(signItem(key(), salt, 1, Buffer.from('x')).k, salt), null, 'an unknown key: nothing')
})

t.test('the rendezvous keeps verified newer records, refuses forged and older ones, and pages them out', async (t) => {
  const { boot, nodes } = await swarm(t, 3)
  const keys = Array.from({ length: MEMBERS_PAGE * 2 + 1 }, key)
  for (const [i, k] of keys.entries()) await (nodes[1] as Dht).put(signItem(k, salt, 10, Buffer.from(`m${i}`)))
  const got = await (nodes[2] as Dht).members(salt)
  t.equal(got.length, keys.length, `all ${keys.length} records over several pages`)
  t.same(await (nodes[2] as Dht).members(randomBytes(16)), [], 'another salt: nothing')

  const older = signItem(keys[0]!, salt, 5, Buffer.from('older'))
  await (nodes[1] as Dht).put(older)
  const forged = { ...signItem(keys[1]!, salt, 99, Buffer.from('forged')), v: Buffer.from('forgeD') }
  await (nodes[1] as Dht).put(forged)
  const after = await (nodes[2] as Dht).members(salt)
  t.equal(after.find((i) => i.k.equals(older.k))?.v.toString(), 'm0', 'an older record does not replace the newer')
  t.equal(after.find((i) => i.k.equals(forged.k))?.v.toString(), 'm1', 'a forged record changes nothing')
  t.ok(boot.stats().staleItems >= 1, 'the older one was counted')
  t.ok(boot.stats().badItems >= 1, 'the forged one was counted')
})

t.test('a query flood from one source is cut; a well-behaved node is still answered', async (t) => {
  const { boot, nodes } = await swarm(t, 2, { rate: 20 })
  const flood = createSocket('udp4')
  t.teardown(() => flood.close())
  const q = Buffer.from(bencode.encode({ t: Buffer.from('aa'), y: 'q', q: 'ping', a: { id: randomBytes(20) } }))
  const before = boot.stats()
  const t0 = Date.now()
  for (let i = 0; i < 500; i++) flood.send(q, boot.port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 300))
  const s = boot.stats()
  const arrived = s.packetsIn - before.packetsIn
  const passed = arrived - (s.floodDropped - before.floodDropped)
  // A bucket of 2 s worth (40), refilled at 20/s while the flood lasted: the rest is dropped, whatever the kernel let arrive.
  const allowance = 40 + Math.ceil(((Date.now() - t0) / 1000) * 20) + 2
  t.ok(s.floodDropped > 0, `the flood was cut (${s.floodDropped} of ${arrived} dropped)`)
  t.ok(passed <= allowance, `no more than the bucket passed (${passed} ≤ ${allowance})`)
  // nodes[1] shares 127.0.0.1 with the flooder: its bucket refills at 20/s.
  await new Promise((r) => setTimeout(r, 1000))
  const k = key()
  await (nodes[1] as Dht).put(signItem(k, salt, 1, Buffer.from('still')))
  t.equal((await (nodes[1] as Dht).members(salt)).length, 1, 'the rendezvous still answers')
})

t.test('non-DHT datagrams go to onOther; sends go only to IP literals', async (t) => {
  const { boot } = await swarm(t, 1)
  const got: string[] = []
  boot.onOther((m) => got.push(m.toString()))
  const s = createSocket('udp4')
  t.teardown(() => s.close())
  s.send(Buffer.from('QEJ1hello'), boot.port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 100))
  t.same(got, ['QEJ1hello'])
  boot.sendRaw(Buffer.from('x'), { address: 'router.bittorrent.com', port: 6881 })
  t.equal(boot.stats().blockedSends, 1, 'a host name is never sent to')
})

t.test('with no bootstrap nodes, a DHT node sends nothing at all', async (t) => {
  const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: [], rendezvous: false }, { log: silentLogger })
  await d.start()
  t.teardown(() => d.stop())
  await d.put(signItem(key(), salt, 1, Buffer.from('alone')))
  await d.get(randomBytes(32), salt)
  await new Promise((r) => setTimeout(r, 300))
  t.equal(d.stats().packetsOut, 0, 'not one datagram: no public router is ever tried')
  t.equal(d.stats().blockedSends, 0)
})
