/**
 * IP text ⇄ bytes and canonical forms, on `ipaddr.js`. Every address string
 * in a kernel record goes through here, so a record read from the kernel and
 * one built from config spell the same thing the same way.
 */
import ipaddr from 'ipaddr.js'
import type { Family } from './types.js'
import { InvalidRecordError } from './errors.js'

export interface ParsedCidr {
  readonly family: Family
  /** Network address, host bits cleared, canonical text. */
  readonly network: string
  readonly prefixLen: number
  /** `network/prefixLen`. */
  readonly cidr: string
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

/** Strict: dotted-quad IPv4 (no leading zeros) or IPv6 without a zone (ipaddr.js alone also takes `10`, `0x0a.1`…). */
function parseAddr(text: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const m = V4.exec(text)
  if (m) return new ipaddr.IPv4([Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])])
  if (!text.includes('%') && ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text)
  throw new InvalidRecordError(`not an IP address: ${JSON.stringify(text)}`)
}

export function familyOf(text: string): Family {
  return parseAddr(text).kind() === 'ipv4' ? 4 : 6
}

/** Canonical text of an address (`fd00:0::1` → `fd00::1`). */
export function canonicalIp(text: string): string {
  return ipMemo.get(text) ?? remember(ipMemo, text, parseAddr(text).toString())
}

/**
 * Parsing is the hot path of a 10,000-route diff, and the same texts come
 * back on every observe: remember results (bounded; cleared when full).
 */
const MEMO_LIMIT = 200_000
const cidrMemo = new Map<string, ParsedCidr>()
const ipMemo = new Map<string, string>()

function remember<V>(memo: Map<string, V>, key: string, value: V): V {
  if (memo.size >= MEMO_LIMIT) memo.clear()
  memo.set(key, value)
  return value
}

/** Parses `a.b.c.d/n` or `x::/n`; a bare address is a host prefix (/32, /128). */
export function parseCidr(text: string): ParsedCidr {
  return cidrMemo.get(text) ?? remember(cidrMemo, text, parseCidrUncached(text))
}

function parseCidrUncached(text: string): ParsedCidr {
  const slash = text.indexOf('/')
  const addr = parseAddr(slash < 0 ? text : text.slice(0, slash))
  const family: Family = addr.kind() === 'ipv4' ? 4 : 6
  const max = family === 4 ? 32 : 128
  const lenText = slash < 0 ? String(max) : text.slice(slash + 1)
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new InvalidRecordError(`bad prefix length in ${JSON.stringify(text)}`)
  }
  const prefixLen = Number(lenText)
  const bytes = addr.toByteArray()
  for (let bit = prefixLen; bit < max; bit++) {
    const i = bit >> 3
    bytes[i] = (bytes[i] ?? 0) & ~(0x80 >> (bit & 7))
  }
  const network = bytesToIp(Uint8Array.from(bytes))
  return Object.freeze({ family, network, prefixLen, cidr: `${network}/${prefixLen}` })
}

/** Canonical CIDR with host bits cleared (`10.1.2.3/16` → `10.1.0.0/16`). */
export function canonicalCidr(text: string): string {
  return parseCidr(text).cidr
}

const bytesMemo = new Map<string, Buffer>()

/** The address's bytes. The buffer may be shared with other callers: read it, never write it. */
export function ipToBytes(text: string): Buffer {
  return bytesMemo.get(text) ?? remember(bytesMemo, text, Buffer.from(parseAddr(text).toByteArray()))
}

export function bytesToIp(bytes: Uint8Array): string {
  // IPv4 is on every dump's hot path; its canonical text is just the dotted quad.
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
  if (bytes.length !== 16) {
    throw new InvalidRecordError(`an IP address has 4 or 16 bytes, not ${bytes.length}`)
  }
  return ipaddr.fromByteArray(Array.from(bytes)).toString()
}

/** True for IPv6 link-local (fe80::/10) addresses, which the kernel manages. */
export function isLinkLocal(text: string): boolean {
  const addr = parseAddr(text)
  return addr.kind() === 'ipv6' && addr.range() === 'linkLocal'
}
