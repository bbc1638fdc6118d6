/**
 * Addresses, prefixes, endpoints, ports and keys as people write them in the config.
 * IP parsing is ipaddr.js; this file adds the rules of our language (strict dotted
 * quads, no zone ids, host bits cleared) and the messages. Parsers return
 * `{ value }` or `{ error, code }` and never throw.
 */
import ipaddr from 'ipaddr.js'
import type { DiagnosticCode } from './diagnostics.js'
import type { Endpoint, PortRange } from './types.js'

export type Parsed<T> = { value: T; error?: undefined; code?: undefined } | { value?: undefined; error: string; code: DiagnosticCode }

export type Family = 'ipv4' | 'ipv6'

export interface Prefix {
  family: Family
  /** Canonical text: `10.0.0.0/16`, `fd00:1::/48`. */
  text: string
  bits: number
  /** First and last address as integers (for sorting and containment). */
  first: bigint
  last: bigint
}

export interface Address {
  family: Family
  text: string
  n: bigint
}

const WIDTH: Record<Family, number> = { ipv4: 32, ipv6: 128 }

function toBig(bytes: number[]): bigint {
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  return n
}

function fromBig(n: bigint, family: Family): string {
  if (family === 'ipv4') {
    const v = Number(n)
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
  }
  const len = 16
  const bytes: number[] = new Array<number>(len)
  for (let i = len - 1; i >= 0; i--) {
    bytes[i] = Number(n & 0xffn)
    n >>= 8n
  }
  const addr = ipaddr.fromByteArray(bytes)
  return addr.kind() === 'ipv6' ? (addr as ipaddr.IPv6).toRFC5952String() : addr.toString()
}

/**
 * Rules and normalize both parse every prefix of a config; a large config has thousands.
 * Parsing is pure, so within one load results are kept (frozen) in small tables that
 * the loader empties at the start of each load (`resetParseCaches`).
 */
const caches: Array<Map<string, unknown>> = []

export function resetParseCaches(): void {
  for (const c of caches) c.clear()
}

function memo<T>(parse: (input: string) => Parsed<T>): (input: unknown) => Parsed<T> {
  const cache = new Map<string, Parsed<T>>()
  caches.push(cache as Map<string, unknown>)
  return (input) => {
    if (typeof input !== 'string') return parse(input as string)
    let r = cache.get(input)
    if (!r) {
      if (cache.size >= 10_000) cache.clear()
      r = Object.freeze(parse(input))
      if (r.value) Object.freeze(r.value)
      cache.set(input, r)
    }
    return r
  }
}

/** A single IP address: a strict dotted quad or an IPv6 address (no zone id, no prefix length). */
export const parseAddress = memo(parseAddressUncached)

function parseAddressUncached(input: unknown): Parsed<Address> {
  if (typeof input !== 'string') return { error: `${String(input)} is not an IP address`, code: 'bad-ip' }
  if (input.includes('/')) return { error: `'${input}' is a prefix; an address is written without /length`, code: 'bad-ip' }
  if (ipaddr.IPv4.isValidFourPartDecimal(input)) {
    const a = ipaddr.IPv4.parse(input)
    return { value: { family: 'ipv4', text: a.toString(), n: toBig(a.toByteArray()) } }
  }
  if (input.includes(':') && !input.includes('%') && ipaddr.IPv6.isValid(input)) {
    const a = ipaddr.IPv6.parse(input)
    return { value: { family: 'ipv6', text: a.toRFC5952String(), n: toBig(a.toByteArray()) } }
  }
  return { error: `'${input}' is not a valid IP address`, code: 'bad-ip' }
}

/** A prefix in CIDR notation with its host bits cleared. */
export const parsePrefix = memo(parsePrefixUncached)

function parsePrefixUncached(input: unknown): Parsed<Prefix> {
  if (typeof input !== 'string') return { error: `${String(input)} is not a prefix in CIDR notation (like 10.0.0.0/16)`, code: 'bad-cidr' }
  const slash = input.indexOf('/')
  if (slash === -1) {
    const a = parseAddress(input)
    const hint = a.value ? `; for this one address write ${a.value.text}/${WIDTH[a.value.family]}` : ''
    return { error: `'${input}' is not a prefix in CIDR notation (like 10.0.0.0/16): the /length is missing${hint}`, code: 'bad-cidr' }
  }
  const a = parseAddress(input.slice(0, slash))
  const lenText = input.slice(slash + 1)
  if (!a.value) return { error: `'${input}' is not a valid prefix: '${input.slice(0, slash)}' is not an IP address`, code: 'bad-cidr' }
  const width = WIDTH[a.value.family]
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > width) {
    return { error: `'${input}' is not a valid prefix: the length must be 0..${width}`, code: 'bad-cidr' }
  }
  const bits = Number(lenText)
  const hostBits = BigInt(width - bits)
  const first = (a.value.n >> hostBits) << hostBits
  const last = first | ((1n << hostBits) - 1n)
  const text = `${fromBig(first, a.value.family)}/${bits}`
  if (first !== a.value.n) {
    return { error: `'${input}' has host bits set; did you mean ${text}?`, code: 'host-bits-set' }
  }
  return { value: { family: a.value.family, text, bits, first, last } }
}

