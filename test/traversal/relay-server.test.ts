/**
 * The relay server on loopback only: the relay binds 127.0.0.1 (one test
 * ::1), every client socket is bound to the same loopback address, and every
 * test stops its relay and closes its sockets in teardown (the process must
 * exit by itself: no handle is left open).
 */
import t from 'tap'
import dgram, { type RemoteInfo, type Socket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { silentLogger } from '../../src/log.js'
import { RelayInitError, RelayRefusedError, RelayServer, type Allocation, type RelayServerOptions } from '../../src/traversal/relay-server.js'
import { BIND_LEN, BOUND, RELAY_MAGIC, decodeBound, encodeBind, encodeBound } from '../../src/traversal/relay-wire.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

const LO = '127.0.0.1'
const A = { key: 'aa'.repeat(32), ip: LO }
const B = { key: 'bb'.repeat(32), ip: LO }
const C = { key: 'cc'.repeat(32), ip: LO }
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await sleep(5)
  }
  return true
}

function relay(t: Teardown, opts: Partial<RelayServerOptions> = {}): RelayServer {
  const r = new RelayServer({ bind: LO, log: silentLogger, ...opts })
  t.teardown(() => r.stop())
  return r
}

/** A member's tunnel socket, stand-in: collects what it receives. */
interface Client {
  readonly socket: Socket
  readonly got: Array<{ msg: Buffer; from: RemoteInfo }>
  readonly port: number
  send(msg: Buffer, port: number): void
}

async function client(t: Teardown, address = LO): Promise<Client> {
  const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4')
  const got: Client['got'] = []
  socket.on('message', (msg, from) => got.push({ msg, from }))
  await new Promise<void>((r) => socket.bind(0, address, r))
  t.teardown(() => new Promise<void>((r) => socket.close(() => r())))
  return { socket, got, port: socket.address().port, send: (msg, port) => socket.send(msg, port, address) }
}

/** Sends a BIND from `c` and waits for its BOUND; returns whether it came. */
async function bind(c: Client, port: number, token: Buffer, ms = 500): Promise<boolean> {
  const nonce = randomBytes(8)
  const before = c.got.length
  c.send(encodeBind(token, nonce), port)
  const expect = encodeBound(token, nonce)
  return until(() => c.got.slice(before).some((g) => g.msg.equals(expect) && g.from.port === port), ms)
}

/** A relay, an allocation for A and B, and both sides bound from their own client sockets. */
async function boundPair(t: Teardown, opts: Partial<RelayServerOptions> = {}): Promise<{ r: RelayServer; al: Allocation; ca: Client; cb: Client }> {
  const r = relay(t, opts)
  const al = await r.allocate(A, B)
  const ca = await client(t)
  const cb = await client(t)
  if (!(await bind(ca, al.a.port, al.a.token)) || !(await bind(cb, al.b.port, al.b.token))) throw new Error('bind failed')
  return { r, al, ca, cb }
}

/** What breaks "the relay never sends more bytes than it received" (and the counters' sums); [] when nothing does. */
function byteViolations(r: RelayServer): string[] {
  const { counters: c, allocations } = r.stats()
  const out: string[] = []
  if (c.sent.bytes > c.received.bytes) out.push(`bytes out ${c.sent.bytes} > bytes in ${c.received.bytes}`)
  if (c.forwarded.bytes !== c.forwardedAToB.bytes + c.forwardedBToA.bytes) out.push('forwarded ≠ a→b + b→a')
  if (c.sent.bytes !== c.forwarded.bytes + c.bound * BIND_LEN) out.push('sent ≠ forwarded + BOUND answers')
  for (const al of allocations) {
    if (al.aToB.bytes > al.a.received.bytes) out.push(`${al.id}: a → b ${al.aToB.bytes} > received on a ${al.a.received.bytes}`)
    if (al.bToA.bytes > al.b.received.bytes) out.push(`${al.id}: b → a ${al.bToA.bytes} > received on b ${al.b.received.bytes}`)
  }
  return out
}

