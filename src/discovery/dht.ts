/**
 * The network's private DHT (bittorrent-dht on k-rpc), on its own UDP
 * socket, and a bootstrap node's rendezvous.
 *
 * Private: the only seeds are the configured bootstrap nodes. k-rpc turns a
 * `bootstrap` of `false`, `true` or nothing into the public BitTorrent
 * routers, so the k-rpc instance is built here with an explicit list, and
 * every datagram goes through `GuardedSocket`, which sends only to IP
 * literals (a host name, like the public routers', is dropped and counted)
 * and drops queries beyond a per-source token bucket.
 *
 * Rendezvous (bootstrap nodes, `rendezvous: true`): two KRPC queries of our
 * own, which bittorrent-dht ignores and we answer. `qe_announce` carries a
 * signed item; it is kept (verified, newer seq only, bounded, 2 h) under its
 * salt. `qe_members` returns a page of the items held under a salt. The
 * rendezvous cannot read values (they are sealed) and admits no one; every
 * client verifies every item it gets.
 *
 * Datagrams whose first byte is not 'd' (a bencoded dict) are not DHT: they
 * go to `onOther` (invite joins multiplex on this port).
 */
import { createPublicKey, verify as edVerify } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { EventEmitter } from 'node:events'
import { isIP } from 'node:net'
import DHT from 'bittorrent-dht'
import krpc, { type Krpc, type KrpcMessage, type KrpcPeer } from 'k-rpc'
import type { Logger } from '../log.js'
import { itemFrom, itemTarget, verifyItem, type SignedItem } from './bep44.js'

export interface DhtInit {
  /** Bind address (an IPv4 literal: the DHT runs over IPv4). */
  readonly address: string
  /** 0 = ephemeral. */
  readonly port: number
  /** IP literals; the only seeds. `[]`: none (a first bootstrap node). */
  readonly bootstrap: readonly { readonly host: string; readonly port: number }[]
  /** Serve `qe_announce` / `qe_members` (bootstrap nodes). */
  readonly rendezvous: boolean
  /** Queries a source may send per second (burst: twice that). Default 50. */
  readonly maxQueriesPerSecondPerSource?: number
  /** Items a rendezvous holds at most. Default 10,000. */
  readonly maxItems?: number
}

export interface DhtComponents {
  readonly log: Logger
  readonly now?: () => number
}

export interface DhtStats {
  readonly nodes: number
  readonly packetsIn: number
  readonly packetsOut: number
  readonly queriesIn: number
  readonly floodDropped: number
  readonly badItems: number
  readonly staleItems: number
  readonly blockedSends: number
  readonly rendezvousItems: number
  readonly other: number
}

/** Items per `qe_members` page: ~1.4 KB each, so a page stays one ~6 KB datagram. */
export const MEMBERS_PAGE = 4
/** How long a rendezvous keeps an item after its last announce. */
const RENDEZVOUS_TTL_MS = 2 * 60 * 60_000
const MAX_PAGES = 64

export class Dht {
  readonly #init: DhtInit
  readonly #log: Logger
  readonly #now: () => number
  #socket: GuardedSocket | null = null
  #dht: DHT | null = null
  #rpc: Krpc | null = null
  #otherHandler: ((msg: Buffer, from: { address: string; port: number }) => void) | null = null
  /** Rendezvous: target hex → item and when it was last announced. */
  readonly #held = new Map<string, { item: SignedItem; at: number }>()
  #badItems = 0
  #staleItems = 0
  #other = 0
  #queriesIn = 0

  constructor(init: DhtInit, components: DhtComponents) {
    this.#init = init
    this.#log = components.log
    this.#now = components.now ?? Date.now
  }

  get port(): number {
    return this.#socket?.address().port ?? 0
  }

