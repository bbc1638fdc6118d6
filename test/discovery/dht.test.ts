/**
 * The private DHT on loopback only (127.0.0.1, ephemeral ports): every node
 * here is one the test starts, and every test stops its nodes in teardown.
 */
import t from 'tap'
import dgram from 'node:dgram'
import dns from 'node:dns'
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import krpc, { type Krpc, type KrpcError, type KrpcMessage } from 'k-rpc'
import { encodeItem, signItem, type SignedItem } from '../../src/discovery/bep44.js'
import { Dht, DhtInitError, DhtItemError, type DhtInit } from '../../src/discovery/dht.js'
import { MEMBERS_PAGE_BYTES, RENDEZVOUS_TTL_MS, RendezvousStore } from '../../src/discovery/rendezvous.js'
import { silentLogger } from '../../src/log.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

const key = (): KeyObject => generateKeyPairSync('ed25519').privateKey
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function node(t: Teardown, init: Partial<DhtInit> = {}): Promise<Dht> {
  const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: [], rendezvous: false, ...init }, { log: silentLogger })
  await d.start()
  t.teardown(() => d.stop())
  return d
}

/** A rendezvous seed and n-1 nodes seeded from it. */
async function network(t: Teardown, n: number, init: Partial<DhtInit> = {}): Promise<Dht[]> {
  const seed = await node(t, { rendezvous: true, ...init })
  const rest = await Promise.all(Array.from({ length: n - 1 }, () => node(t, { bootstrap: [{ host: '127.0.0.1', port: seed.port }], ...init })))
  await sleep(400) // the bootstrap lookups
  return [seed, ...rest]
}

/** A bare k-rpc client on a loopback socket, for talking to a node straight. */
async function rawClient(t: Teardown, timeoutMs = 1000): Promise<Krpc> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r))
  const rpc = krpc({ socket, bootstrap: [], timeout: timeoutMs })
  t.teardown(() => new Promise<void>((r) => rpc.destroy(() => r())))
  return rpc
}

function ask(rpc: Krpc, port: number, q: string, a: Record<string, unknown>): Promise<{ err: KrpcError | null; res: KrpcMessage | null }> {
  return new Promise((resolve) => rpc.query({ host: '127.0.0.1', port }, { q, a }, (err, res) => resolve({ err, res })))
}

/** Minimal bencode for hand-made datagrams. */
function benc(x: unknown): Buffer {
  if (Buffer.isBuffer(x)) return Buffer.concat([Buffer.from(`${x.length}:`), x])
  if (typeof x === 'string') return benc(Buffer.from(x))
  if (typeof x === 'number') return Buffer.from(`i${x}e`)
  if (Array.isArray(x)) return Buffer.concat([Buffer.from('l'), ...x.map(benc), Buffer.from('e')])
  const o = x as Record<string, unknown>
  return Buffer.concat([Buffer.from('d'), ...Object.keys(o).sort().flatMap((k) => [benc(k), benc(o[k])]), Buffer.from('e')])
}

const sum = (nodes: Dht[], f: (s: ReturnType<Dht['stats']>) => number): number => nodes.reduce((a, n) => a + f(n.stats()), 0)

t.test('init: addresses must be IPv4 literals; no name ever reaches k-rpc', async (t) => {
  const log = silentLogger
  t.throws(() => new Dht({ address: 'localhost', port: 0, bootstrap: [], rendezvous: false }, { log }), DhtInitError)
  t.throws(() => new Dht({ address: '127.0.0.1', port: 0, bootstrap: [{ host: 'router.bittorrent.com', port: 6881 }], rendezvous: false }, { log }), { code: 'QE_DHT_INIT' })
  t.throws(() => new Dht({ address: '127.0.0.1', port: 0, bootstrap: [{ host: '224.0.0.1', port: 6881 }], rendezvous: false }, { log }), DhtInitError)
  t.throws(() => new Dht({ address: '127.0.0.1', port: 0, bootstrap: [{ host: '127.0.0.1', port: 0 }], rendezvous: false }, { log }), DhtInitError)
  t.throws(() => new Dht({ address: '127.0.0.1', port: 70000, bootstrap: [], rendezvous: false }, { log }), DhtInitError)
  t.throws(() => new Dht({ address: '::1', port: 0, bootstrap: [], rendezvous: false }, { log }), DhtInitError, 'IPv4 only (compact nodes have no IPv6)')
})