t.test('options: an IP literal to bind, positive limits', async (t) => {
  t.throws(() => new RelayServer({ bind: 'localhost' }), RelayInitError)
  t.throws(() => new RelayServer({ bind: '127.0.0.1/8' }), { code: 'QE_RELAY_INIT' })
  t.throws(() => new RelayServer({ bind: LO, maxAllocations: 0 }), RelayInitError)
  t.throws(() => new RelayServer({ bind: LO, perMember: 1.5 }), RelayInitError)
  t.throws(() => new RelayServer({ bind: LO, idleMs: -1 }), RelayInitError)
  t.throws(() => new RelayServer({ bind: LO, rateBps: Number.NaN }), RelayInitError)
  const r = new RelayServer({ bind: LO })
  t.equal(r.burstBytes, 1_250_000, '100 ms of the default 12.5 MB/s')
  t.equal(new RelayServer({ bind: LO, rateBps: 1000 }).burstBytes, 64 * 1024, 'at least 64 KiB')
  await r.stop()
})

t.test('allocate: two sockets, two 16-byte tokens; bad requests refused and counted', async (t) => {
  const r = relay(t)
  const al = await r.allocate(A, B)
  t.match(al.id, /^[0-9a-f]{16}$/)
  t.not(al.a.port, al.b.port)
  t.equal(al.a.token.length, 16)
  t.equal(al.b.token.length, 16)
  t.notOk(al.a.token.equals(al.b.token))
  const s = r.stats()
  t.equal(s.counters.allocations, 1)
  t.match(s.allocations[0], { id: al.id, a: { key: A.key, ip: LO, port: al.a.port, latched: null }, b: { key: B.key, port: al.b.port, latched: null } })
  await t.rejects(r.allocate(A, A), { name: 'RelayRefusedError', code: 'QE_RELAY_SAME_MEMBER', retryable: false })
  await t.rejects(r.allocate(A, { key: A.key.toUpperCase(), ip: LO }), { code: 'QE_RELAY_SAME_MEMBER' }, 'keys compare case-insensitively')
  await t.rejects(r.allocate(A, { key: 'not hex', ip: LO }), { code: 'QE_RELAY_BAD_MEMBER' })
  await t.rejects(r.allocate(A, { key: C.key, ip: 'example.com' }), { code: 'QE_RELAY_BAD_MEMBER' })
  await t.rejects(r.allocate(A, { key: C.key, ip: '::1' }), { code: 'QE_RELAY_BAD_MEMBER' }, 'an IPv6 member cannot reach an IPv4 relay')
  t.equal(r.stats().counters.refusedAllocations, 5)
  t.equal(r.stats().counters.allocations, 1)
})

t.test('bind: wrong token, the other side\'s token, wrong IP, malformed: no BOUND, counted', async (t) => {
  const r = relay(t)
  const al = await r.allocate(A, { key: B.key, ip: '127.0.0.2' }) // b's IP is not the one our client sends from
  const ca = await client(t)
  t.notOk(await bind(ca, al.a.port, randomBytes(16), 150), 'a random token')
  t.notOk(await bind(ca, al.a.port, al.b.token, 150), 'b\'s token on a\'s port')
  t.notOk(await bind(ca, al.b.port, al.b.token, 150), 'the right token from the wrong IP')
  const long = Buffer.concat([encodeBind(al.a.token, randomBytes(8)), Buffer.alloc(1)])
  ca.send(long, al.a.port)
  ca.send(encodeBind(al.a.token, randomBytes(8)).subarray(0, 28), al.a.port)
  t.ok(await until(() => r.stats().counters.refusedBind === 5))
  await sleep(50)
  t.equal(ca.got.length, 0, 'nothing came back')
  t.equal(r.stats().allocations[0]?.a.latched, null)
  t.equal(r.stats().allocations[0]?.b.latched, null)
  t.equal(r.stats().counters.bound, 0)
  t.ok(await bind(ca, al.a.port, al.a.token), 'the right token from the right IP')
  const bound = ca.got.at(-1)!
  t.equal(bound.msg.length, BIND_LEN, 'BOUND is exactly as long as BIND')
  t.equal(bound.msg[4], BOUND)
  t.same(decodeBound(bound.msg)?.token, al.a.token)
  t.equal(r.stats().allocations[0]?.a.latched, `${LO}:${ca.port}`)
  t.same(byteViolations(r), [], 'bytes out ≤ bytes in')
})