  async start(): Promise<void> {
    const socket = new GuardedSocket({ rate: this.#init.maxQueriesPerSecondPerSource ?? 50, log: this.#log, now: this.#now, onOther: (m, r) => this.#onOther(m, r) })
    await socket.bind(this.#init.port, this.#init.address)
    this.#socket = socket
    const bootstrap = this.#init.bootstrap.filter((b) => isIP(b.host) === 4).map((b) => ({ host: b.host, port: b.port }))
    // An explicit array, never false/true/undefined (those mean the public routers to k-rpc).
    const rpc = krpc({ bootstrap, socket, timeout: 1000 })
    this.#rpc = rpc
    const dht = new DHT({ krpc: rpc, bootstrap, verify: (sig: Uint8Array, msg: Uint8Array, k: Uint8Array) => verifySig(sig, msg, k) })
    this.#dht = dht
    dht.on('warning', (err: Error) => this.#log.debug({ err: err.message }, 'DHT warning'))
    dht.on('error', (err: Error) => this.#log.warn({ err: err.message }, 'DHT error'))
    rpc.on('query', (q: KrpcMessage, peer: KrpcPeer) => this.#onQuery(q, peer))
  }

  async stop(): Promise<void> {
    const dht = this.#dht
    this.#dht = null
    this.#rpc = null
    if (dht) await new Promise<void>((r) => dht.destroy(() => r()))
    this.#socket?.close()
    this.#socket = null
  }

  onOther(handler: (msg: Buffer, from: { address: string; port: number }) => void): void {
    this.#otherHandler = handler
  }

  sendRaw(msg: Buffer, to: { address: string; port: number }): void {
    this.#socket?.send(msg, 0, msg.length, to.port, to.address)
  }

  /** Stores the item at the K closest nodes to its target and announces it to every bootstrap node's rendezvous. */
  async put(item: SignedItem): Promise<{ stored: number }> {
    const dht = this.#dht
    const rpc = this.#rpc
    if (!dht || !rpc) return { stored: 0 }
    const announced = this.#init.bootstrap.map(
      (b) =>
        new Promise<number>((resolve) =>
          rpc.query({ host: b.host, port: b.port }, { q: 'qe_announce', a: { k: item.k, salt: item.salt, seq: item.seq, sig: item.sig, v: item.v } }, (err) => resolve(err ? 0 : 1)),
        ),
    )
    const stored = new Promise<number>((resolve) => {
      dht.put({ k: item.k, salt: item.salt, seq: item.seq, v: item.v, sig: item.sig }, (err, _hash, n) => resolve(err ? 0 : n))
    })
    const counts = await Promise.all([stored, ...announced])
    return { stored: counts.reduce((a, b) => a + b, 0) }
  }

  /** The newest verified item for (k, salt), or null. */
  async get(k: Buffer, salt: Buffer): Promise<SignedItem | null> {
    const dht = this.#dht
    if (!dht) return null
    const target = itemTarget(k, salt)
    const res = await new Promise<ReturnType<typeof itemFrom>>((resolve) =>
      dht.get(target, { salt, cache: false }, (err, r) => resolve(err || !r ? null : itemFrom({ ...r, k: r.k ?? k, salt }))),
    )
    if (res && !verifyItem(res)) {
      this.#badItems++
      return null
    }
    const held = this.#held.get(target.toString('hex'))?.item
    return held && (!res || held.seq > res.seq) ? held : res
  }

  /** Every item the bootstrap nodes' rendezvous hold under `salt` (paged), verified. */
  async members(salt: Buffer): Promise<SignedItem[]> {
    const rpc = this.#rpc
    if (!rpc) return []
    const byTarget = new Map<string, SignedItem>()
    const keep = (item: SignedItem) => {
      const id = itemTarget(item.k, item.salt).toString('hex')
      const held = byTarget.get(id)
      if (!held || held.seq < item.seq) byTarget.set(id, item)
    }
    if (this.#init.rendezvous) for (const { item } of this.#held.values()) if (item.salt.equals(salt)) keep(item)
    await Promise.all(
      this.#init.bootstrap.map(async (b) => {
        let after: Buffer | null = null
        for (let page = 0; page < MAX_PAGES; page++) {
          const r = await new Promise<KrpcMessage | null>((resolve) =>
            rpc.query({ host: b.host, port: b.port }, { q: 'qe_members', a: { salt, ...(after ? { after } : {}) } }, (err, res) => resolve(err ? null : (res ?? null))),
          )
          const items = Array.isArray(r?.r?.items) ? (r?.r?.items as unknown[]) : []
          for (const raw of items) {
            const item = itemFrom(raw)
            if (!item || !item.salt.equals(salt) || !verifyItem(item)) {
              this.#badItems++
              continue
            }
            keep(item)
          }
          const next = r?.r?.next
          if (!(next instanceof Uint8Array) || items.length === 0) break
          after = Buffer.from(next)
        }
      }),
    )
    return [...byTarget.values()]
  }

  stats(): DhtStats {
    const s = this.#socket
    return {
      nodes: this.#dht?.nodes.count() ?? 0,
      packetsIn: s?.packetsIn ?? 0,
      packetsOut: s?.packetsOut ?? 0,
      queriesIn: this.#queriesIn,
      floodDropped: s?.floodDropped ?? 0,
      badItems: this.#badItems,
      staleItems: this.#staleItems,
      blockedSends: s?.blockedSends ?? 0,
      rendezvousItems: this.#held.size,
      other: this.#other,
    }
  }

  #onOther(msg: Buffer, r: RemoteInfo): void {
    this.#other++
    try {
      this.#otherHandler?.(msg, { address: r.address, port: r.port })
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'a datagram handler failed')
    }
  }

  #onQuery(q: KrpcMessage, peer: KrpcPeer): void {
    this.#queriesIn++
    const rpc = this.#rpc
    if (!rpc || !this.#init.rendezvous) return
    const type = q.q === undefined ? '' : Buffer.from(q.q as Uint8Array).toString()
    if (type === 'qe_announce') {
      const item = itemFrom(q.a)
      if (!item || !verifyItem(item)) {
        this.#badItems++
        this.#log.warn({ from: `${peer.address ?? peer.host}:${peer.port}` }, 'refused an announced record: bad signature or malformed')
        return rpc.error(peer, q, [203, 'bad item'])
      }
      const id = itemTarget(item.k, item.salt).toString('hex')
      const held = this.#held.get(id)
      if (held && held.item.seq > item.seq) {
        this.#staleItems++
        return rpc.error(peer, q, [302, 'sequence number less than current'])
      }
      this.#prune()
      if (!held && this.#held.size >= (this.#init.maxItems ?? 10_000)) return rpc.error(peer, q, [202, 'rendezvous full'])
      this.#held.set(id, { item, at: this.#now() })
      return rpc.response(peer, q, { id: rpc.id })
    }
    if (type === 'qe_members') {
      const salt = q.a?.salt
      if (!(salt instanceof Uint8Array)) return rpc.error(peer, q, [203, 'no salt'])
      const after = q.a?.after instanceof Uint8Array ? Buffer.from(q.a.after).toString('hex') : ''
      this.#prune()
      const ids = [...this.#held.keys()].filter((id) => id > after && this.#held.get(id)?.item.salt.equals(Buffer.from(salt))).sort()
      const page = ids.slice(0, MEMBERS_PAGE)
      const items = page.map((id) => {
        const it = (this.#held.get(id) as { item: SignedItem }).item
        return { k: it.k, salt: it.salt, seq: it.seq, sig: it.sig, v: it.v }
      })
      const last = page.at(-1)
      return rpc.response(peer, q, { id: rpc.id, items, ...(ids.length > page.length && last ? { next: Buffer.from(last, 'hex') } : {}) })
    }
  }

  #prune(): void {
    const cutoff = this.#now() - RENDEZVOUS_TTL_MS
    for (const [id, h] of this.#held) if (h.at < cutoff) this.#held.delete(id)
  }
}

/**
 * The socket k-rpc runs on: a real UDP socket behind a small gate. Sends
 * only to IP literals; queries beyond a per-source token bucket are dropped
 * (one log line per source per minute); non-DHT datagrams go to `onOther`.
 * Looks like a dgram socket to k-rpc-socket (on/send/bind/address/close).
 */
class GuardedSocket extends EventEmitter {
  readonly #s: Socket = createSocket('udp4')
  readonly #rate: number
  readonly #log: Logger
  readonly #now: () => number
  readonly #onOtherDatagram: (m: Buffer, r: RemoteInfo) => void
  readonly #buckets = new Map<string, { tokens: number; at: number; warned: number }>()
  packetsIn = 0
  packetsOut = 0
  floodDropped = 0
  blockedSends = 0

  constructor(o: { rate: number; log: Logger; now: () => number; onOther: (m: Buffer, r: RemoteInfo) => void }) {
    super()
    this.#rate = o.rate
    this.#log = o.log
    this.#now = o.now
    this.#onOtherDatagram = o.onOther
    this.#s.on('message', (m, r) => this.#onMessage(m, r))
    this.#s.on('error', (err) => this.emit('error', err))
    this.#s.on('close', () => this.emit('close'))
  }

  bind(port: number, address: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err)
      this.#s.once('error', onError)
      this.#s.bind(port, address, () => {
        this.#s.off('error', onError)
        this.emit('listening')
        resolve()
      })
    })
  }

