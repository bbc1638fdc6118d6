/**
 * The rendezvous store: a bootstrap node's extra role. It keeps the signed
 * items members announce to it (`qe_announce`) and hands them out a page at a
 * time by salt (`qe_members`). It cannot read the values (the caller encrypts
 * them) and admits no one: it only checks BEP 44 signatures and sequence
 * numbers, stores, and returns. Every client verifies every item it gets.
 *
 * Bounded: at most `maxItems` entries; an entry is dropped `ttlMs` after its
 * last announce. When full, a new target is refused (existing members keep
 * their places; a member re-announces well inside the TTL). Pure: time comes
 * in as `now`, nothing here touches a socket.
 */
import { encodeItem, isWellFormed, itemTarget, verifyItem, type SignedItem } from './bep44.js'

/** Entries are dropped this long after their last announce. */
export const RENDEZVOUS_TTL_MS = 2 * 60 * 60 * 1000
/** Items held at most (~1.2 KB each at the limits: ~5 MB). */
export const RENDEZVOUS_MAX_ITEMS = 4096
/**
 * A `qe_members` page holds items whose encodings sum to at most this many
 * bytes (always at least one item), so a response stays one datagram of
 * about 1.2-1.3 KB: under a 1500-byte MTU without fragmentation.
 */
export const MEMBERS_PAGE_BYTES = 1100
/** …and at most this many items. */
export const MEMBERS_PAGE_ITEMS = 32

/** What an announce came to. Everything but `stored` and `refreshed` is a refusal. */
export type AnnounceResult = 'stored' | 'refreshed' | 'bad-signature' | 'malformed' | 'stale' | 'full'

interface Entry {
  readonly item: SignedItem
  readonly target: string // hex
  lastAnnounce: number
}

export interface RendezvousOptions {
  readonly maxItems?: number
  readonly ttlMs?: number
}

export class RendezvousStore {
  readonly #maxItems: number
  readonly #ttlMs: number
  /** salt (hex) → target (hex) → entry. */
  readonly #bySalt = new Map<string, Map<string, Entry>>()
  #size = 0

  constructor(opts: RendezvousOptions = {}) {
    this.#maxItems = opts.maxItems ?? RENDEZVOUS_MAX_ITEMS
    this.#ttlMs = opts.ttlMs ?? RENDEZVOUS_TTL_MS
  }

  get size(): number {
    return this.#size
  }

  /**
   * Verifies and keeps `item`. A higher seq replaces what is held for its
   * target; the same seq with the same signature refreshes the entry's TTL
   * (a re-announce of an unchanged item); anything else is `stale`.
   */
  announce(item: SignedItem, now: number): AnnounceResult {
    if (!isWellFormed(item)) return 'malformed'
    if (!verifyItem(item)) return 'bad-signature'
    const saltKey = item.salt.toString('hex')
    const target = itemTarget(item.k, item.salt).toString('hex')
    let group = this.#bySalt.get(saltKey)
    const held = group?.get(target)
    if (held && now - held.lastAnnounce <= this.#ttlMs) {
      if (item.seq === held.item.seq && item.sig.equals(held.item.sig)) {
        held.lastAnnounce = now
        return 'refreshed'
      }
      if (item.seq <= held.item.seq) return 'stale'
    }
    if (!held && this.#size >= this.#maxItems) {
      this.sweep(now)
      if (this.#size >= this.#maxItems) return 'full'
      group = this.#bySalt.get(saltKey)
    }
    if (!group) {
      group = new Map()
      this.#bySalt.set(saltKey, group)
    }
    if (!group.has(target)) this.#size++
    group.set(target, { item, target, lastAnnounce: now })
    return 'stored'
  }

  /**
   * One page of the live items under `salt`, in target order, starting after
   * the target `after` (null: from the start). `next` is the cursor for the
   * following page, or null when this page is the last.
   */
  page(salt: Buffer, after: Buffer | null, now: number): { items: SignedItem[]; next: Buffer | null } {
    const group = this.#bySalt.get(salt.toString('hex'))
    if (!group) return { items: [], next: null }
    const from = after ? after.toString('hex') : ''
    const live = [...group.values()].filter((e) => e.target > from && now - e.lastAnnounce <= this.#ttlMs).sort((a, b) => (a.target < b.target ? -1 : 1))
    const items: SignedItem[] = []
    let bytes = 0
    for (const e of live) {
      const size = encodeItem(e.item).length
      if (items.length > 0 && (bytes + size > MEMBERS_PAGE_BYTES || items.length >= MEMBERS_PAGE_ITEMS)) break
      items.push(e.item)
      bytes += size
    }
    const last = live[items.length - 1]
    const more = live.length > items.length
    return { items, next: more && last ? Buffer.from(last.target, 'hex') : null }
  }

  /** Every live item under `salt` (for a rendezvous node's own lookups). */
  all(salt: Buffer, now: number): SignedItem[] {
    const group = this.#bySalt.get(salt.toString('hex'))
    if (!group) return []
    return [...group.values()].filter((e) => now - e.lastAnnounce <= this.#ttlMs).map((e) => e.item)
  }

  /** Drops entries past their TTL; returns how many. */
  sweep(now: number): number {
    let dropped = 0
    for (const [saltKey, group] of this.#bySalt) {
      for (const [target, e] of group) {
        if (now - e.lastAnnounce > this.#ttlMs) {
          group.delete(target)
          dropped++
        }
      }
      if (group.size === 0) this.#bySalt.delete(saltKey)
    }
    this.#size -= dropped
    return dropped
  }
}