t.test('forwarding both ways after both bound: byte-exact, from the relay ports', async (t) => {
  const { r, al, ca, cb } = await boundPair(t)
  const payloads: Buffer[] = Array.from({ length: 50 }, (_, i) => randomBytes(1 + ((i * 97) % 1400)))
  payloads.push(Buffer.concat([RELAY_MAGIC, Buffer.from([0x03]), randomBytes(20)]), encodeBound(al.a.token, randomBytes(8)), Buffer.from([0xc0]))
  const aBefore = ca.got.length
  const bBefore = cb.got.length
  for (const p of payloads) ca.send(p, al.a.port)
  t.ok(await until(() => cb.got.length - bBefore === payloads.length), 'every a → b datagram arrived')
  t.same(
    cb.got.slice(bBefore).map((g) => g.msg.toString('hex')),
    payloads.map((p) => p.toString('hex')),
    'unchanged, in order (a punch-type and a BOUND-type packet of ours are data too)',
  )
  t.ok(cb.got.slice(bBefore).every((g) => g.from.port === al.b.port && g.from.address === LO), 'b hears them from its own relay port')
  const back = payloads.map((p) => Buffer.from(p).reverse())
  for (const p of back) cb.send(p, al.b.port)
  t.ok(await until(() => ca.got.length - aBefore === back.length), 'every b → a datagram arrived')
  t.same(
    ca.got.slice(aBefore).map((g) => g.msg.toString('hex')),
    back.map((p) => p.toString('hex')),
  )
  t.ok(ca.got.slice(aBefore).every((g) => g.from.port === al.a.port))
  const bytes = payloads.reduce((s, p) => s + p.length, 0)
  const { counters: c, allocations } = r.stats()
  t.same(c.forwardedAToB, { packets: payloads.length, bytes })
  t.same(c.forwardedBToA, { packets: payloads.length, bytes })
  t.same(c.forwarded, { packets: 2 * payloads.length, bytes: 2 * bytes })
  t.same(allocations[0]?.aToB, { packets: payloads.length, bytes })
  t.same(allocations[0]?.bToA, { packets: payloads.length, bytes })
  t.equal(c.refusedSource + c.early + c.rateDropped + c.queueDropped + c.refusedBind, 0, 'nothing dropped')
  t.same(byteViolations(r), [], 'bytes out ≤ bytes in')
})

t.test('before both sides bind, nothing is forwarded (early)', async (t) => {
  const r = relay(t)
  const al = await r.allocate(A, B)
  const ca = await client(t)
  const cb = await client(t)
  ca.send(Buffer.from('too soon, nobody bound'), al.a.port)
  t.ok(await until(() => r.stats().counters.early === 1), 'from a member\'s IP before its side bound')
  t.ok(await bind(ca, al.a.port, al.a.token))
  ca.send(Buffer.from('a bound, b not yet'), al.a.port)
  cb.send(Buffer.from('b not bound'), al.b.port)
  t.ok(await until(() => r.stats().counters.early === 3))
  await sleep(50)
  t.equal(cb.got.length, 0, 'b got nothing')
  t.equal(ca.got.length, 1, 'a got only its BOUND')
  t.equal(r.stats().counters.forwarded.packets, 0)
  t.ok(await bind(cb, al.b.port, al.b.token))
  ca.send(Buffer.from('now'), al.a.port)
  t.ok(await until(() => cb.got.some((g) => g.msg.toString() === 'now')), 'forwarded once both are bound')
  t.same(byteViolations(r), [], 'bytes out ≤ bytes in')
})

t.test('a third socket sending to either port is never forwarded, and counted', async (t) => {
  const { r, al, ca, cb } = await boundPair(t)
  const x = await client(t)
  const aBefore = ca.got.length
  const bBefore = cb.got.length
  for (let i = 0; i < 20; i++) {
    x.send(Buffer.from(`intruder ${i}`), al.a.port)
    x.send(Buffer.from(`intruder ${i}`), al.b.port)
  }
  x.send(encodeBind(randomBytes(16), randomBytes(8)), al.a.port) // a guessed token
  t.ok(await until(() => r.stats().counters.refusedSource === 40 && r.stats().counters.refusedBind === 1))
  await sleep(50)
  t.equal(ca.got.length, aBefore, 'a got nothing')
  t.equal(cb.got.length, bBefore, 'b got nothing')
  t.equal(x.got.length, 0, 'the intruder got nothing back')
  t.equal(r.stats().counters.forwarded.packets, 0)
  t.equal(r.stats().allocations[0]?.a.latched, `${LO}:${ca.port}`, 'the latch did not move')
  // b sending to a's port (not its own) is another source too
  cb.send(Buffer.from('wrong port'), al.a.port)
  t.ok(await until(() => r.stats().counters.refusedSource === 41))
  t.same(byteViolations(r), [], 'bytes out ≤ bytes in')
})

