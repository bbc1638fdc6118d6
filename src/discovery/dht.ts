/**
 * The private DHT: bittorrent-dht (Kademlia, BEP 5 routing + BEP 44 storage)
 * on a socket we own, seeded only from our own bootstrap nodes, plus the
 * rendezvous role (`qe_announce`, `qe_members`) that bootstrap nodes serve.
 *
 * Network safety. k-rpc turns a missing or boolean bootstrap into the public
 * BitTorrent routers, so we build the k-rpc instance ourselves with an
 * explicit array (copied from `init.bootstrap`, validated as IPv4 literals)
 * and hand it to bittorrent-dht. Every send goes through one guard that
 * drops, and counts in `blockedSends`, anything not addressed to a unicast
 * IPv4 literal; the socket's resolver refuses every name, so nothing here
 * ever makes a DNS lookup. IPv4 only: k-rpc's compact node format has no
 * IPv6 (BEP 32).
 *
 * Untrusted input. Each datagram passes, in order: the first-byte split (not
 * 'd' → `onOther`, the join protocol shares this port), a per-source token
 * bucket (source = address:port; the bucket counts every DHT datagram,
 * queries and responses alike; default 50/s, burst 100), then, for queries,
 * a check of every field the handlers read. We serve only ping, find_node,
 * get, put of signed (mutable) items, and our rendezvous queries; get_peers,
 * announce_peer and immutable puts are refused (`unsupported`): this DHT
 * stores nothing unsigned. Every refusal has its own counter in stats() and
 * at most one warn line per kind per minute (per source for floods). A
 * handler that throws is caught at the socket (`handlerErrors`).
 *
 * Lookups (get, put's store) run on k-rpc directly so every item a node
 * returns is checked with our own verifyItem; bittorrent-dht serves the other
 * side (routing table, tokens, storage of puts it receives).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { EventEmitter } from 'node:events'
import { isIPv4 } from 'node:net'
import DHT from 'bittorrent-dht'
import krpc, { type Krpc, type KrpcMessage, type KrpcNode, type KrpcQuery, type KrpcRemote } from 'k-rpc'
import { QeError } from '../errors.js'
import { WarnLimiter, type Logger } from '../log.js'
import { KEY_BYTES, MAX_SALT_BYTES, MAX_VALUE_BYTES, SIG_BYTES, TARGET_BYTES, decodeItem, encodeItem, itemTarget, verifyItem, verifyRaw, type SignedItem } from './bep44.js'
import { RendezvousStore, type AnnounceResult } from './rendezvous.js'

/** Default per-source limit: DHT datagrams per second (sustained); the burst is twice this. */
export const DEFAULT_MAX_QUERIES_PER_SECOND = 50
/** Sources tracked by the flood limiter at most; idle ones are forgotten first. */
const MAX_SOURCES = 4096
/** Pages followed per rendezvous in members() at most (a rendezvous cannot keep a client looping). */
const MAX_MEMBER_PAGES = 256
/** Housekeeping tick: rendezvous expiry, forgetting idle sources. */
const TICK_MS = 30_000
/** Refusals are logged at warn at most once a minute per kind (per source for floods). */
const WARN_EVERY_MS = 60_000
/** k-rpc query timeout. */
const QUERY_TIMEOUT_MS = 2000
/** Values bittorrent-dht stores for others (LRU). */
const MAX_STORED_VALUES = 1000

export interface DhtInit {
  /** Bind address: an IPv4 literal. */
  readonly address: string
  /** 0 = ephemeral. */
  readonly port: number
  /** IPv4 literals; the ONLY seeds; [] = none (the node waits to be contacted). */
  readonly bootstrap: readonly { readonly host: string; readonly port: number }[]
  /** Serve qe_announce / qe_members (bootstrap nodes do). */
  readonly rendezvous: boolean
  /** Per-source flood limit, DHT datagrams per second (burst twice this). Default 50. */
  readonly maxQueriesPerSecondPerSource?: number
}

