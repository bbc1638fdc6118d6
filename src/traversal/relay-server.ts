/**
 * The relay: a member that forwards two other members' QUIC packets, as
 * opaque UDP payloads, when they cannot punch a direct path. It cannot read
 * them (QUIC/TLS end to end); it only moves bytes between two latched
 * addresses.
 *
 * One allocation = two UDP sockets on ephemeral ports of `bind`, one per
 * side, each with its own random 16-byte token. The control plane asks for
 * it (over its own authenticated channel, not here) and tells each member its
 * port and token. A member's engine then sends BIND(token, nonce) from its
 * tunnel socket to its port:
 * - a BIND with that side's token, from that side's IP, latches the source
 *   address:port (the latest valid one wins: NAT rebinding) and is answered
 *   with BOUND, the same 29 bytes with the type changed, to that source;
 * - any other BIND (wrong token, wrong IP, malformed) is dropped (`refusedBind`).
 * Once both sides are latched, a datagram on A's socket from A's latched
 * address:port goes out unchanged from B's socket to B's latched address,
 * and the other way round. Anything else is dropped and counted, never
 * forwarded: from another source (`refusedSource`), before both sides are
 * latched (`early`), over the pair's rate in that direction (`rateDropped`),
 * or while the out socket's send queue is full (`queueDropped`). So the relay
 * sends only to addresses a member bound, and never more bytes than it
 * received (a BOUND is exactly as long as its BIND).
 *
 * Bounded: `maxAllocations` in all, `perMember` per member; an allocation
 * with neither a forwarded packet nor a valid bind for `idleMs` is closed by
 * one coarse sweep timer (unref'd; it runs only while allocations exist).
 * Sends never resolve names (the sockets' lookup accepts IP literals only).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIP, isIPv4 } from 'node:net'
import { QeError, SystemError } from '../errors.js'
import { silentLogger, WarnLimiter, type Logger } from '../log.js'
import { parseAddress } from '../net/index.js'
import { BIND, BOUND, MAGIC_LEN, TOKEN_LEN, decodeBind, hasRelayMagic } from './relay-wire.js'

export const DEFAULT_MAX_ALLOCATIONS = 256
export const DEFAULT_PER_MEMBER = 16
export const DEFAULT_IDLE_MS = 60_000
/** 100 Mbit/s per pair and direction. */
export const DEFAULT_RATE_BPS = 12_500_000
/** The token bucket holds this much of a second's rate (100 ms)… */
const BURST_SECONDS = 0.1
/** …and never less than this many bytes. */
const MIN_BURST_BYTES = 64 * 1024
/**
 * Sends the kernel has not taken yet (libuv's queue on one socket) beyond
 * which a datagram is dropped (`queueDropped`) instead of queued: a slow
 * receiver costs packets, never unbounded memory.
 */
export const MAX_SEND_QUEUE = 256
/** Socket buffers asked for (the kernel caps them at net.core.[rw]mem_max). */
const SOCKET_BUFFER_BYTES = 2 * 1024 * 1024
/** The idle sweep runs every idleMs/4, within these bounds. */
const SWEEP_MIN_MS = 10
const SWEEP_MAX_MS = 5000
/** A kind of refusal is logged at warn at most once a minute; at debug otherwise. */
const WARN_EVERY_MS = 60_000
const HEX_KEY = /^[0-9a-f]{2,128}$/i

/** One member of a pair, as the control plane names it. */
export interface RelayMember {
  /** The member's key, hex. */
  readonly key: string
  /** The IP the relay sees this member's tunnel from; binds from any other IP are refused. */
  readonly ip: string
}

/** What each side is told: the relay port to bind to and the token to bind with. */
export interface AllocationSide {
  readonly port: number
  /** A copy: the caller may keep or send it. */
  readonly token: Buffer
}

export interface Allocation {
  readonly id: string
  readonly a: AllocationSide
  readonly b: AllocationSide
}

export interface RelayServerOptions {
  /** IP literal to bind the allocation sockets on ('0.0.0.0', '::', a lab address); the family follows it. */
  readonly bind: string
  /** Allocations open at once at most. Default 256. */
  readonly maxAllocations?: number
  /** Allocations a member takes part in at most. Default 16. */
  readonly perMember?: number
  /** An allocation with no forwarded packet and no valid bind for this long is closed. Default 60 s. */
  readonly idleMs?: number
  /** Per pair and direction, bytes per second; the burst is 100 ms of it, at least 64 KiB. Default 12.5 MB/s. */
  readonly rateBps?: number
  readonly log?: Logger
  /** Clock in ms (buckets, idleness, timestamps). Default Date.now. */
  readonly now?: () => number
}