t.test('12 nodes seeded from one: put on one, get on another, members from the rendezvous', async (t) => {
  const nodes = await network(t, 12)
  for (const n of nodes) t.ok(n.stats().nodes >= 1, 'every node knows someone')
  const k = key()
  const salt = Buffer.from('net-a')
  const item = signItem(k, salt, Date.now(), Buffer.from('encrypted record'))
  const r = await nodes[3]!.put(item)
  t.ok(r.stored >= 8, `stored at ${r.stored} nodes`)
  t.equal(r.announced, 1, 'announced to the one rendezvous')
  for (const i of [0, 7, 11]) t.same(await nodes[i]!.get(item.k, salt), item, `node ${i} gets it`)
  t.equal(await nodes[7]!.get(item.k, Buffer.from('other-salt')), null, 'another salt is another target')
  const members = await nodes[5]!.members(salt)
  t.same(members, [item], 'members() from the rendezvous')
  t.same(await nodes[0]!.members(salt), [item], 'the rendezvous itself sees its own items')
  t.same(await nodes[5]!.members(Buffer.from('net-b')), [], 'nothing under another salt')
  await t.rejects(nodes[1]!.put({ ...item, v: Buffer.from('tampered') }), DhtItemError)
  t.equal(sum(nodes, (s) => s.blockedSends + s.badItems + s.malformed + s.floodDropped + s.handlerErrors), 0, 'no refusals on a healthy network')
  t.ok(nodes[5]!.stats().lookups >= 0)
})

t.test('a newer seq wins; an older one is refused and counted', async (t) => {
  const nodes = await network(t, 8)
  const k = key()
  const salt = Buffer.from('seq')
  const v1 = signItem(k, salt, 1000, Buffer.from('one'))
  const v2 = signItem(k, salt, 2000, Buffer.from('two'))
  const old = signItem(k, salt, 1500, Buffer.from('old'))
  t.ok((await nodes[1]!.put(v1)).stored > 0)
  t.ok((await nodes[1]!.put(v2)).stored > 0)
  t.same(await nodes[6]!.get(v1.k, salt), v2, 'get returns the newest')
  t.same(await nodes[6]!.members(salt), [v2], 'the rendezvous holds the newest')
  const before = sum(nodes, (s) => s.staleSeq)
  // From the same node: a putter does not store its own item, so every node that holds one holds v2.
  const r = await nodes[1]!.put(old)
  t.equal(r.stored, 0, 'no node takes an older seq')
  t.equal(r.announced, 0, 'nor does the rendezvous')
  t.ok(sum(nodes, (s) => s.staleSeq) - before >= 2, 'refusals counted (DHT nodes and rendezvous)')
  t.ok(nodes[0]!.stats().staleSeq >= 1, 'the rendezvous counted it')
  t.same(await nodes[7]!.get(v1.k, salt), v2)
  // The same item announced again only refreshes it.
  t.equal((await nodes[1]!.put(v2)).announced, 1, 'a re-announce of the same item is a refresh')
})

t.test('a forged, oversize or malformed item injected into a rendezvous is refused and counted', async (t) => {
  const [seed] = await network(t, 3)
  const rpc = await rawClient(t)
  const k = key()
  const salt = Buffer.from('forge')
  const good = signItem(k, salt, 5, Buffer.from('real'))
  const a = (item: SignedItem): Record<string, unknown> => ({ id: randomBytes(20), k: item.k, salt: item.salt, seq: item.seq, sig: item.sig, v: item.v })
  const forged = await ask(rpc, seed!.port, 'qe_announce', { ...a(good), v: Buffer.from('fake') })
  t.equal(forged.err?.code, 206, 'bad signature: KRPC error 206')
  t.equal(seed!.stats().badItems, 1)
  const big = await ask(rpc, seed!.port, 'qe_announce', { ...a(good), v: Buffer.alloc(1001) })
  t.equal(big.err?.code, 205, 'oversize value: 205')
  t.equal(seed!.stats().oversize, 1)
  const bad = await ask(rpc, seed!.port, 'qe_announce', { ...a(good), k: Buffer.alloc(31) })
  t.equal(bad.err?.code, 203, 'malformed: 203')
  t.equal(seed!.stats().malformed, 1)
  t.equal(seed!.stats().rendezvousItems, 0, 'nothing kept')
  const ok = await ask(rpc, seed!.port, 'qe_announce', a(good))
  t.equal(ok.err, null, 'the real item is kept')
  const members = await ask(rpc, seed!.port, 'qe_members', { id: randomBytes(20), salt })
  const r = members.res?.r as { items: Buffer[]; next?: Buffer }
  t.same(r.items, [encodeItem(good)], 'qe_members returns the encoded item')
  t.equal(r.next, undefined, 'one page')
  // A non-rendezvous node says so at once instead of letting the query time out.
  const [, plain] = await network(t, 2)
  t.equal((await ask(rpc, plain!.port, 'qe_members', { id: randomBytes(20), salt })).err?.code, 204)
})