export interface DhtComponents {
  readonly log: Logger
  /** Clock in ms (rendezvous expiry, flood buckets, log rate limits). Default Date.now. */
  readonly now?: () => number
}

export interface DhtStats {
  /** Nodes in the routing table. */
  nodes: number
  /** DHT datagrams received (before any limit) and sent. */
  packetsIn: number
  packetsOut: number
  /** Queries that passed the flood limit. */
  queriesIn: number
  /** Datagrams handed to onOther, and sent with sendRaw. */
  otherIn: number
  otherOut: number
  // Refusals, one counter per kind:
  /** Dropped by the per-source token bucket. */
  floodDropped: number
  /** Queries or items with missing or ill-typed fields, undecodable items. */
  malformed: number
  /** Query types this DHT does not serve (get_peers, announce_peer, immutable put, …). */
  unsupported: number
  /** Items whose signature fails (received in a put, an announce, or a get/members reply), or under the wrong key. */
  badItems: number
  /** Puts or announces whose seq is not above what is held. */
  staleSeq: number
  /** Values over 1000 bytes, salts over 64. */
  oversize: number
  /** Announces refused because the rendezvous is full. */
  rendezvousFull: number
  /** Sends dropped because the destination is not a unicast IPv4 literal (names are never resolved). */
  blockedSends: number
  /** Exceptions caught from a handler (the library's or onOther's). */
  handlerErrors: number
  /** Items the rendezvous holds (0 if not a rendezvous). */
  rendezvousItems: number
  /** get() calls done, and nodes that answered across them (mean = lookupVisited / lookups). */
  lookups: number
  lookupVisited: number
}

type Refusal = 'floodDropped' | 'malformed' | 'unsupported' | 'badItems' | 'staleSeq' | 'oversize' | 'rendezvousFull' | 'blockedSends' | 'handlerErrors'

/** The init is not usable (an address that is not an IPv4 literal, a bad port). */
export class DhtInitError extends QeError {
  override readonly code = 'QE_DHT_INIT'
  constructor(message = 'the DHT settings are not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'DhtInitError'
  }
}

/** put() was given an item that does not verify (a caller bug: items come from signItem). */
export class DhtItemError extends QeError {
  override readonly code = 'QE_DHT_ITEM'
  constructor(message = 'the item does not verify', options?: ErrorOptions) {
    super(message, options)
    this.name = 'DhtItemError'
  }
}

/** The DHT is not started (or already stopped). */
export class DhtNotRunningError extends QeError {
  override readonly code = 'QE_DHT_NOT_RUNNING'
  constructor(message = 'the DHT is not running', options?: ErrorOptions) {
    super(message, options)
    this.name = 'DhtNotRunningError'
  }
}

interface Bucket {
  tokens: number
  at: number
  dropped: number
  warnedAt: number
}

type Dict = Record<string, unknown>
const isDict = (x: unknown): x is Dict => typeof x === 'object' && x !== null && !Buffer.isBuffer(x) && !Array.isArray(x)
const isBuf = (x: unknown, len?: number): x is Buffer => Buffer.isBuffer(x) && (len === undefined || x.length === len)
const isSeq = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
const isPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p > 0 && p <= 65535
/** A destination we may send to: a unicast IPv4 literal (not 0/8, multicast, or reserved 240/4). */
function isUnicastV4(address: string): boolean {
  if (!isIPv4(address)) return false
  const first = Number(address.split('.')[0])
  return first !== 0 && first < 224
}
function xorCompare(a: Buffer, b: Buffer, target: Buffer): number {
  for (let i = 0; i < target.length; i++) {
    const d = ((a[i] ?? 0) ^ (target[i] ?? 0)) - ((b[i] ?? 0) ^ (target[i] ?? 0))
    if (d !== 0) return d
  }
  return 0
}

