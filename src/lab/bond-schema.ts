/**
 * What the config schema (`schemas/quicether.schema.json`) allows for
 * `multipath.mode`, read at run time: the bonding lab writes `weighted` as a
 * mode once the schema has one, and as `aggregate` + `scheduler: weighted`
 * until then (see bond-config.ts).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot } from './delay.js'

const FALLBACK = ['aggregate', 'failover', 'redundant'] as const

/** The schema's `multipath.mode` values (pure). */
export function schemaModes(schema: unknown): string[] {
  const s = schema as { properties?: { multipath?: { properties?: { mode?: { enum?: unknown } } } } } | null
  const e = s?.properties?.multipath?.properties?.mode?.enum
  return Array.isArray(e) && e.every((x) => typeof x === 'string') ? (e as string[]) : [...FALLBACK]
}

/** The installed schema's `multipath.mode` values. */
export function readSchemaModes(): string[] {
  try {
    return schemaModes(JSON.parse(readFileSync(join(repoRoot(), 'schemas', 'quicether.schema.json'), 'utf8')))
  } catch {
    return [...FALLBACK]
  }
}