t.test('members() pages through a rendezvous and verifies every item', async (t) => {
  const [seed, a] = await network(t, 2)
  const salt = Buffer.from('many')
  const items = Array.from({ length: 60 }, (_, i) => signItem(key(), salt, 1 + i, randomBytes(120)))
  const rpc = await rawClient(t)
  for (const item of items) {
    const { err } = await ask(rpc, seed!.port, 'qe_announce', { id: randomBytes(20), k: item.k, salt, seq: item.seq, sig: item.sig, v: item.v })
    if (err) t.fail(err.message)
  }
  const pages: number[] = []
  let after: Buffer | undefined
  do {
    const { res } = await ask(rpc, seed!.port, 'qe_members', { id: randomBytes(20), salt, ...(after ? { after } : {}) })
    const r = res?.r as { items: Buffer[]; next?: Buffer }
    pages.push(r.items.length)
    t.ok(r.items.reduce((s, b) => s + b.length, 0) <= MEMBERS_PAGE_BYTES, 'a page stays under the byte budget')
    after = r.next
  } while (after)
  t.ok(pages.length > 1, `${pages.length} pages of ${pages.join(', ')}`)
  t.equal(pages.reduce((s, x) => s + x, 0), 60)
  const got = await a!.members(salt)
  t.equal(got.length, 60, 'members() follows every page')
  t.same(new Set(got.map((i) => i.k.toString('hex'))), new Set(items.map((i) => i.k.toString('hex'))))
})

t.test('the rendezvous store: TTL after the last announce, a cap, stable pages', async (t) => {
  const store = new RendezvousStore({ maxItems: 3 })
  const salt = Buffer.from('s')
  const [a, b, c, d] = Array.from({ length: 4 }, () => signItem(key(), salt, 10, Buffer.from('v')))
  t.equal(store.announce(a!, 0), 'stored')
  t.equal(store.announce(b!, 0), 'stored')
  t.equal(store.announce(c!, 1000), 'stored')
  t.equal(store.announce(d!, 1000), 'full', 'a new target is refused when full')
  t.equal(store.announce(a!, RENDEZVOUS_TTL_MS - 1), 'refreshed', 'the same item refreshes')
  t.equal(store.announce({ ...a!, v: Buffer.from('x') }, 5), 'bad-signature')
  t.equal(store.announce({ ...a!, seq: -1 }, 5), 'malformed')
  t.equal(store.announce(signItem(key(), Buffer.alloc(0), 1, Buffer.alloc(0)), 5), 'full')
  // b expires 2 h after its last announce; a was refreshed.
  t.equal(store.page(salt, null, RENDEZVOUS_TTL_MS + 1).items.length, 2)
  t.equal(store.announce(d!, RENDEZVOUS_TTL_MS + 1), 'stored', 'room again once b expired')
  t.equal(store.size, 3)
  t.equal(store.sweep(RENDEZVOUS_TTL_MS * 3), 3)
  t.equal(store.size, 0)
})