/**
 * The dgram-like socket k-rpc-socket sees. It receives only what passed the
 * split and the flood limit, and its send is the guard.
 */
class GuardedSocket extends EventEmitter {
  constructor(
    private readonly real: Socket,
    private readonly guardedSend: (buf: Buffer, port: number, address: string, cb?: (err?: Error | null) => void) => void,
  ) {
    super()
    real.on('close', () => this.emit('close'))
  }
  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err?: Error | null) => void): void {
    this.guardedSend(offset === 0 && length === buf.length ? buf : buf.subarray(offset, offset + length), port, address, cb)
  }
  bind(): void {
    // Bound by Dht.start before k-rpc-socket sees it.
  }
  address(): ReturnType<Socket['address']> {
    return this.real.address()
  }
  close(): void {
    this.real.close()
  }
}

/** Names are never resolved: this is the socket's resolver. */
function literalOnlyLookup(host: string, ...rest: unknown[]): void {
  const cb = rest[rest.length - 1] as (err: Error | null, address?: string, family?: number) => void
  if (isIPv4(host)) cb(null, host, 4)
  else cb(Object.assign(new Error(`refusing to resolve '${host}': the DHT sends to IP literals only`), { code: 'ENOTFOUND' }))
}

export class Dht {
  readonly #init: DhtInit
  readonly #bootstrap: KrpcNode[]
  readonly #log: Logger
  readonly #now: () => number
  readonly #rate: number
  readonly #burst: number
  readonly #buckets = new Map<string, Bucket>()
  readonly #warnings: WarnLimiter
  readonly #rendezvous: RendezvousStore | null
  #announced: ((item: SignedItem) => void) | null = null
  readonly #c = {
    packetsIn: 0,
    packetsOut: 0,
    queriesIn: 0,
    otherIn: 0,
    otherOut: 0,
    floodDropped: 0,
    malformed: 0,
    unsupported: 0,
    badItems: 0,
    staleSeq: 0,
    oversize: 0,
    rendezvousFull: 0,
    blockedSends: 0,
    handlerErrors: 0,
    lookups: 0,
    lookupVisited: 0,
  }
  #socket: Socket | null = null
  #rpc: Krpc | null = null
  #dht: DHT | null = null
  #other: ((msg: Buffer, from: { address: string; port: number }) => void) | null = null
  #timer: NodeJS.Timeout | null = null
  #port = 0

  constructor(init: DhtInit, components: DhtComponents) {
    if (!isIPv4(init.address)) throw new DhtInitError(`DHT bind address '${init.address}' is not an IPv4 literal`)
    if (!Number.isInteger(init.port) || init.port < 0 || init.port > 65535) throw new DhtInitError(`DHT port ${init.port} is out of range`)
    for (const b of init.bootstrap) {
      if (!isUnicastV4(b.host) || !isPort(b.port)) throw new DhtInitError(`DHT bootstrap node '${b.host}:${b.port}' is not a unicast IPv4 literal and port`)
    }
    const rate = init.maxQueriesPerSecondPerSource ?? DEFAULT_MAX_QUERIES_PER_SECOND
    if (!(rate > 0)) throw new DhtInitError(`maxQueriesPerSecondPerSource must be > 0, got ${rate}`)
    this.#init = init
    // An explicit array of fresh objects: k-rpc must never see anything else here.
    this.#bootstrap = init.bootstrap.map((b) => ({ host: b.host, port: b.port }))
    this.#log = components.log.child({ component: 'dht' })
    this.#now = components.now ?? Date.now
    this.#warnings = new WarnLimiter(this.#log, this.#now, WARN_EVERY_MS)
    this.#rate = rate
    this.#burst = 2 * rate
    this.#rendezvous = init.rendezvous ? new RendezvousStore() : null
  }

  /** The bound port (after start). */
  get port(): number {
    return this.#port
  }

  /** Binds and starts seeding from the bootstrap nodes; resolves once bound. */
  async start(): Promise<void> {
    if (this.#socket) return
    const socket = createSocket({ type: 'udp4', lookup: literalOnlyLookup as never })
    this.#socket = socket
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new DhtInitError(`cannot bind the DHT socket to ${this.#init.address}:${this.#init.port}: ${err.message}`, { cause: err }))
      socket.once('error', onError)
      socket.bind({ address: this.#init.address, port: this.#init.port, exclusive: true }, () => {
        socket.off('error', onError)
        resolve()
      })
    }).catch((err: unknown) => {
      this.#socket = null
      socket.close()
      throw err
    })
    this.#port = socket.address().port
    const guarded = new GuardedSocket(socket, (buf, port, address, cb) => this.#send(buf, port, address, cb))
    socket.on('message', (msg, rinfo) => this.#onMessage(guarded, msg, rinfo))
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'dht socket error'))

    const rpc = krpc({
      socket: guarded,
      bootstrap: this.#bootstrap,
      timeout: QUERY_TIMEOUT_MS,
      // Every host counts as an address, so k-rpc-socket never calls dns.lookup;
      // the send guard then drops whatever is not an IPv4 literal.
      isIP: () => true,
    })
    // Queries are checked before k-rpc adds the sender to its table or bittorrent-dht reads them.
    const sock = rpc.socket
    const emit = sock.emit.bind(sock)
    sock.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'query' && !this.#admit(args[0] as KrpcMessage, args[1] as KrpcRemote)) return false
      return emit(event, ...args)
    }
    this.#rpc = rpc
    const dht = new DHT({ krpc: rpc, bootstrap: this.#bootstrap, verify: verifyRaw, maxValues: MAX_STORED_VALUES, maxPeers: 1 })
    dht.on('error', (err: Error) => this.#log.warn({ err: err.message }, 'dht error'))
    dht.on('warning', (err: Error) => this.#log.debug({ err: err.message }, 'dht warning'))
    rpc.on('query', (query: KrpcMessage, from: KrpcRemote) => this.#onRendezvousQuery(query, from))
    this.#dht = dht
    // The socket was bound before k-rpc-socket saw it: tell bittorrent-dht now (it arms its bucket check).
    guarded.emit('listening')
    this.#timer = setInterval(() => this.#tick(), TICK_MS)
    this.#timer.unref()
    this.#log.debug({ address: this.#init.address, port: this.#port, seeds: this.#bootstrap.length, rendezvous: this.#init.rendezvous }, 'dht started')
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    const dht = this.#dht
    this.#dht = null
    this.#rpc = null
    this.#socket = null
    if (dht) await new Promise<void>((resolve) => dht.destroy(() => resolve()))
  }

  /** Called with each item newly stored or updated in this node's rendezvous (unverified: check it). */
  onAnnounced(handler: (item: SignedItem) => void): void {
    this.#announced = handler
  }

  /** Handler for datagrams whose first byte is not 'd'; the join protocol multiplexes on this port. */
  onOther(handler: (msg: Buffer, from: { address: string; port: number }) => void): void {
    this.#other = handler
  }

  /** Sends a raw datagram from the DHT socket (through the same guard as the DHT's own sends). */
  sendRaw(msg: Buffer, to: { address: string; port: number }): void {
    if (!this.#socket) throw new DhtNotRunningError()
    this.#c.otherOut++
    this.#send(msg, to.port, to.address, undefined, false)
  }

  /**
   * Stores the item at the K closest nodes to its target (BEP 44 put) AND
   * announces it to every bootstrap node's rendezvous (and to our own, if we
   * are one). `stored` counts DHT nodes that took it, `announced` rendezvous.
   */
  async put(item: SignedItem): Promise<{ stored: number; announced: number }> {
    const rpc = this.#running()
    if (!verifyItem(item)) throw new DhtItemError('put() was given an item that does not verify')
    const target = itemTarget(item.k, item.salt)
    const a: Dict = { id: rpc.id, k: item.k, seq: item.seq, sig: item.sig, v: item.v }
    if (item.salt.length > 0) a.salt = item.salt
    let announced = 0
    if (this.#rendezvous && this.#countAnnounce(this.#rendezvous.announce(item, this.#now()), null)) announced++
    const [stored, remote] = await Promise.all([
      this.#store(rpc, target, a),
      Promise.all(this.#bootstrap.map((node) => this.#query(rpc, node, { q: 'qe_announce', a: { ...a } }).then((r) => (r ? 1 : 0)))),
    ])
    announced += remote.reduce<number>((s, x) => s + x, 0)
    this.#log.debug({ target: target.toString('hex'), stored, announced }, 'dht put')
    return { stored, announced }
  }

  /** The newest verified item for (k, salt), or null. Items whose signature fails are refused and counted. */
  async get(k: Buffer, salt: Buffer): Promise<SignedItem | null> {
    const rpc = this.#running()
    const target = itemTarget(k, salt)
    let best: SignedItem | null = null
    const consider = (r: Dict): void => {
      if (r.v === undefined && r.sig === undefined) return
      const item = { k: r.k as Buffer, salt, seq: r.seq as number, v: r.v as Buffer, sig: r.sig as Buffer }
      // Most of the K closest nodes return the very bytes already verified: no need to verify again.
      const b: SignedItem | null = best
      if (b && isBuf(item.sig) && isBuf(item.v) && item.sig.equals(b.sig) && item.seq === b.seq && item.v.equals(b.v)) return
      if (!isBuf(item.k) || !item.k.equals(k) || !verifyItem(item)) {
        this.#refuse('badItems', null, 'an item in a get reply does not verify')
        return
      }
      if (!best || item.seq > best.seq) best = Object.freeze(item)
    }
    // What this node itself stores for others (the lookup below never asks itself).
    const local = this.#dht?._values.get(target.toString('hex'))
    if (local) consider(local as unknown as Dict)
    const visited = await new Promise<number>((resolve) => {
      rpc.closest(
        target,
        { q: 'get', a: { id: rpc.id, target } },
        (res) => {
          if (isDict(res.r)) consider(res.r)
          return true
        },
        (_err, n) => resolve(n),
      )
    })
    this.#c.lookups++
    this.#c.lookupVisited += visited
    return best
  }

  /** Asks every bootstrap node's rendezvous (and our own) for the items it holds under `salt`, page by page; verified items only, the newest per key. */
  async members(salt: Buffer): Promise<SignedItem[]> {
    const rpc = this.#running()
    if (!isBuf(salt) || salt.length > MAX_SALT_BYTES) throw new TypeError(`a salt is at most ${MAX_SALT_BYTES} bytes`)
    const best = new Map<string, SignedItem>()
    const take = (item: SignedItem): void => {
      const key = item.k.toString('hex')
      const held = best.get(key)
      if (!held || item.seq > held.seq) best.set(key, item)
    }
    for (const item of this.#rendezvous?.all(salt, this.#now()) ?? []) take(item)
    await Promise.all(
      this.#bootstrap.map(async (node) => {
        let after: Buffer | null = null
        for (let page = 0; page < MAX_MEMBER_PAGES; page++) {
          const a: Dict = { id: rpc.id, salt }
          if (after) a.after = after
          const r = await this.#query(rpc, node, { q: 'qe_members', a })
          if (!r) return
          if (!Array.isArray(r.items)) return void this.#refuse('malformed', null, 'a members reply without items')
          for (const raw of r.items) {
            const item = isBuf(raw) ? decodeItem(raw) : null
            if (!item) this.#refuse('malformed', null, 'an undecodable item in a members reply')
            else if (!item.salt.equals(salt) || !verifyItem(item)) this.#refuse('badItems', null, 'an item in a members reply does not verify')
            else take(item)
          }
          const next: unknown = r.next
          if (!isBuf(next, TARGET_BYTES) || (after && Buffer.compare(next, after) <= 0)) return
          after = next
        }
      }),
    )
    return [...best.values()].sort((x, y) => Buffer.compare(x.k, y.k))
  }

  stats(): DhtStats {
    return {
      ...this.#c,
      nodes: this.#rpc?.nodes.count() ?? 0,
      rendezvousItems: this.#rendezvous?.size ?? 0,
    }
  }

  #running(): Krpc {
    if (!this.#rpc) throw new DhtNotRunningError()
    return this.#rpc
  }

  /** Every datagram on the socket. */
  #onMessage(guarded: GuardedSocket, msg: Buffer, rinfo: RemoteInfo): void {
    if (msg[0] !== 0x64) {
      this.#c.otherIn++
      if (!this.#other) return
      try {
        this.#other(msg, { address: rinfo.address, port: rinfo.port })
      } catch (err) {
        this.#refuse('handlerErrors', rinfo.address, `onOther handler threw: ${(err as Error).message}`)
      }
      return
    }
    this.#c.packetsIn++
    if (!this.#admitSource(`${rinfo.address}:${rinfo.port}`)) return
    try {
      guarded.emit('message', msg, rinfo)
    } catch (err) {
      this.#refuse('handlerErrors', rinfo.address, `a DHT handler threw: ${(err as Error).message}`)
    }
  }

  /** The only way out of the socket. */
  #send(buf: Buffer, port: number, address: string, cb?: (err?: Error | null) => void, dht = true): void {
    const socket = this.#socket
    if (!socket || !isUnicastV4(address) || !isPort(port)) {
      if (socket) this.#refuse('blockedSends', null, `dropped a send to '${address}:${port}': not a unicast IPv4 literal`)
      if (cb) process.nextTick(cb, new Error('send refused'))
      return
    }
    if (dht) this.#c.packetsOut++
    socket.send(buf, port, address, cb)
  }

  /** The per-source token bucket. */
  #admitSource(key: string): boolean {
    const now = this.#now()
    let b = this.#buckets.get(key)
    if (!b) {
      if (this.#buckets.size >= MAX_SOURCES) this.#forgetSources(now)
      b = { tokens: this.#burst, at: now, dropped: 0, warnedAt: -Infinity }
      this.#buckets.set(key, b)
    }
    b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) * this.#rate) / 1000)
    b.at = now
    if (b.tokens >= 1) {
      b.tokens -= 1
      return true
    }
    this.#c.floodDropped++
    b.dropped++
    if (now - b.warnedAt >= WARN_EVERY_MS) {
      this.#log.warn({ source: key, dropped: b.dropped, limit: this.#rate }, 'dropping a DHT flood from one source')
      b.warnedAt = now
      b.dropped = 0
    }
    return false
  }

  /** Forgets sources whose bucket has refilled; if that is not enough, the oldest half. */
  #forgetSources(now: number): void {
    const full = (this.#burst / this.#rate) * 1000
    for (const [key, b] of this.#buckets) if (now - b.at >= full && now - b.warnedAt >= WARN_EVERY_MS) this.#buckets.delete(key)
    if (this.#buckets.size < MAX_SOURCES) return
    let drop = this.#buckets.size / 2
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break
      this.#buckets.delete(key)
    }
  }

  /** Checks a query's fields before k-rpc or bittorrent-dht reads them. False = dropped. */
  #admit(msg: KrpcMessage, from: KrpcRemote): boolean {
    this.#c.queriesIn++
    const q = isBuf(msg.q) ? msg.q.toString('latin1') : null
    const a = msg.a
    if (q === null || !isBuf(msg.t) || msg.t.length === 0 || !isDict(a) || !isBuf(a.id, TARGET_BYTES)) return this.#refuse('malformed', from.address, 'a malformed DHT query')
    switch (q) {
      case 'ping':
        return true
      case 'find_node':
      case 'get':
        return isBuf(a.target, TARGET_BYTES) || this.#refuse('malformed', from.address, `a ${q} query without a 20-byte target`)
      case 'put':
        return this.#admitPut(msg, a, from)
      case 'qe_announce':
      case 'qe_members':
        return true // checked in #onRendezvousQuery
      default:
        return this.#refuse('unsupported', from.address, `an unsupported DHT query '${q.slice(0, 32)}'`)
    }
  }

  #admitPut(msg: KrpcMessage, a: Dict, from: KrpcRemote): boolean {
    if (a.k === undefined && a.sig === undefined) return this.#refuse('unsupported', from.address, 'an immutable put (this DHT stores signed items only)')
    if (isBuf(a.v) && a.v.length > MAX_VALUE_BYTES) return this.#refuse('oversize', from.address, 'a put with a value over 1000 bytes', from, msg, [205, 'message (v field) too big'])
    if (isBuf(a.salt) && a.salt.length > MAX_SALT_BYTES) return this.#refuse('oversize', from.address, 'a put with a salt over 64 bytes', from, msg, [207, 'salt (salt field) too big'])
    const salt = a.salt === undefined ? Buffer.alloc(0) : a.salt
    const item = { k: a.k as Buffer, salt: salt as Buffer, seq: a.seq as number, v: a.v as Buffer, sig: a.sig as Buffer }
    const typed = isBuf(a.token) && isBuf(item.k, KEY_BYTES) && isBuf(item.sig, SIG_BYTES) && isSeq(item.seq) && isBuf(item.v) && isBuf(item.salt) && (a.cas === undefined || isSeq(a.cas))
    if (!typed) return this.#refuse('malformed', from.address, 'a malformed put')
    if (!verifyItem(item)) return this.#refuse('badItems', from.address, 'a put whose signature does not verify', from, msg, [206, 'invalid signature'])
    // bittorrent-dht signs over a salt key whenever one is present: BEP 44 leaves an empty salt out.
    if (item.salt.length === 0) delete a.salt
    const held = this.#dht?._values.get(itemTarget(item.k, item.salt).toString('hex'))
    if (held && typeof held.seq === 'number' && item.seq <= held.seq) this.#refuse('staleSeq', from.address, 'a put whose seq is not above the stored one')
    return true // bittorrent-dht checks the token, verifies again, and answers (302 for a stale seq)
  }

  /** qe_announce and qe_members, after #admit. */
  #onRendezvousQuery(msg: KrpcMessage, from: KrpcRemote): void {
    const q = isBuf(msg.q) ? msg.q.toString('latin1') : ''
    if (q !== 'qe_announce' && q !== 'qe_members') return
    const rpc = this.#rpc
    if (!rpc) return
    const a = msg.a as Dict
    if (!this.#rendezvous) return rpc.error(from, msg, [204, 'not a rendezvous'])
    const salt = a.salt === undefined ? Buffer.alloc(0) : a.salt
    if (!isBuf(salt)) return void this.#refuse('malformed', from.address, `a ${q} with a bad salt`)
    if (salt.length > MAX_SALT_BYTES) return void this.#refuse('oversize', from.address, `a ${q} with a salt over 64 bytes`, from, msg, [207, 'salt (salt field) too big'])
    if (q === 'qe_announce') {
      if (isBuf(a.v) && a.v.length > MAX_VALUE_BYTES) return void this.#refuse('oversize', from.address, 'an announce with a value over 1000 bytes', from, msg, [205, 'message (v field) too big'])
      const item = { k: a.k as Buffer, salt, seq: a.seq as number, v: a.v as Buffer, sig: a.sig as Buffer }
      const result = this.#rendezvous.announce(item, this.#now())
      if (this.#countAnnounce(result, from.address)) {
        rpc.response(from, msg, { id: rpc.id })
        // A member starting up announces here first: this node (a member too, perhaps) hears of it at once.
        if (result === 'stored') this.#announced?.(item)
        return
      }
      const errors: Record<Exclude<AnnounceResult, 'stored' | 'refreshed'>, [number, string]> = {
        'malformed': [203, 'malformed announce'],
        'bad-signature': [206, 'invalid signature'],
        'stale': [302, 'sequence number less than current'],
        'full': [202, 'rendezvous full'],
      }
      return rpc.error(from, msg, errors[result as keyof typeof errors])
    }
    const after = a.after
    if (after !== undefined && !isBuf(after, TARGET_BYTES)) return void this.#refuse('malformed', from.address, 'a qe_members with a bad cursor')
    const page = this.#rendezvous.page(salt, after ?? null, this.#now())
    const r: Dict = { id: rpc.id, items: page.items.map(encodeItem) }
    if (page.next) r.next = page.next
    rpc.response(from, msg, r)
  }

  /** Counts an announce's refusal; true when it was kept. */
  #countAnnounce(result: AnnounceResult, source: string | null): boolean {
    switch (result) {
      case 'stored':
      case 'refreshed':
        return true
      case 'malformed':
        return this.#refuse('malformed', source, 'a malformed announce')
      case 'bad-signature':
        return this.#refuse('badItems', source, 'an announce whose signature does not verify')
      case 'stale':
        return this.#refuse('staleSeq', source, 'an announce whose seq is not above the held one')
      case 'full':
        return this.#refuse('rendezvousFull', source, 'an announce refused: the rendezvous is full')
    }
  }

  /**
   * Counts a refusal, logs it (warn at most once a minute per kind, debug
   * otherwise) and, when asked, answers the query with a KRPC error. Always false.
   */
  #refuse(kind: Refusal, source: string | null, what: string, to?: KrpcRemote, query?: KrpcMessage, error?: [number, string]): false {
    this.#c[kind]++
    this.#warnings.warn(kind, { source }, what)
    if (to && query && error && this.#rpc) this.#rpc.error(to, query, error)
    return false
  }

  #query(rpc: Krpc, node: KrpcNode, message: KrpcQuery): Promise<Dict | null> {
    return new Promise((resolve) => {
      rpc.query(node, message, (err, res) => resolve(!err && res && isDict(res.r) ? res.r : null))
    })
  }

  /** BEP 44 put: a get-lookup collects the closest nodes' tokens, then the K closest get the put. */
  async #store(rpc: Krpc, target: Buffer, a: Dict): Promise<number> {
    const found = new Map<string, KrpcNode & { id: Buffer }>()
    await new Promise<void>((resolve) => {
      rpc.closest(
        target,
        { q: 'get', a: { id: rpc.id, target } },
        (res, from) => {
          const r = res.r
          if (isDict(r) && isBuf(r.token) && isBuf(r.id, TARGET_BYTES)) found.set(`${from.address}:${from.port}`, { id: r.id, host: from.address, port: from.port, token: r.token })
          return true
        },
        () => resolve(),
      )
    })
    const closest = [...found.values()].sort((x, y) => xorCompare(x.id, y.id, target)).slice(0, rpc.k)
    if (closest.length === 0) return 0
    return new Promise<number>((resolve) => rpc.queryAll(closest, { q: 'put', a: { ...a } }, null, (_err, hits) => resolve(hits)))
  }

  #tick(): void {
    const now = this.#now()
    const dropped = this.#rendezvous?.sweep(now) ?? 0
    if (dropped > 0) this.#log.debug({ dropped }, 'rendezvous entries expired')
    const full = (this.#burst / this.#rate) * 1000
    for (const [key, b] of this.#buckets) if (now - b.at >= full && now - b.warnedAt >= WARN_EVERY_MS) this.#buckets.delete(key)
  }
}
