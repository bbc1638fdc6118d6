/**
 * The members this node knows: the newest verified record of each key.
 *
 * Every record offered (from the DHT, a rendezvous, the LAN or a peer) goes
 * through `offer`: opened and checked (`openRecord`), then kept only when its
 * sequence number is higher than the one held for that key. A refusal is a
 * value with its reason; each reason has a counter. No clock or socket here:
 * the caller passes `now`.
 */
import type { Endpoint } from '../config/types.js'
import type { Certificate } from '../pki/index.js'
import type { SignedItem } from './bep44.js'
import { openRecord, type NetworkKeys, type RecordRefusal } from './record.js'

/** Where a record came from. */
export type RecordSource = 'self' | 'dht' | 'rendezvous' | 'lan' | 'pex'

export interface Member {
  readonly key: string
  readonly cert: Certificate
  /** Its record's endpoints, those seen on a shared LAN segment first. */
  readonly endpoints: readonly Endpoint[]
  /** The endpoints confirmed on a shared LAN segment (its announcement came from that address). */
  readonly lan: readonly Endpoint[]
  /** Its discovery endpoint when it serves as a bootstrap node. */
  readonly bootstrap: Endpoint | null
  readonly seq: number
  /** The signed item itself, to pass on (peer exchange, the DHT). */
  readonly item: SignedItem
  readonly via: RecordSource
  /** When this record was accepted (ms since the epoch). */
  readonly since: number
}

export type OfferResult =
  | { readonly outcome: 'new' | 'updated'; readonly member: Member }
  /** Nothing changed: the same record again (a refresh), or a LAN hint already known. */
  | { readonly outcome: 'same'; readonly member: Member }
  | { readonly outcome: 'refused'; readonly refusal: RecordRefusal; readonly reason: string; readonly key: string }

export class MemberStore {
  readonly #keys: NetworkKeys
  readonly #selfKey: string
  readonly #members = new Map<string, Member>()
  /** LAN sources seen per key (address), kept across record updates. */
  readonly #lanSeen = new Map<string, Set<string>>()
  #revoked: ReadonlySet<string> = new Set()
  readonly refusals: Record<RecordRefusal, number> = {
    'bad-signature': 0,
    'other-network': 0,
    malformed: 0,
    'key-mismatch': 0,
    'cert-invalid': 0,
    'cert-expired': 0,
    revoked: 0,
    replayed: 0,
  }

  constructor(keys: NetworkKeys, selfKey: string) {
    this.#keys = keys
    this.#selfKey = selfKey
  }

  /**
   * Offers a record. `lanFrom` is the source address of a LAN announcement
   * that carried it: that address, when the record lists it, is a LAN path.
   * This node's own record is never a member (offers of it are `same`-less
   * no-ops reported as refused 'replayed' when older).
   */
  offer(item: SignedItem, via: RecordSource, now: number, lanFrom?: string): OfferResult {
    const key = item.k.toString('base64')
    const held = this.#members.get(key)
    if (held && item.seq < held.seq) return this.#refuse('replayed', `sequence ${item.seq} is older than the ${held.seq} held`, key)
    if (held && item.seq === held.seq && item.sig.equals(held.item.sig)) {
      if (lanFrom === undefined) return { outcome: 'same', member: held }
      const before = held.lan.length
      const member = this.#withLan(held, lanFrom)
      return member.lan.length === before ? { outcome: 'same', member } : { outcome: 'updated', member }
    }
    if (held && item.seq === held.seq) return this.#refuse('replayed', `a different record with the same sequence ${item.seq}`, key)
    const r = openRecord(item, this.#keys, { now, revoked: this.#revoked })
    if (!r.ok) return this.#refuse(r.refusal, r.reason, key)
    if (key === this.#selfKey) return { outcome: 'same', member: this.#member(key, r.record, item, 'self', now, held) }
    let member = this.#member(key, r.record, item, via, now, held)
    if (lanFrom !== undefined) member = this.#withLan(member, lanFrom)
    else this.#members.set(key, member)
    return { outcome: held ? 'updated' : 'new', member }
  }

  /** The revocation list changed: revoked members leave. Returns the keys that left. */
  setRevoked(revoked: ReadonlySet<string>): string[] {
    this.#revoked = revoked
    const gone: string[] = []
    for (const key of [...this.#members.keys()]) if (revoked.has(key)) gone.push(key)
    for (const key of gone) this.#members.delete(key)
    return gone
  }

  /** Members whose certificate has expired leave. Returns the keys that left. */
  expire(now: number): string[] {
    const gone = [...this.#members.values()].filter((m) => m.cert.notAfter <= now).map((m) => m.key)
    for (const key of gone) this.#members.delete(key)
    return gone
  }

  get(key: string): Member | undefined {
    return this.#members.get(key)
  }

  /** Sorted by key. */
  list(): Member[] {
    return [...this.#members.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  get size(): number {
    return this.#members.size
  }

  #member(key: string, rec: { cert: Certificate; endpoints: readonly Endpoint[]; bootstrap: Endpoint | null }, item: SignedItem, via: RecordSource, now: number, held: Member | undefined): Member {
    const seen = this.#lanSeen.get(key) ?? new Set<string>()
    const lan = rec.endpoints.filter((e) => seen.has(e.host))
    return Object.freeze({
      key,
      cert: rec.cert,
      endpoints: orderLanFirst(rec.endpoints, lan),
      lan,
      bootstrap: rec.bootstrap,
      seq: item.seq,
      item,
      via: held && via === 'self' ? held.via : via,
      since: now,
    })
  }

  #withLan(m: Member, address: string): Member {
    let seen = this.#lanSeen.get(m.key)
    if (!seen) this.#lanSeen.set(m.key, (seen = new Set()))
    seen.add(address)
    const lan = m.endpoints.filter((e) => seen.has(e.host))
    const next = Object.freeze({ ...m, lan, endpoints: orderLanFirst(m.endpoints, lan) })
    this.#members.set(m.key, next)
    return next
  }

  #refuse(refusal: RecordRefusal, reason: string, key: string): OfferResult {
    this.refusals[refusal]++
    return { outcome: 'refused', refusal, reason, key }
  }
}

function orderLanFirst(all: readonly Endpoint[], lan: readonly Endpoint[]): Endpoint[] {
  return [...lan, ...all.filter((e) => !lan.includes(e))]
}