export interface FlowCount {
  packets: number
  bytes: number
}

export interface RelayCounters {
  /** Allocations open now. */
  allocations: number
  allocationsOpened: number
  allocationsClosed: number
  /** Of the closed: by the idle sweep. */
  idleClosed: number
  /** allocate() calls refused (limits, same member, bad member, stopped, socket failure). */
  refusedAllocations: number
  /** Every datagram that arrived on an allocation socket. */
  received: FlowCount
  /** Every datagram the relay sent: forwarded ones plus BOUND answers. Never more bytes than `received`. */
  sent: FlowCount
  /** Forwarded from each pair's first member (a) to its second (b), the reverse, and both. */
  forwardedAToB: FlowCount
  forwardedBToA: FlowCount
  forwarded: FlowCount
  /** BOUND answers sent (valid binds). */
  bound: number
  // Drops, one counter per reason:
  /** BINDs with a wrong token, from a wrong IP, or malformed. */
  refusedBind: number
  /** Datagrams from anything but the socket's latched address:port. */
  refusedSource: number
  /** Datagrams from a member before both sides were latched. */
  early: number
  /** Over the pair's rate in that direction. */
  rateDropped: number
  /** The out socket's send queue was full. */
  queueDropped: number
  /** Sends the kernel refused (reported by the socket). */
  sendErrors: number
}

export interface RelaySideInfo {
  readonly key: string
  readonly ip: string
  /** The relay port this side binds to. */
  readonly port: number
  /** 'address:port' ('[v6]:port') latched by the latest valid bind, or null. */
  readonly latched: string | null
  /** Datagrams that arrived on this side's socket (from anyone). */
  readonly received: FlowCount
}

export interface RelayAllocationInfo {
  readonly id: string
  readonly a: RelaySideInfo
  readonly b: RelaySideInfo
  readonly aToB: FlowCount
  readonly bToA: FlowCount
  /** ms timestamps (the server's clock). */
  readonly createdAt: number
  readonly lastActiveAt: number
}

export interface RelayStats {
  readonly counters: RelayCounters
  readonly allocations: RelayAllocationInfo[]
}

/** Why allocate() refused. */
export type RelayRefusalCode =
  | 'QE_RELAY_FULL' // maxAllocations reached
  | 'QE_RELAY_MEMBER_LIMIT' // a member already takes part in perMember allocations
  | 'QE_RELAY_SAME_MEMBER' // a and b are the same member
  | 'QE_RELAY_BAD_MEMBER' // a key that is not hex, an IP that is not a literal of a reachable family
  | 'QE_RELAY_STOPPED' // the server is stopped, or the allocation was replaced or closed before it was ready

const RETRYABLE: Readonly<Record<RelayRefusalCode, boolean>> = {
  QE_RELAY_FULL: true,
  QE_RELAY_MEMBER_LIMIT: true,
  QE_RELAY_SAME_MEMBER: false,
  QE_RELAY_BAD_MEMBER: false,
  QE_RELAY_STOPPED: false,
}

/** allocate() refused; `code` says why. Capacity refusals are retryable, bad requests are not. */
export class RelayRefusedError extends QeError {
  override readonly code: RelayRefusalCode
  override readonly retryable: boolean
  constructor(code: RelayRefusalCode = 'QE_RELAY_FULL', message = 'the relay refused the allocation', options?: ErrorOptions) {
    super(message, options)
    this.name = 'RelayRefusedError'
    this.code = code
    this.retryable = RETRYABLE[code]
  }
}

/** An allocation socket could not be opened or bound (ports exhausted, address gone). Retryable. */
export class RelaySocketError extends SystemError {
  override readonly code = 'QE_RELAY_SOCKET'
  constructor(message = 'cannot open a relay socket', options?: ErrorOptions) {
    super(message, { ...options, retryable: true })
    this.name = 'RelaySocketError'
  }
}

