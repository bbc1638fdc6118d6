/**
 * Where each key and value of the loaded document sits in its file.
 *
 * Paths are arrays of keys and list indices (`['peers', 2, 'key']`); `formatPath`
 * gives the dotted form used in diagnostics (`peers[2].key`). A path that has no
 * position of its own (a missing key, a value replaced by a flag) resolves to its
 * nearest ancestor that has one.
 *
 * Positions are kept as character offsets and turned into line:col only when a
 * diagnostic asks, so recording them costs one map entry per node. When the document
 * came from the fast path (parse-fast.ts) they are not recorded at all until a
 * diagnostic asks: `LazyPositions` builds the map then, with the `yaml` package.
 */
import type { LineCounter } from 'yaml'

export type Path = readonly (string | number)[]

/** 1-based line and column. */
export interface Position {
  line: number
  col: number
}

export interface Location {
  file: string
  line: number
  col: number
}

export function formatPath(path: Path): string {
  let out = ''
  for (const seg of path) out = childKey(out, seg)
  return out
}

/** The formatted path of `seg` under the formatted path `parent`. */
export function childKey(parent: string, seg: string | number): string {
  if (typeof seg === 'number') return `${parent}[${seg}]`
  return parent === '' ? seg : `${parent}.${seg}`
}

/** What the loader asks of positions: where a path is, and which paths a flag set. */
export interface Positions {
  /** Mark a path as set by a flag: it and everything below it are reported against `source`. */
  markOverride(path: Path, source: string): void
  /**
   * The location to report for `path`. `at: 'key'` points at the key itself (unknown
   * or duplicate keys); `'value'` (the default) at the value. A missing path stands in
   * with its nearest recorded ancestor's key (or value, for list items and the root).
   */
  locate(path: Path, at?: 'key' | 'value'): Location
}

/** Command-line flags by formatted path → the flag that set them. */
class Overrides {
  private readonly bySource = new Map<string, string>()

  mark(path: Path, source: string): void {
    this.bySource.set(formatPath(path), source)
  }

  /** The flag's location when `path` or one of its ancestors was set by a flag. */
  find(path: Path): Location | undefined {
    if (this.bySource.size === 0) return undefined
    let prefix = ''
    let found: string | undefined = this.bySource.get(prefix)
    for (const seg of path) {
      prefix = childKey(prefix, seg)
      found = this.bySource.get(prefix) ?? found
    }
    return found === undefined ? undefined : { file: found, line: 0, col: 0 }
  }
}

export class PositionMap implements Positions {
  private readonly values = new Map<string, number>()
  private readonly keys = new Map<string, number>()
  private readonly overrides = new Overrides()

  constructor(
    readonly file: string,
    private readonly lc?: LineCounter,
  ) {}

  /** Record offsets for a formatted path (see `childKey`). */
  setOffsets(key: string, valueOffset: number, keyOffset?: number): void {
    this.values.set(key, valueOffset)
    if (keyOffset !== undefined) this.keys.set(key, keyOffset)
  }

  /** Every recorded offset, `[path, valueOffset, keyOffset]`, sorted by path (for tests and debugging). */
  entries(): Array<[string, number, number | undefined]> {
    return [...this.values].map(([k, v]): [string, number, number | undefined] => [k, v, this.keys.get(k)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  markOverride(path: Path, source: string): void {
    this.overrides.mark(path, source)
  }

  /** Line and column of a character offset in the file. */
  position(offset: number): Position {
    if (!this.lc) return { line: 1, col: 1 }
    const p = this.lc.linePos(offset)
    return { line: p.line, col: p.col }
  }

  locate(path: Path, at: 'key' | 'value' = 'value'): Location {
    const flag = this.overrides.find(path)
    if (flag) return flag
    const prefixes: string[] = ['']
    for (const seg of path) prefixes.push(childKey(prefixes[prefixes.length - 1]!, seg))
    for (let n = path.length; n >= 0; n--) {
      const k = prefixes[n]!
      const value = this.values.get(k)
      if (value === undefined) continue
      const key = this.keys.get(k)
      const offset = n === path.length ? (at === 'key' ? key : undefined) ?? value : key ?? value
      return { file: this.file, ...this.position(offset) }
    }
    return { file: this.file, line: 1, col: 1 }
  }
}

/**
 * Positions that cost nothing until asked: `build` (which parses the text again, with
 * positions) runs on the first `locate` of a path no flag set, at most once. A load
 * with no diagnostic never builds them.
 */
export class LazyPositions implements Positions {
  private map: PositionMap | undefined
  private readonly overrides = new Overrides()

  constructor(private readonly build: () => PositionMap) {}

  /** Whether the map has been built (for tests). */
  get built(): boolean {
    return this.map !== undefined
  }

  markOverride(path: Path, source: string): void {
    this.overrides.mark(path, source)
  }

  locate(path: Path, at: 'key' | 'value' = 'value'): Location {
    const flag = this.overrides.find(path)
    if (flag) return flag
    this.map ??= this.build()
    return this.map.locate(path, at)
  }
}
