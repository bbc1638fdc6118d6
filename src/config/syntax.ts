/**
 * Endpoints, ports and keys as people write them in the config. Addresses and
 * prefixes are the network vocabulary's (`src/net/`); this file adds the rest of
 * our language and its messages. Parsers return `{ value }` or `{ error, code }`
 * and never throw.
 */
import { parseAddress, type Parsed as NetParsed } from '../net/index.js'
import type { DiagnosticCode } from './diagnostics.js'
import type { Endpoint, PortRange } from './types.js'
import { showValue } from '../show-value.js'

export type Parsed<T> = NetParsed<T, DiagnosticCode>

/** `host:port`, `[v6]:port`, or just `host` (then `defaultPort`, when given). */
export function parseEndpoint(input: unknown, defaultPort?: number): Parsed<Endpoint> {
  const fail = (why: string): Parsed<Endpoint> => ({ error: `${showValue(input)} is not a valid host:port: ${why}`, code: 'bad-endpoint' })
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
    if (!a.value || a.value.family !== 6) return fail('only an IPv6 address goes in brackets')
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
  const bad = (why: string): Parsed<PortRange> => ({ error: `port ${showValue(input)} ${why}`, code: 'bad-port-range' })
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
