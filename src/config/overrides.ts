/**
 * Command-line flags applied to the raw document before validation, so a bad flag value
 * is checked by the same schema and rules as the file, and reported against the flag.
 */
import type { ConfigOverride } from './index.js'
import type { Path, Positions } from './positions.js'

/** Writes each override into `data` (in place) and marks its place in `positions` with the override's source. */
export function writeOverrides(data: Record<string, unknown>, overrides: readonly ConfigOverride[], positions: Positions): void {
  for (const o of overrides) {
    if (o.path.length === 0) continue
    let cur: Record<string, unknown> | unknown[] = data
    const path: (string | number)[] = []
    // The outermost container this override had to create: problems there are the flag's too.
    let created: Path | undefined
    for (let i = 0; i < o.path.length; i++) {
      const seg = o.path[i]!
      const key: string | number = Array.isArray(cur) && /^[0-9]+$/.test(seg) ? Number(seg) : seg
      path.push(key)
      const slot = cur as Record<string | number, unknown>
      if (i === o.path.length - 1) {
        slot[key] = structuredClone(o.value)
        break
      }
      if (!isContainer(slot[key])) {
        // A numeric next segment means a list: `['subnets', '0']` on a file without subnets.
        slot[key] = /^[0-9]+$/.test(o.path[i + 1]!) ? [] : {}
        created ??= [...path]
      }
      cur = slot[key] as Record<string, unknown> | unknown[]
    }
    positions.markOverride(created ?? path, o.source)
  }
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === 'object' && v !== null
}