t.test('rate limit: a burst beyond the bucket is cut, the excess counted', async (t) => {
  const rateBps = 100_000
  const { r, al, ca, cb } = await boundPair(t, { rateBps })
  const burst = r.burstBytes
  t.equal(burst, 64 * 1024)
  const size = 1000
  const n = 300 // 300 kB at once: more than four buckets
  const start = Date.now()
  for (let i = 0; i < n; i++) ca.send(Buffer.alloc(size, i & 0xff), al.a.port)
  t.ok(await until(() => r.stats().allocations[0]!.a.received.packets >= n + 1), 'the relay saw the whole burst')
  const elapsed = (Date.now() - start) / 1000
  const c = r.stats().counters
  t.ok(c.forwardedAToB.bytes > 0, `forwarded ${c.forwardedAToB.bytes} bytes`)
  t.ok(c.forwardedAToB.bytes <= burst + rateBps * elapsed, `forwarded ${c.forwardedAToB.bytes} ≤ bucket ${burst} + ${rateBps} B/s × ${elapsed.toFixed(3)} s`)
  t.ok(c.rateDropped > 0, `${c.rateDropped} dropped`)
  t.equal(c.forwardedAToB.packets + c.rateDropped, n, 'every datagram was either forwarded or rate-dropped')
  await until(() => cb.got.length - 1 >= c.forwardedAToB.packets, 500)
  t.ok(cb.got.length - 1 <= c.forwardedAToB.packets, 'b received no more than was forwarded')
  // the other direction has its own bucket
  cb.send(Buffer.alloc(size), al.b.port)
  t.ok(await until(() => r.stats().counters.forwardedBToA.packets === 1), 'b → a is not limited by a → b')
  // and the bucket refills
  await sleep(200)
  ca.send(Buffer.alloc(size), al.a.port)
  t.ok(await until(() => r.stats().counters.forwardedAToB.packets === c.forwardedAToB.packets + 1), 'refilled after a pause')
  t.same(byteViolations(r), [], 'bytes out ≤ bytes in')
})

t.test('limits: perMember and maxAllocations refuse, counted; closing frees a place', async (t) => {
  const r = relay(t, { perMember: 2, maxAllocations: 3 })
  const member = (i: number): { key: string; ip: string } => ({ key: i.toString(16).padStart(2, '0').repeat(32), ip: LO })
  const ab = await r.allocate(member(1), member(2))
  await r.allocate(member(1), member(3))
  await t.rejects(r.allocate(member(1), member(4)), { name: 'RelayRefusedError', code: 'QE_RELAY_MEMBER_LIMIT', retryable: true })
  await t.rejects(r.allocate(member(5), member(1)), { code: 'QE_RELAY_MEMBER_LIMIT' }, 'as b too')
  await r.allocate(member(4), member(5))
  await t.rejects(r.allocate(member(6), member(7)), { code: 'QE_RELAY_FULL', retryable: true })
  t.equal(r.stats().counters.refusedAllocations, 3)
  t.equal(r.stats().counters.allocations, 3)
  t.ok(r.close(ab.id))
  t.notOk(r.close(ab.id), 'already closed')
  t.notOk(r.close('nope'))
  const sixSeven = await r.allocate(member(6), member(7))
  await t.rejects(r.allocate(member(1), member(8)), { code: 'QE_RELAY_FULL' }, 'full again')
  r.close(sixSeven.id)
  await r.allocate(member(1), member(8))
  t.equal(r.stats().counters.allocations, 3)
  t.equal(r.stats().counters.refusedAllocations, 4)
  t.type(new RelayRefusedError(), RelayRefusedError)
})

t.test('allocating the same pair again replaces the old allocation (either order)', async (t) => {
  const r = relay(t, { perMember: 1 })
  const first = await r.allocate(A, B)
  const ca = await client(t)
  t.ok(await bind(ca, first.a.port, first.a.token))
  const second = await r.allocate(B, A)
  t.not(second.id, first.id)
  t.notOk(second.b.token.equals(first.a.token))
  t.same(r.stats().allocations.map((a) => a.id), [second.id], 'only the new one is open')
  t.equal(r.stats().counters.allocationsClosed, 1)
  t.notOk(await bind(ca, first.a.port, first.a.token, 150), 'the old port is closed')
  t.ok(await bind(ca, second.b.port, second.b.token), 'A is b now')
})