t.test('a query flood from one socket is cut by the bucket; a well-behaved node is still answered', async (t) => {
  const nodes = await network(t, 4, { maxQueriesPerSecondPerSource: 20 })
  const target = nodes[1]!
  const flooder = dgram.createSocket('udp4')
  await new Promise<void>((r) => flooder.bind(0, '127.0.0.1', r))
  t.teardown(() => flooder.close())
  let answers = 0
  flooder.on('message', () => answers++)
  const id = randomBytes(20)
  const t0 = Date.now()
  for (let i = 0; i < 600; i++) {
    flooder.send(benc({ t: Buffer.from([i >> 8, i & 0xff]), y: 'q', q: 'ping', a: { id } }), target.port, '127.0.0.1')
    if (i % 50 === 49) await sleep(2) // keep within the kernel's receive buffer
  }
  // Meanwhile a well-behaved client is answered: after the 600 queued before it, by a node in this
  // process, which `npm test` runs at nice 19 beside the e2e files (1 s was too short in a CI run).
  const rpc = await rawClient(t, 5000)
  const { err } = await ask(rpc, target.port, 'ping', { id: randomBytes(20) })
  t.equal(err, null, 'a well-behaved client is answered during the flood')
  await sleep(200)
  const elapsed = (Date.now() - t0) / 1000
  const s = target.stats()
  t.ok(answers <= 40 + 20 * elapsed + 2, `the flooder got ${answers} answers (burst 40 + 20/s over ${elapsed.toFixed(2)} s)`)
  t.ok(answers >= 40, 'the burst is served')
  // Pings not answered were dropped by the bucket and counted, but for those the kernel's
  // buffer lost before we read them (how many depends on the machine's load: no lower bound here).
  t.ok(s.floodDropped > 0 && s.floodDropped <= 600 - answers, `${s.floodDropped} dropped and counted`)
  const item = signItem(key(), Buffer.from('f'), 1, Buffer.from('x'))
  t.ok((await nodes[2]!.put(item)).stored >= 1, 'the DHT still works')
  t.same(await nodes[3]!.get(item.k, item.salt), item)
})

t.test('malformed and unsupported queries are dropped and counted, never thrown', async (t) => {
  const [seed, a] = await network(t, 2)
  const sock = dgram.createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r))
  t.teardown(() => sock.close())
  const id = randomBytes(20)
  const q = (query: string, args: Record<string, unknown>): Buffer => benc({ t: 'aa', y: 'q', q: query, a: { id, ...args } })
  const junk = [
    Buffer.from('d'),
    Buffer.from('de'),
    Buffer.from('d1:y1:qe'),
    randomBytes(300).fill(0x64, 0, 1),
    q('find_node', { target: 5 }),
    q('get', { target: Buffer.alloc(3) }),
    q('put', { k: 7, sig: Buffer.alloc(64), v: Buffer.from('x'), seq: 1, token: Buffer.alloc(20) }),
    q('put', { k: Buffer.alloc(32), sig: Buffer.alloc(64), v: Buffer.from('x'), seq: 1, salt: [1, 2], token: Buffer.alloc(20) }),
    q('put', { k: Buffer.alloc(32), sig: Buffer.alloc(64), v: 1, seq: 'x', token: Buffer.alloc(20) }),
    benc({ t: 'aa', y: 'q', q: 'ping', a: 'notadict' }),
    benc({ t: 'aa', y: 'q', q: 5, a: { id } }),
    benc({ t: 'aa', y: 'q', q: 'qe_members', a: { id, salt: 5 } }),
    benc({ t: 'aa', y: 'q', q: 'qe_members', a: { id, salt: Buffer.from('s'), after: 'x' } }),
    benc({ t: 'aa', y: 'q', q: 'qe_announce', a: { id, salt: [1] } }),
    benc({ t: 'aa', y: 'r', r: { id: Buffer.alloc(20), nodes: 'x' } }),
  ]
  const unsupported = [q('get_peers', { info_hash: Buffer.alloc(20) }), q('announce_peer', { info_hash: Buffer.alloc(20), port: 1, token: Buffer.alloc(2) }), q('put', { v: Buffer.from('immutable'), token: Buffer.alloc(20) }), q('sample_infohashes', { target: Buffer.alloc(20) })]
  for (const target of [seed!, a!]) {
    for (const m of [...junk, ...unsupported]) sock.send(m, target.port, '127.0.0.1')
  }
  await sleep(300)
  for (const target of [seed!, a!]) {
    const s = target.stats()
    t.ok(s.malformed >= 8, `malformed counted (${s.malformed})`)
    t.equal(s.unsupported, 4, 'unsupported counted')
    t.equal(s.handlerErrors, 0, 'nothing reached a handler that throws')
  }
  const item = signItem(key(), Buffer.from('m'), 1, Buffer.from('still fine'))
  t.ok((await a!.put(item)).stored >= 1)
  t.same(await seed!.get(item.k, item.salt), item, 'both nodes still work')
})