export function prefixContains(p: Prefix, a: Address): boolean {
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
  for (const family of ['ipv4', 'ipv6'] as const) {
    const sorted = items
      .map((item, order) => ({ item, order }))
      .filter((x) => x.item.prefix.family === family)
      .sort((x, y) => (x.item.prefix.first < y.item.prefix.first ? -1 : x.item.prefix.first > y.item.prefix.first ? 1 : y.item.prefix.bits === x.item.prefix.bits ? x.order - y.order : x.item.prefix.bits - y.item.prefix.bits))
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

/** `host:port`, `[v6]:port`, or just `host` (then `defaultPort`, when given). */
export function parseEndpoint(input: unknown, defaultPort?: number): Parsed<Endpoint> {
  const fail = (why: string): Parsed<Endpoint> => ({ error: `'${String(input)}' is not a valid host:port: ${why}`, code: 'bad-endpoint' })
  if (typeof input !== 'string' || input.length === 0) return fail('expected text like vpn.example.com:7443')
  let host: string
  let portText: string | undefined
  if (input.startsWith('[')) {
    const close = input.indexOf(']')
    if (close === -1) return fail('missing ]')
    host = input.slice(1, close)
    const rest = input.slice(close + 1)
    if (rest !== '' && !rest.startsWith(':')) return fail('expected :port after ]')
    portText = rest === '' ? undefined : rest.slice(1)
    const a = parseAddress(host)
    if (!a.value || a.value.family !== 'ipv6') return fail('only an IPv6 address goes in brackets')
    host = a.value.text
  } else {
    const colons = input.split(':').length - 1
    if (colons > 1) return fail('write an IPv6 address in brackets, like [2001:db8::1]:7443')
    const [h, p] = input.split(':') as [string, string | undefined]
    host = h
    portText = p
    if (/^[0-9.]+$/.test(host)) {
      const a = parseAddress(host)
      if (!a.value) return fail(`'${host}' is not a valid IPv4 address`)
      host = a.value.text
    } else if (!isHostname(host)) {
      return fail(`'${host}' is not a valid host name`)
    }
  }
  if (portText === undefined) {
    if (defaultPort === undefined) return fail('the :port is missing')
    return { value: { host, port: defaultPort } }
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return fail('the port must be 1..65535')
  return { value: { host, port: Number(portText) } }
}

export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false
  return s.split('.').every((l) => /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l))
}

/** Canonical `host:port` text, brackets around IPv6. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}

/** A port (22) or an inclusive range ("8000-8100"), 1..65535, low ≤ high. */
export function parsePortSpec(input: unknown): Parsed<PortRange> {
  const bad = (why: string): Parsed<PortRange> => ({ error: `port ${typeof input === 'string' ? `'${input}'` : String(input)} ${why}`, code: 'bad-port-range' })
  let from: number
  let to: number
  if (typeof input === 'number') {
    if (!Number.isInteger(input)) return bad('is not a whole number')
    from = to = input
  } else if (typeof input === 'string') {
    const m = /^([0-9]{1,6})-([0-9]{1,6})$/.exec(input) ?? /^([0-9]{1,6})$/.exec(input)
    if (!m) return bad('is not a port or a range like 8000-8100')
    from = Number(m[1])
    to = Number(m[2] ?? m[1])
  } else {
    return bad('is not a port or a range like 8000-8100')
  }
  if (from === 0 || to === 0) return bad('is out of range: ports are 1..65535 (0 is not a port)')
  if (from > 65535 || to > 65535) return bad('is out of range: ports are 1..65535')
  if (from > to) return bad(`is reversed; did you mean ${to}-${from}?`)
  return { value: { from, to } }
}

export function formatPortRange(r: PortRange): number | string {
  return r.from === r.to ? r.from : `${r.from}-${r.to}`
}

/** An Ed25519 public key: standard base64 of exactly 32 bytes. */
export function parsePublicKey(input: unknown): Parsed<string> {
  const bad = (why: string): Parsed<string> => ({ error: why, code: 'bad-key' })
  if (typeof input !== 'string') return bad('a public key is text: standard base64 of 32 bytes (44 characters)')
  if ((/^[A-Za-z0-9_-]{43}=?$/.test(input) && /[-_]/.test(input)) || /^[A-Za-z0-9+/]{43}$/.test(input)) {
    const std = input.replace(/-/g, '+').replace(/_/g, '/').replace(/=?$/, '=')
    if (Buffer.from(std, 'base64').length === 32) return bad(`this key is base64url or unpadded; write it in standard base64: ${std}`)
  }
  if (!/^[A-Za-z0-9+/]{43}=$/.test(input)) {
    return bad(`'${input.length > 60 ? input.slice(0, 60) + '…' : input}' is not an Ed25519 public key: expected standard base64 of 32 bytes (44 characters ending in =), got ${input.length} characters`)
  }
  const raw = Buffer.from(input, 'base64')
  if (raw.length !== 32 || raw.toString('base64') !== input) return bad(`'${input}' is not canonical base64 of 32 bytes`)
  return { value: input }
}