t.test('idle allocations close; one kept busy by binds stays (the relay\'s clock is the test\'s)', async (t) => {
  let now = 1_000_000
  const r = relay(t, { idleMs: 40, now: () => now }) // the sweep ticks every 10 ms of real time and judges by `now`
  const idle = await r.allocate(A, B)
  const busy = await r.allocate(A, C)
  const ca = await client(t)
  now += 30
  t.ok(await bind(ca, busy.a.port, busy.a.token), 'a bind counts as activity')
  now += 20 // idle: 50 without a packet; busy: 20 since its bind
  t.ok(await until(() => r.stats().counters.idleClosed === 1), 'the idle one is closed by the sweep')
  await sleep(30)
  const s = r.stats()
  t.same(s.allocations.map((a) => a.id), [busy.id], 'the busy one stays')
  t.equal(s.allocations[0]!.lastActiveAt, 1_000_030)
  t.equal(s.allocations[0]!.createdAt, 1_000_000)
  t.notOk(await bind(ca, idle.a.port, idle.a.token, 100), 'the idle one\'s socket is closed')
  now += 40
  t.ok(await until(() => r.stats().counters.allocations === 0), 'the busy one goes idle too once the binds stop')
  t.equal(r.stats().counters.idleClosed, 2)
})

t.test('rebinding: a new valid bind from another port of the same IP moves the latch', async (t) => {
  const { r, al, ca, cb } = await boundPair(t)
  const ca2 = await client(t) // a's tunnel after a NAT rebinding: same IP, new port
  t.ok(await bind(ca2, al.a.port, al.a.token))
  t.equal(r.stats().allocations[0]?.a.latched, `${LO}:${ca2.port}`)
  const aBefore = ca.got.length
  cb.send(Buffer.from('to the new port'), al.b.port)
  t.ok(await until(() => ca2.got.some((g) => g.msg.toString() === 'to the new port')), 'b → a goes to the new latch')
  ca.send(Buffer.from('from the old port'), al.a.port)
  ca2.send(Buffer.from('from the new port'), al.a.port)
  t.ok(await until(() => cb.got.some((g) => g.msg.toString() === 'from the new port')))
  t.ok(await until(() => r.stats().counters.refusedSource === 1), 'the old port is now another source')
  await sleep(30)
  t.notOk(cb.got.some((g) => g.msg.toString() === 'from the old port'))
  t.equal(ca.got.length, aBefore, 'the old port hears nothing more')
  // and back again: the latest valid bind wins
  t.ok(await bind(ca, al.a.port, al.a.token))
  t.equal(r.stats().allocations[0]?.a.latched, `${LO}:${ca.port}`)
  t.same(byteViolations(r), [], 'bytes out ≤ bytes in')
})

t.test('IPv6: a relay on ::1 forwards between ::1 clients', async (t) => {
  const r = relay(t, { bind: '::1' })
  const al = await r.allocate({ key: A.key, ip: '::1' }, { key: B.key, ip: '0:0::1' })
  await t.rejects(r.allocate({ key: A.key, ip: '::1' }, C), { code: 'QE_RELAY_BAD_MEMBER' }, 'an IPv4 member cannot reach an IPv6 relay')
  const ca = await client(t, '::1')
  const cb = await client(t, '::1')
  t.ok(await bind(ca, al.a.port, al.a.token))
  t.ok(await bind(cb, al.b.port, al.b.token))
  t.equal(r.stats().allocations[0]?.b.latched, `[::1]:${cb.port}`)
  ca.send(Buffer.from('over v6'), al.a.port)
  t.ok(await until(() => cb.got.some((g) => g.msg.toString() === 'over v6')))
})

t.test('stop() closes every socket; allocate() refuses afterwards', async (t) => {
  const r = new RelayServer({ bind: LO, log: silentLogger, idleMs: 3_600_000 })
  const al1 = await r.allocate(A, B)
  const al2 = await r.allocate(A, C)
  const ca = await client(t)
  t.ok(await bind(ca, al1.a.port, al1.a.token))
  await r.stop()
  t.equal(r.stats().counters.allocations, 0)
  t.equal(r.stats().allocations.length, 0)
  t.notOk(await bind(ca, al1.a.port, al1.a.token, 100), 'closed')
  t.notOk(await bind(ca, al2.b.port, al2.b.token, 100), 'closed')
  await t.rejects(r.allocate(A, B), { code: 'QE_RELAY_STOPPED' })
  await r.stop() // twice is fine
  // the ports are free again: a plain socket can take one
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject)
    s.bind(al1.b.port, LO, resolve)
  })
  await new Promise<void>((resolve) => s.close(() => resolve()))
})