t.test('onOther gets non-bencoded datagrams; sendRaw goes out through the guard', async (t) => {
  const d = await node(t)
  const peer = dgram.createSocket('udp4')
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r))
  t.teardown(() => peer.close())
  const seen: string[] = []
  d.onOther((msg, from) => {
    seen.push(`${msg.toString()} ${from.port}`)
    if (msg.toString() === 'boom') throw new Error('handler bug')
  })
  const echoed = new Promise<string>((resolve) => peer.once('message', (m) => resolve(m.toString())))
  peer.send(Buffer.from('JOIN1'), d.port, '127.0.0.1')
  peer.send(Buffer.from('boom'), d.port, '127.0.0.1')
  await sleep(100)
  t.same(seen, [`JOIN1 ${peer.address().port}`, `boom ${peer.address().port}`])
  t.equal(d.stats().otherIn, 2)
  t.equal(d.stats().handlerErrors, 1, 'a throwing handler is caught and counted')
  t.equal(d.stats().packetsIn, 0, 'none of it went to the DHT')
  d.sendRaw(Buffer.from('WELCOME'), { address: '127.0.0.1', port: peer.address().port })
  t.equal(await echoed, 'WELCOME')
})

t.test('bootstrap []: no send to anyone but the nodes we start, and no DNS lookup', async (t) => {
  const sends: string[] = []
  const lookups: string[] = []
  const proto = dgram.Socket.prototype as unknown as { send: (...args: unknown[]) => void }
  const send = proto.send
  proto.send = function (this: dgram.Socket, ...args: unknown[]) {
    const strs = args.filter((x) => typeof x === 'string') as string[]
    const port = args.filter((x) => typeof x === 'number').pop()
    sends.push(`${strs[0] ?? '?'}:${String(port)}`)
    return send.apply(this, args)
  }
  const dnsMod = dns as unknown as { lookup: (...args: unknown[]) => void; promises: { lookup: (...args: unknown[]) => unknown } }
  const lookup = dnsMod.lookup
  const plookup = dnsMod.promises.lookup
  dnsMod.lookup = (...args: unknown[]) => {
    lookups.push(String(args[0]))
    return lookup(...args)
  }
  dnsMod.promises.lookup = (...args: unknown[]) => {
    lookups.push(String(args[0]))
    return plookup(...args)
  }
  t.teardown(() => {
    proto.send = send
    dnsMod.lookup = lookup
    dnsMod.promises.lookup = plookup
  })

  const alone = await node(t, { rendezvous: true })
  const item = signItem(key(), Buffer.from('solo'), 1, Buffer.from('x'))
  t.same(await alone.put(item), { stored: 0, announced: 1 }, 'alone: only its own rendezvous')
  t.equal(await alone.get(item.k, item.salt), null)
  t.equal((await alone.members(item.salt)).length, 1)
  await sleep(300)
  t.same(sends, [], 'a node with bootstrap [] and nobody to talk to sends nothing')
  t.equal(alone.stats().blockedSends, 0, 'nor tries to (k-rpc has no default routers to fall back on)')

  const b = await node(t, { bootstrap: [{ host: '127.0.0.1', port: alone.port }] })
  const c = await node(t, { bootstrap: [{ host: '127.0.0.1', port: b.port }] })
  await sleep(300)
  const item2 = signItem(key(), Buffer.from('duo'), 1, Buffer.from('y'))
  t.ok((await c.put(item2)).stored >= 1)
  t.same(await alone.get(item2.k, item2.salt), item2)
  const ours = new Set([alone, b, c].map((n) => `127.0.0.1:${n.port}`))
  t.ok(sends.length > 0)
  t.same(
    sends.filter((s) => !ours.has(s)),
    [],
    'every send went to one of our nodes',
  )

  // A name handed to the raw path is dropped by the guard, never resolved.
  alone.sendRaw(Buffer.from('x'), { address: 'router.bittorrent.com', port: 6881 })
  alone.sendRaw(Buffer.from('x'), { address: '255.255.255.255', port: 6881 })
  alone.sendRaw(Buffer.from('x'), { address: '0.0.0.0', port: 6881 })
  t.equal(alone.stats().blockedSends, 3, 'blocked and counted')
  await sleep(50)
  t.same(lookups, [], 'no DNS lookup was made')
  t.same(
    sends.filter((s) => !ours.has(s)),
    [],
  )
})
