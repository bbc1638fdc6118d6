/**
 * One audit line, as text: the canonical serialisation shared by the writer
 * (`log.ts`) and the checker (`verify.ts`).
 *
 *   {"seq":7,"at":"2025-01-02T03:04:05.678Z","type":"config-applied",<fields, keys sorted>,"prev":"<64 hex>","mac":"<64 hex>"}
 *
 * Key order is fixed: seq, at, type, the event's fields (sorted by key, and so
 * is every nested object), prev, then mac when the log has a key. `prev` is the
 * hex SHA-256 of the previous line's exact text (without its newline); the
 * first line of a fresh log has 64 zeros. `mac` is the hex HMAC-SHA256, with
 * the audit key, of this line's text without the `,"mac":"…"` part, i.e. of
 * `canonicalBody(...)`. A line is canonical when `canonicalLine(parse(text))`
 * gives back `text` byte for byte; verify relies on that to recompute both.
 */
import { createHash, createHmac } from 'node:crypto'

export const ZERO_HASH = '0'.repeat(64)

/** Names a line owns; an event field may not use them. */
export const RESERVED = new Set(['seq', 'at', 'type', 'prev', 'mac'])

export type AuditFields = Readonly<Record<string, unknown>>

export interface AuditRecord {
  readonly seq: number
  readonly at: string
  readonly type: string
  readonly fields: AuditFields
  readonly prev: string
  readonly mac?: string
}

/** A JSON value with every object's keys sorted; `undefined` members are dropped, as JSON does. */
function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep)
  if (v !== null && typeof v === 'object' && !(v instanceof Date) && typeof (v as { toJSON?: unknown }).toJSON !== 'function') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) out[k] = sortDeep((v as Record<string, unknown>)[k])
    return out
  }
  return v
}

/** The line's text without `mac`: what `prev` of the next line hashes when there is no key, and what the mac covers. */
export function canonicalBody(r: Omit<AuditRecord, 'mac'>): string {
  const obj: Record<string, unknown> = { seq: r.seq, at: r.at, type: r.type }
  for (const k of Object.keys(r.fields).sort()) {
    if (RESERVED.has(k)) throw new TypeError(`audit field '${k}' is reserved (seq, at, type, prev and mac belong to the line)`)
    obj[k] = sortDeep(r.fields[k])
  }
  obj.prev = r.prev
  // A round trip through JSON.parse, so that what we write is what verify reads back
  // (toJSON, NaN → null, undefined members dropped): canonical(parse(line)) === line.
  return JSON.stringify(sortTopLevel(JSON.parse(JSON.stringify(obj)) as Record<string, unknown>))
}

function sortTopLevel(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { seq: o.seq, at: o.at, type: o.type }
  for (const k of Object.keys(o).sort()) if (!RESERVED.has(k)) out[k] = sortDeep(o[k])
  out.prev = o.prev
  return out
}

/** The whole line (no newline): the body, plus `"mac"` when a key is given. */
export function canonicalLine(r: Omit<AuditRecord, 'mac'>, key: Buffer | null): string {
  const body = canonicalBody(r)
  if (!key) return body
  return `${body.slice(0, -1)},"mac":"${macOf(body, key)}"}`
}

export function macOf(body: string, key: Buffer): string {
  return createHmac('sha256', key).update(body, 'utf8').digest('hex')
}

export function hashOf(line: string): string {
  return createHash('sha256').update(line, 'utf8').digest('hex')
}

const HEX64 = /^[0-9a-f]{64}$/

/** A line's text back into a record, or why it is not one (the words verify prints). */
export function parseLine(text: string): { record: AuditRecord; error?: undefined } | { record?: undefined; error: string } {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return { error: 'not valid JSON' }
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { error: 'not a JSON object' }
  const o = v as Record<string, unknown>
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) return { error: 'no valid seq' }
  if (typeof o.at !== 'string') return { error: 'no at time' }
  if (typeof o.type !== 'string') return { error: 'no type' }
  if (typeof o.prev !== 'string' || !HEX64.test(o.prev)) return { error: 'no valid prev hash' }
  if (o.mac !== undefined && (typeof o.mac !== 'string' || !HEX64.test(o.mac))) return { error: 'mac is not a hex SHA-256 HMAC' }
  const fields: Record<string, unknown> = {}
  for (const [k, val] of Object.entries(o)) if (!RESERVED.has(k)) fields[k] = val
  const record: AuditRecord = { seq: o.seq, at: o.at, type: o.type, fields, prev: o.prev, ...(typeof o.mac === 'string' ? { mac: o.mac } : {}) }
  return { record }
}

/** The text the record's fields give, with its own mac kept (no key needed): equal to the line iff it is canonical. */
export function recanonical(r: AuditRecord): string {
  const body = canonicalBody(r)
  return r.mac === undefined ? body : `${body.slice(0, -1)},"mac":"${r.mac}"}`
}