/** The options are not usable (bind not an IP literal, a limit not a positive number). */
export class RelayInitError extends QeError {
  override readonly code = 'QE_RELAY_INIT'
  constructor(message = 'the relay settings are not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'RelayInitError'
  }
}

interface Side {
  readonly key: string
  /** Canonical text. */
  readonly ip: string
  readonly token: Buffer
  readonly socket: Socket
  port: number
  latched: { address: string; port: number } | null
  readonly received: FlowCount
  /** Forwarded from this side to the other. */
  readonly forwarded: FlowCount
  /** The token bucket of this side → the other (bytes). */
  tokens: number
  tokensAt: number
}

interface Alloc {
  readonly id: string
  readonly pair: string
  readonly a: Side
  readonly b: Side
  readonly createdAt: number
  lastActive: number
  closed: boolean
}

type Refusal = 'refusedBind' | 'refusedSource' | 'early' | 'rateDropped' | 'queueDropped' | 'sendErrors'

/** Names are never resolved: this is the sockets' resolver (dgram calls it with (host, family, cb)). */
function literalOnlyLookup(host: string, ...rest: unknown[]): void {
  const cb = rest[rest.length - 1] as (err: Error | null, address?: string, family?: number) => void
  const family = isIP(host)
  if (family !== 0) cb(null, host, family)
  else cb(Object.assign(new Error(`refusing to resolve '${host}': the relay sends to IP literals only`), { code: 'ENOTFOUND' }))
}

const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i

/** Canonical text of an address as a socket or a caller writes it (v4-mapped v6 → v4, no zone), or null. */
function canonical(address: string): string | null {
  const unzoned = address.includes('%') ? address.slice(0, address.indexOf('%')) : address
  const m = MAPPED_V4.exec(unzoned)
  return parseAddress(m ? m[1] : unzoned).value?.text ?? null
}

const flow = (): FlowCount => ({ packets: 0, bytes: 0 })
const hostPort = (l: { address: string; port: number } | null): string | null => (l === null ? null : isIPv4(l.address) ? `${l.address}:${l.port}` : `[${l.address}]:${l.port}`)

