/**
 * A small seeded generator (mulberry32) for the lab's drawn inputs: the same
 * seed draws the same scenarios, so a failure can be replayed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A 32-bit seed derived from `parts` (FNV-1a of them joined by "/", then
 * murmur3's finalizer so a change in the last part flips half the bits): one
 * stream per purpose from one printed seed, e.g. (seed, 'vary', link, dir).
 * Nearby inputs give unrelated seeds, which mulberry32's own seeds do not
 * guarantee (two seeds that differ by its increment draw one sequence, shifted).
 */
export function deriveSeed(...parts: readonly (string | number)[]): number {
  let h = 0x811c9dc5
  for (const c of parts.join('/')) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193)
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
