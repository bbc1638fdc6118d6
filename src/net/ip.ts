/**
 * The one wrapper around `ipaddr.js`. Every address and prefix QuicEther reads
 * (from a config, from the kernel, from a peer) goes through here, so the same
 * thing is always spelled the same way: strict dotted quads (no `10`, `010.1.1.1`
 * or `0x0a…`), IPv6 without zone ids, RFC 5952 text, host bits cleared.
 *
 * Two faces over one parser:
 * - `parseAddress` / `parsePrefix` take what a person wrote and return
 *   `{ value }` or `{ error, code }` with a message; they never throw;
 * - `parseCidr`, `canonicalIp`, `canonicalCidr`, `ipToBytes`… take text that is
 *   already checked (kernel records, normalized config) and throw
 *   `InvalidAddressError` when it is not: that is a bug upstream.
 *
 * Results are pure, so they are remembered (frozen) in bounded tables: the same
 * texts come back on every config load and every kernel observe.
 */
import ipaddr from 'ipaddr.js'
import { InvalidAddressError } from './errors.js'
import type { Family, IpAddress, Prefix } from './types.js'
import { showValue } from '../show-value.js'

/** Why a text is not an address or prefix; the config turns these into diagnostics of the same name. */
export type NetParseCode = 'bad-ip' | 'bad-cidr' | 'host-bits-set'

export type Parsed<T, C extends string = NetParseCode> = { value: T; error?: undefined; code?: undefined } | { value?: undefined; error: string; code: C }