  address(): { address: string; port: number } {
    return this.#s.address()
  }

  send(buf: Uint8Array, offset: number, length: number, port: number, host: string, cb?: (err: Error | null) => void): void {
    if (isIP(host) !== 4) {
      this.blockedSends++
      this.#log.warn({ host, port }, 'the DHT tried to send to a host name or a non-IPv4 address: dropped')
      cb?.(null)
      return
    }
    this.packetsOut++
    this.#s.send(buf, offset, length, port, host, (err) => cb?.(err ?? null))
  }

  close(): void {
    try {
      this.#s.close()
    } catch {
      // already closed
    }
  }

  #onMessage(m: Buffer, r: RemoteInfo): void {
    this.packetsIn++
    if (m[0] !== 0x64) return this.#onOtherDatagram(m, r)
    // Every datagram of a source counts against its bucket: replies come at the pace of our own queries.
    const now = this.#now()
    let b = this.#buckets.get(r.address)
    if (!b) {
      if (this.#buckets.size > 50_000) this.#buckets.clear()
      b = { tokens: this.#rate * 2, at: now, warned: 0 }
      this.#buckets.set(r.address, b)
    }
    b.tokens = Math.min(this.#rate * 2, b.tokens + ((now - b.at) / 1000) * this.#rate)
    b.at = now
    if (b.tokens < 1) {
      this.floodDropped++
      if (now - b.warned >= 60_000) {
        b.warned = now
        this.#log.warn({ from: r.address, perSecond: this.#rate }, 'DHT flood: dropping datagrams from a source over its rate')
      }
      return
    }
    b.tokens--
    this.emit('message', m, r)
  }
}

function verifySig(sig: Uint8Array, msg: Uint8Array, k: Uint8Array): boolean {
  // bittorrent-dht hands us BEP 44's signing buffer; verifyItem wants the parts, so verify directly.
  return verifyRaw(Buffer.from(sig), Buffer.from(msg), Buffer.from(k))
}

function verifyRaw(sig: Buffer, msg: Buffer, k: Buffer): boolean {
  if (sig.length !== 64 || k.length !== 32) return false
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.toString('base64url') }, format: 'jwk' })
    return edVerify(null, msg, key, sig)
  } catch {
    return false
  }
}