function positive(name: string, v: number | undefined, dflt: number, integer: boolean): number {
  const x = v ?? dflt
  if (!(typeof x === 'number' && x > 0 && Number.isFinite(x)) || (integer && !Number.isInteger(x))) throw new RelayInitError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`)
  return x
}

export class RelayServer {
  readonly #bind: string
  readonly #type: 'udp4' | 'udp6'
  /** A v6 socket on '::' also takes IPv4 (v4-mapped); any other socket takes its own family only. */
  readonly #dualStack: boolean
  readonly #maxAllocations: number
  readonly #perMember: number
  readonly #idleMs: number
  readonly #rate: number
  readonly #burst: number
  readonly #log: Logger
  readonly #now: () => number
  readonly #allocs = new Map<string, Alloc>()
  readonly #byPair = new Map<string, Alloc>()
  readonly #memberCount = new Map<string, number>()
  readonly #warnings: WarnLimiter
  readonly #c: RelayCounters = {
    allocations: 0,
    allocationsOpened: 0,
    allocationsClosed: 0,
    idleClosed: 0,
    refusedAllocations: 0,
    received: flow(),
    sent: flow(),
    forwardedAToB: flow(),
    forwardedBToA: flow(),
    forwarded: flow(),
    bound: 0,
    refusedBind: 0,
    refusedSource: 0,
    early: 0,
    rateDropped: 0,
    queueDropped: 0,
    sendErrors: 0,
  }
  readonly #closing = new Set<Promise<void>>()
  #timer: NodeJS.Timeout | null = null
  #stopped = false

  constructor(opts: RelayServerOptions) {
    const bind = canonical(opts.bind)
    if (bind === null) throw new RelayInitError(`relay bind address '${opts.bind}' is not an IP literal`)
    this.#bind = bind
    this.#type = isIPv4(bind) ? 'udp4' : 'udp6'
    this.#dualStack = bind === '::'
    this.#maxAllocations = positive('maxAllocations', opts.maxAllocations, DEFAULT_MAX_ALLOCATIONS, true)
    this.#perMember = positive('perMember', opts.perMember, DEFAULT_PER_MEMBER, true)
    this.#idleMs = positive('idleMs', opts.idleMs, DEFAULT_IDLE_MS, false)
    this.#rate = positive('rateBps', opts.rateBps, DEFAULT_RATE_BPS, false)
    this.#burst = Math.max(MIN_BURST_BYTES, this.#rate * BURST_SECONDS)
    this.#log = (opts.log ?? silentLogger).child({ component: 'relay' })
    this.#now = opts.now ?? Date.now
    this.#warnings = new WarnLimiter(this.#log, this.#now, WARN_EVERY_MS)
  }

  /** Bytes a pair may send in one direction at once (the bucket's size). */
  get burstBytes(): number {
    return this.#burst
  }

  /**
   * Opens an allocation for the pair (a, b): two sockets, two tokens. An
   * allocation the same unordered pair already has is closed first (its
   * members' binds stop working). Rejects with RelayRefusedError (counted in
   * `refusedAllocations`) or RelaySocketError. May run concurrently with
   * itself; the limits count allocations still opening.
   */
  async allocate(a: RelayMember, b: RelayMember): Promise<Allocation> {
    if (this.#stopped) throw this.#refuseAllocation('QE_RELAY_STOPPED', 'the relay is stopped')
    const ma = this.#member(a, 'a')
    const mb = this.#member(b, 'b')
    if (ma.key === mb.key) throw this.#refuseAllocation('QE_RELAY_SAME_MEMBER', 'a relay pair needs two different members')
    const pair = ma.key < mb.key ? `${ma.key}/${mb.key}` : `${mb.key}/${ma.key}`
    const old = this.#byPair.get(pair)
    if (old) this.#closeAlloc(old, 'replaced')
    if (this.#allocs.size >= this.#maxAllocations) throw this.#refuseAllocation('QE_RELAY_FULL', `the relay holds its maximum of ${this.#maxAllocations} allocations`)
    for (const m of [ma, mb]) {
      if ((this.#memberCount.get(m.key) ?? 0) >= this.#perMember) throw this.#refuseAllocation('QE_RELAY_MEMBER_LIMIT', `member ${m.key.slice(0, 16)} already takes part in ${this.#perMember} relay allocations`)
    }
    const now = this.#now()
    const al: Alloc = {
      id: randomBytes(8).toString('hex'),
      pair,
      a: this.#side(ma, now),
      b: this.#side(mb, now),
      createdAt: now,
      lastActive: now,
      closed: false,
    }
    al.a.socket.on('message', (msg, rinfo) => this.#onMessage(al, al.a, al.b, this.#c.forwardedAToB, msg, rinfo))
    al.b.socket.on('message', (msg, rinfo) => this.#onMessage(al, al.b, al.a, this.#c.forwardedBToA, msg, rinfo))
    this.#allocs.set(al.id, al)
    this.#byPair.set(pair, al)
    for (const k of [ma.key, mb.key]) this.#memberCount.set(k, (this.#memberCount.get(k) ?? 0) + 1)
    this.#c.allocations = this.#allocs.size
    try {
      await Promise.all([this.#open(al.a), this.#open(al.b)])
    } catch (err) {
      this.#closeAlloc(al, 'socket-error')
      this.#c.refusedAllocations++
      throw new RelaySocketError(`cannot bind a relay socket on ${this.#bind}: ${(err as Error).message}`, { cause: err })
    }
    if (al.closed) throw this.#refuseAllocation('QE_RELAY_STOPPED', 'the allocation was closed before it was ready (replaced, or the relay stopped)')
    this.#c.allocationsOpened++
    this.#armSweep()
    this.#log.info({ id: al.id, a: ma.key.slice(0, 16), b: mb.key.slice(0, 16), ports: [al.a.port, al.b.port] }, 'relay allocation opened')
    return {
      id: al.id,
      a: { port: al.a.port, token: Buffer.from(al.a.token) },
      b: { port: al.b.port, token: Buffer.from(al.b.token) },
    }
  }

  /** Closes one allocation (both sockets). False when no allocation has that id. */
  close(id: string): boolean {
    const al = this.#allocs.get(id)
    if (!al) return false
    this.#closeAlloc(al, 'closed')
    return true
  }

  /** Closes every allocation and the sweep; resolves when every socket is closed. allocate() refuses afterwards. */
  async stop(): Promise<void> {
    this.#stopped = true
    for (const al of [...this.#allocs.values()]) this.#closeAlloc(al, 'stopped')
    this.#disarmSweep()
    await Promise.all([...this.#closing])
  }

  /** A snapshot: copies, safe to keep. */
  stats(): RelayStats {
    const c = this.#c
    const copy = (f: FlowCount): FlowCount => ({ packets: f.packets, bytes: f.bytes })
    const side = (s: Side): RelaySideInfo => ({ key: s.key, ip: s.ip, port: s.port, latched: hostPort(s.latched), received: copy(s.received) })
    return {
      counters: {
        ...c,
        received: copy(c.received),
        sent: copy(c.sent),
        forwardedAToB: copy(c.forwardedAToB),
        forwardedBToA: copy(c.forwardedBToA),
        forwarded: copy(c.forwarded),
      },
      allocations: [...this.#allocs.values()].map((al) => ({
        id: al.id,
        a: side(al.a),
        b: side(al.b),
        aToB: copy(al.a.forwarded),
        bToA: copy(al.b.forwarded),
        createdAt: al.createdAt,
        lastActiveAt: al.lastActive,
      })),
    }
  }

  #member(m: RelayMember, which: string): { key: string; ip: string } {
    const key = typeof m?.key === 'string' && HEX_KEY.test(m.key) ? m.key.toLowerCase() : null
    if (key === null) throw this.#refuseAllocation('QE_RELAY_BAD_MEMBER', `member ${which}'s key is not hex`)
    const ip = typeof m.ip === 'string' ? canonical(m.ip) : null
    if (ip === null) throw this.#refuseAllocation('QE_RELAY_BAD_MEMBER', `member ${which}'s ip '${String(m.ip)}' is not an IP literal`)
    const v4 = isIPv4(ip)
    if (!this.#dualStack && v4 !== (this.#type === 'udp4')) throw this.#refuseAllocation('QE_RELAY_BAD_MEMBER', `member ${which}'s ip ${ip} cannot reach a relay bound on ${this.#bind}`)
    return { key, ip }
  }

  #side(m: { key: string; ip: string }, now: number): Side {
    const socket = createSocket({ type: this.#type, lookup: literalOnlyLookup as never, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES })
    return {
      key: m.key,
      ip: m.ip,
      token: randomBytes(TOKEN_LEN),
      socket,
      port: 0,
      latched: null,
      received: flow(),
      forwarded: flow(),
      tokens: this.#burst,
      tokensAt: now,
    }
  }

  #open(side: Side): Promise<void> {
    const socket = side.socket
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      socket.once('error', onError)
      socket.bind({ address: this.#bind, port: 0, exclusive: true }, () => {
        socket.off('error', onError)
        // From here on, errors are failed sends (without a callback, dgram reports them here).
        socket.on('error', (err) => this.#refuse('sendErrors', null, `relay socket error: ${err.message}`))
        try {
          side.port = socket.address().port
          resolve()
        } catch (err) {
          reject(err as Error) // closed while binding
        }
      })
    })
  }

  /** Every datagram on an allocation socket: the hot path. */
  #onMessage(al: Alloc, from: Side, to: Side, dir: FlowCount, msg: Buffer, rinfo: RemoteInfo): void {
    if (al.closed) return
    const c = this.#c
    const len = msg.length
    c.received.packets++
    c.received.bytes += len
    from.received.packets++
    from.received.bytes += len
    if (len > MAGIC_LEN && msg[MAGIC_LEN] === BIND && hasRelayMagic(msg)) return this.#onBind(al, from, msg, rinfo)
    const src = from.latched
    if (src === null || rinfo.port !== src.port || rinfo.address !== src.address) {
      if (src === null && canonical(rinfo.address) === from.ip) return void this.#refuse('early', rinfo.address, 'a datagram before its side was bound')
      return void this.#refuse('refusedSource', rinfo.address, 'a datagram from an address no member bound')
    }
    const dest = to.latched
    if (dest === null) return void this.#refuse('early', rinfo.address, 'a datagram before the other side was bound')
    const now = this.#now()
    const tokens = Math.min(this.#burst, from.tokens + ((now - from.tokensAt) * this.#rate) / 1000)
    from.tokensAt = now
    if (tokens < len) {
      from.tokens = tokens
      return void this.#refuse('rateDropped', rinfo.address, 'a pair over its relay rate')
    }
    if (to.socket.getSendQueueCount() >= MAX_SEND_QUEUE) {
      from.tokens = tokens
      return void this.#refuse('queueDropped', rinfo.address, 'a relay send queue is full')
    }
    from.tokens = tokens - len
    al.lastActive = now
    to.socket.send(msg, dest.port, dest.address)
    from.forwarded.packets++
    from.forwarded.bytes += len
    dir.packets++
    dir.bytes += len
    c.forwarded.packets++
    c.forwarded.bytes += len
    c.sent.packets++
    c.sent.bytes += len
  }

  /** A datagram whose type byte says BIND. */
  #onBind(al: Alloc, side: Side, msg: Buffer, rinfo: RemoteInfo): void {
    const bind = decodeBind(msg)
    if (bind === null) return void this.#refuse('refusedBind', rinfo.address, 'a malformed relay bind')
    if (!timingSafeEqual(bind.token, side.token)) return void this.#refuse('refusedBind', rinfo.address, 'a relay bind with a wrong token')
    if (canonical(rinfo.address) !== side.ip) return void this.#refuse('refusedBind', rinfo.address, 'a relay bind from an IP that is not the member\'s')
    if (side.socket.getSendQueueCount() >= MAX_SEND_QUEUE) return void this.#refuse('queueDropped', rinfo.address, 'a relay send queue is full')
    const prev = side.latched
    if (prev === null || prev.port !== rinfo.port || prev.address !== rinfo.address) {
      side.latched = { address: rinfo.address, port: rinfo.port }
      this.#log.debug({ id: al.id, member: side.key.slice(0, 16), from: hostPort(side.latched), was: hostPort(prev) }, prev ? 'relay side rebound' : 'relay side bound')
    }
    al.lastActive = this.#now()
    // BOUND is the BIND with its type byte changed: the same length, token and nonce.
    msg[MAGIC_LEN] = BOUND
    side.socket.send(msg, rinfo.port, rinfo.address)
    this.#c.bound++
    this.#c.sent.packets++
    this.#c.sent.bytes += msg.length
  }

  #closeAlloc(al: Alloc, why: 'closed' | 'replaced' | 'idle' | 'stopped' | 'socket-error'): void {
    if (al.closed) return
    al.closed = true
    this.#allocs.delete(al.id)
    if (this.#byPair.get(al.pair) === al) this.#byPair.delete(al.pair)
    for (const k of [al.a.key, al.b.key]) {
      const n = (this.#memberCount.get(k) ?? 1) - 1
      if (n <= 0) this.#memberCount.delete(k)
      else this.#memberCount.set(k, n)
    }
    for (const s of [al.a, al.b]) {
      const closed = new Promise<void>((resolve) => {
        try {
          s.socket.close(() => resolve())
        } catch {
          resolve() // already closed
        }
      })
      this.#closing.add(closed)
      void closed.then(() => this.#closing.delete(closed))
    }
    this.#c.allocations = this.#allocs.size
    if (why !== 'socket-error') this.#c.allocationsClosed++
    if (why === 'idle') this.#c.idleClosed++
    if (this.#allocs.size === 0) this.#disarmSweep()
    this.#log.info({ id: al.id, why, aToB: al.a.forwarded.bytes, bToA: al.b.forwarded.bytes }, 'relay allocation closed')
  }

  #armSweep(): void {
    if (this.#timer || this.#stopped) return
    const every = Math.min(SWEEP_MAX_MS, Math.max(SWEEP_MIN_MS, Math.floor(this.#idleMs / 4)))
    this.#timer = setInterval(() => this.#sweep(), every)
    this.#timer.unref()
  }

  #disarmSweep(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }

  #sweep(): void {
    const now = this.#now()
    for (const al of [...this.#allocs.values()]) if (now - al.lastActive >= this.#idleMs) this.#closeAlloc(al, 'idle')
  }

  #refuseAllocation(code: RelayRefusalCode, message: string): RelayRefusedError {
    this.#c.refusedAllocations++
    this.#log.warn({ code }, message)
    return new RelayRefusedError(code, message)
  }

  /** Counts a dropped datagram; warn at most once a minute per kind, debug otherwise. */
  #refuse(kind: Refusal, source: string | null, what: string): void {
    this.#c[kind]++
    this.#warnings.warn(kind, { source }, what)
  }
}