/** Bits in an address of each family. */
export const WIDTH: Readonly<Record<Family, number>> = { 4: 32, 6: 128 }

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'
const V4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`)
const LENGTH = /^(0|[1-9][0-9]{0,2})$/

/** Entries per table before it is emptied; a 10,000-route diff fits several times over. */
const MEMO_LIMIT = 100_000

const tables: Array<Map<unknown, unknown>> = []

/**
 * Empties every table. Never needed for correctness; the config loader calls it at the
 * start of each load so a load costs the same whatever ran before it (and benchmarks
 * measure a cold load).
 */
export function clearIpCaches(): void {
  for (const t of tables) t.clear()
}

function memo<K, V>(compute: (key: K) => V): (key: K) => V {
  const table = new Map<K, V>()
  tables.push(table as Map<unknown, unknown>)
  return (key) => {
    let v = table.get(key)
    if (v === undefined) {
      if (table.size >= MEMO_LIMIT) table.clear()
      v = compute(key)
      table.set(key, v)
    }
    return v
  }
}

function toBig(bytes: ArrayLike<number>): bigint {
  let n = 0n
  for (let i = 0; i < bytes.length; i++) n = (n << 8n) | BigInt(bytes[i]!)
  return n
}

function fromBig(n: bigint, family: Family): string {
  if (family === 4) {
    const v = Number(n)
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
  }
  const bytes = new Array<number>(16)
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return ipaddr.fromByteArray(bytes).toString()
}

/** Strict parse, or `null`. The only place that decides what an address looks like. */
function strictIp(text: string): IpAddress | null {
  const m = V4.exec(text)
  if (m) {
    const bytes = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]
    return Object.freeze({ family: 4, text: bytes.join('.'), n: toBig(bytes) })
  }
  if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return null
  const a = ipaddr.IPv6.parse(text)
  return Object.freeze({ family: 6, text: a.toString(), n: toBig(a.toByteArray()) })
}

/** The prefix of `len` bits around `ip`, host bits cleared. */
function prefixAround(ip: IpAddress, len: number): Prefix {
  const hostBits = BigInt(WIDTH[ip.family] - len)
  const first = (ip.n >> hostBits) << hostBits
  const last = first | ((1n << hostBits) - 1n)
  const network = first === ip.n ? ip.text : fromBig(first, ip.family)
  return Object.freeze({ family: ip.family, network, prefixLen: len, cidr: `${network}/${len}`, first, last })
}

/** A single IP address as a person wrote it: no prefix length, no zone id. */
export const parseAddress: (input: unknown) => Parsed<IpAddress> = (() => {
  const cached = memo((text: string): Parsed<IpAddress> => {
    if (text.includes('/')) return { error: `'${text}' is a prefix; an address is written without /length`, code: 'bad-ip' }
    const ip = strictIp(text)
    return ip ? { value: ip } : { error: `'${text}' is not a valid IP address`, code: 'bad-ip' }
  })
  return (input) => (typeof input === 'string' ? cached(input) : { error: `${showValue(input)} is not an IP address`, code: 'bad-ip' })
})()

/**
 * A prefix in CIDR notation as a person wrote it: the /length is required and
 * set host bits are refused (the message names the prefix they probably meant).
 */
export const parsePrefix: (input: unknown) => Parsed<Prefix> = (() => {
  const cached = memo(parsePrefixText)
  return (input) =>
    typeof input === 'string' ? cached(input) : { error: `${showValue(input)} is not a prefix in CIDR notation (like 10.0.0.0/16)`, code: 'bad-cidr' }
})()

function parsePrefixText(input: string): Parsed<Prefix> {
  const slash = input.indexOf('/')
  if (slash === -1) {
    const ip = strictIp(input)
    const hint = ip ? `; for this one address write ${ip.text}/${WIDTH[ip.family]}` : ''
    return { error: `'${input}' is not a prefix in CIDR notation (like 10.0.0.0/16): the /length is missing${hint}`, code: 'bad-cidr' }
  }
  const ip = strictIp(input.slice(0, slash))
  if (!ip) return { error: `'${input}' is not a valid prefix: '${input.slice(0, slash)}' is not an IP address`, code: 'bad-cidr' }
  const lenText = input.slice(slash + 1)
  const width = WIDTH[ip.family]
  if (!LENGTH.test(lenText) || Number(lenText) > width) return { error: `'${input}' is not a valid prefix: the length must be 0..${width}`, code: 'bad-cidr' }
  const p = prefixAround(ip, Number(lenText))
  if (p.first !== ip.n) return { error: `'${input}' has host bits set; did you mean ${p.cidr}?`, code: 'host-bits-set' }
  return { value: p }
}

/** `a.b.c.d/n` or `x::/n`, host bits cleared; a bare address is a host prefix (/32, /128). Throws on anything else. */
export const parseCidr: (text: string) => Prefix = memo((text: string): Prefix => {
  const slash = text.indexOf('/')
  const ip = strictIp(slash < 0 ? text : text.slice(0, slash))
  if (!ip) throw new InvalidAddressError(`not an IP address: ${JSON.stringify(text)}`)
  const lenText = slash < 0 ? String(WIDTH[ip.family]) : text.slice(slash + 1)
  if (!LENGTH.test(lenText) || Number(lenText) > WIDTH[ip.family]) throw new InvalidAddressError(`bad prefix length in ${JSON.stringify(text)}`)
  return prefixAround(ip, Number(lenText))
})

/** Canonical CIDR with host bits cleared (`10.1.2.3/16` → `10.1.0.0/16`). Throws on a non-prefix. */
export function canonicalCidr(text: string): string {
  return parseCidr(text).cidr
}

const checkedIp = memo((text: string): IpAddress => {
  const ip = strictIp(text)
  if (!ip) throw new InvalidAddressError(`not an IP address: ${JSON.stringify(text)}`)
  return ip
})

/** Canonical text of an address (`fd00:0::1` → `fd00::1`). Throws on a non-address. */
export function canonicalIp(text: string): string {
  return checkedIp(text).text
}

export function familyOf(text: string): Family {
  return checkedIp(text).family
}

/** The address's bytes (4 or 16). The buffer is shared with other callers: read it, never write it. */
export const ipToBytes: (text: string) => Buffer = memo((text: string): Buffer => {
  const ip = checkedIp(text)
  const out = Buffer.alloc(WIDTH[ip.family] / 8)
  let n = ip.n
  for (let i = out.length - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return out
})

/** Canonical text of 4 or 16 address bytes. */
export function bytesToIp(bytes: Uint8Array): string {
  // IPv4 is on every kernel dump's hot path; its canonical text is just the dotted quad.
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
  if (bytes.length !== 16) throw new InvalidAddressError(`an IP address has 4 or 16 bytes, not ${bytes.length}`)
  return ipaddr.fromByteArray(Array.from(bytes)).toString()
}

/** True for IPv6 link-local (fe80::/10) addresses, which the kernel manages. */
export function isLinkLocal(text: string): boolean {
  const ip = checkedIp(text)
  return ip.family === 6 && ip.n >> 118n === 0x3fan
}

/**
 * Whether a peer may be sent packets at this address: a unicast address
 * (public, private or unique-local), never unspecified, loopback, multicast,
 * broadcast or link-local. Null when it is no address at all.
 */
export function isDialable(text: string): boolean | null {
  const ip = parseAddress(text).value
  if (!ip) return null
  const parsed = ipaddr.parse(ip.text)
  const range = parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress() ? (parsed as ipaddr.IPv6).toIPv4Address().range() : parsed.range()
  return !['unspecified', 'loopback', 'multicast', 'broadcast', 'linkLocal'].includes(range)
}

export function prefixContains(p: Prefix, a: IpAddress): boolean {
  return p.family === a.family && a.n >= p.first && a.n <= p.last
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last
}

/**
 * Every pair of overlapping prefixes in `items`, each reported once (the later one against
 * the earliest it overlaps), in O(n log n): sort by start, sweep keeping the widest open range.
 */
export function findOverlaps<T extends { prefix: Prefix }>(items: readonly T[]): Array<{ item: T; other: T }> {
  const out: Array<{ item: T; other: T }> = []
  for (const family of [4, 6] as const) {
    const sorted = items
      .map((item, order) => ({ item, order }))
      .filter((x) => x.item.prefix.family === family)
      .sort((x, y) => {
        const a = x.item.prefix
        const b = y.item.prefix
        if (a.first !== b.first) return a.first < b.first ? -1 : 1
        return a.prefixLen === b.prefixLen ? x.order - y.order : a.prefixLen - b.prefixLen
      })
    let open: { item: T; order: number } | undefined
    for (const cur of sorted) {
      if (open && cur.item.prefix.first <= open.item.prefix.last) {
        // Report the one that comes later in the file, pointing at the earlier one.
        out.push(cur.order > open.order ? { item: cur.item, other: open.item } : { item: open.item, other: cur.item })
        if (cur.item.prefix.last > open.item.prefix.last) open = cur
      } else {
        open = cur
      }
    }
  }
  return out
}
