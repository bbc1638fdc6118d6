import t from 'tap'
import { EventEmitter } from 'node:events'
import type { NetlinkMessage, NetlinkSocket } from 'netlink'
import { RequestPipeline } from '../../src/system/pipeline.js'
import { NetlinkError, NetlinkSocketError } from '../../src/system/errors.js'

/**
 * A stand-in for the package's NetlinkSocket: it splits each sent buffer into
 * netlink messages and answers every one with an ack (NLMSG_ERROR), the errno
 * chosen by `answer` (0 = success, `null` = never answer).
 */
class FakeSocket extends EventEmitter {
  sends: number[][] = []
  private seq = 1
  answer: (type: number, seq: number) => number | null = () => 0
  refs = 0
  readonly socket = {
    send: (buf: Buffer, _opts: unknown, cb: (err?: Error) => void) => {
      const seqs: number[] = []
      const acks: NetlinkMessage[] = []
      for (let off = 0; off < buf.length; ) {
        const len = buf.readUInt32LE(off)
        const type = buf.readUInt16LE(off + 4)
        const seq = buf.readUInt32LE(off + 8)
        seqs.push(seq)
        const errno = this.answer(type, seq)
        if (errno !== null) {
          const data = Buffer.alloc(20)
          data.writeInt32LE(-errno, 0)
          data.writeUInt32LE(16, 4) // the echoed request header (length only)
          acks.push({ type: 2, flags: 0, seq, port: 0, data })
        }
        off += (len + 3) & ~3
      }
      this.sends.push(seqs)
      cb()
      setImmediate(() => this.emit('message', acks))
    },
    ref: () => void this.refs++,
    unref: () => void this.refs--,
  }
  address(): { port: number; groups: number } {
    return { port: 4242, groups: 0 }
  }
  generateSeq(): number {
    return this.seq++
  }
}

// The fake socket holds no event-loop handle (the real one is referenced while requests are out).
const keepAlive = setInterval(() => undefined, 1000)
t.teardown(() => clearInterval(keepAlive))

function pipeline(sock: FakeSocket, opts: Partial<{ maxInFlight: number; batch: number; timeoutMs: number }> = {}): RequestPipeline {
  return new RequestPipeline(sock as unknown as NetlinkSocket, { maxInFlight: 8, batch: 4, timeoutMs: 1000, ...opts })
}

t.test('requests of one tick go out in batches, bounded by the in-flight limit', async (t) => {
  const sock = new FakeSocket()
  const p = pipeline(sock)
  await Promise.all(Array.from({ length: 20 }, (_, i) => p.submit(24, 0, Buffer.alloc(12), `req ${i}`)))
  t.same(
    sock.sends.map((s) => s.length),
    [4, 4, 4, 4, 4],
    'five sendmsg calls of four messages, never more than 8 unacknowledged',
  )
  t.same(sock.sends.flat(), Array.from({ length: 20 }, (_, i) => i + 1), 'in submission order')
})

t.test('a kernel error rejects only its own request, with a NetlinkError named by errno', async (t) => {
  const sock = new FakeSocket()
  sock.answer = (_type, seq) => (seq === 2 ? 17 : seq === 3 ? 16 : 0) // EEXIST, EBUSY
  const p = pipeline(sock)
  const results = await Promise.allSettled([1, 2, 3, 4].map((i) => p.submit(24, 0, Buffer.alloc(12), `add route ${i}`)))
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
  )
  const e2 = (results[1] as PromiseRejectedResult).reason as NetlinkError
  const e3 = (results[2] as PromiseRejectedResult).reason as NetlinkError
  t.ok(e2 instanceof NetlinkError)
  t.equal(e2.errno, 'EEXIST')
  t.equal(e2.message, 'add route 2: EEXIST')
  t.equal(e2.retryable, false)
  t.equal(e3.errno, 'EBUSY')
  t.equal(e3.retryable, true)
})

t.test('an unanswered request fails after the timeout instead of hanging', async (t) => {
  const sock = new FakeSocket()
  sock.answer = (_type, seq) => (seq === 1 ? null : 0)
  const p = pipeline(sock, { timeoutMs: 50 })
  const lost = p.submit(24, 0, Buffer.alloc(12), 'lost')
  await t.rejects(lost, NetlinkSocketError)
  await p.submit(24, 0, Buffer.alloc(12), 'next')
  t.pass('the pipeline goes on')
})

t.test('the socket is referenced only while requests are outstanding; close fails what is pending', async (t) => {
  const sock = new FakeSocket()
  sock.answer = () => null
  const p = pipeline(sock, { timeoutMs: 10_000 })
  const pending = p.submit(24, 0, Buffer.alloc(12), 'pending')
  await new Promise((r) => setImmediate(r))
  t.equal(sock.refs, 1)
  p.close()
  await t.rejects(pending, NetlinkSocketError)
  await t.rejects(p.submit(24, 0, Buffer.alloc(12), 'after close'), NetlinkSocketError)
})
