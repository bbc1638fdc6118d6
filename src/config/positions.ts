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
 * Positions that cost nothing until asked. A path of plain block-style mapping keys
 * (`policies.rules`, `interfaces`: most warnings) is found by scanning the text's
 * lines (`scanBlockKey`); anything else runs `build` (which parses the text again,
 * with positions, several times slower on a large file) on the first such `locate`,
 * at most once. A load with no diagnostic does neither.
 */
export class LazyPositions implements Positions {
  private map: PositionMap | undefined
  private readonly overrides = new Overrides()

  constructor(
    private readonly build: () => PositionMap,
    private readonly source?: { readonly text: string; readonly file: string },
  ) {}

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
    if (!this.map && this.source) {
      const hit = scanBlockKey(this.source.text, path)
      if (hit) return { file: this.source.file, ...lineCol(this.source.text, at === 'key' ? hit.key : hit.value) }
    }
    this.map ??= this.build()
    return this.map.locate(path, at)
  }
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/

/**
 * Offsets of the key and value at `path` when it is written in block style: plain
 * mapping keys each at the indentation of its own block (`policies:` at column 1,
 * `  rules:` under it), list items as `- ` lines (the item's first key may share the
 * dash's line). `null` for anything else (flow style, quoting, a key under anything but
 * a block, an empty value, a key not found), which the full parse answers. Comment and
 * blank lines are skipped; indentation is a column, so a scan can start mid-line (after
 * a dash).
 */
export function scanBlockKey(text: string, path: Path): { key: number; value: number } | null {
  if (path.length === 0 || text.startsWith('%') || /^---/m.test(text)) return null
  let from = 0
  let parentIndent = -1
  let inlineParent = false
  let hit: { key: number; value: number } | null = null
  for (const seg of path) {
    // Children live only under a block: not a flow collection, a block scalar, an anchor or a tag.
    if (inlineParent) return null
    if (typeof seg === 'string' && !PLAIN_KEY.test(seg)) return null
    hit = null
    let blockIndent = -1
    let items = 0
    let at = from
    while (at < text.length) {
      const lineStart = text.lastIndexOf('\n', at - 1) + 1
      const eol = text.indexOf('\n', at)
      const end = eol < 0 ? text.length : eol
      const line = text.slice(at, end)
      const body = line.trimStart()
      const indent = at - lineStart + (line.length - body.length) // a column
      const next = eol < 0 ? text.length : eol + 1
      if (body !== '' && !body.startsWith('#')) {
        if (indent <= parentIndent) break // the parent's block ended
        if (blockIndent < 0) blockIndent = indent
        if (indent === blockIndent) {
          const pos = lineStart + indent
          if (typeof seg === 'number') {
            if (!(body === '-' || body.startsWith('- '))) return null // not a block sequence
            if (items++ === seg) {
              // The item's content: after the dash on this line, or the lines below it.
              const rest = body.slice(1)
              const pad = rest.length - rest.trimStart().length
              const inline = rest.trim() !== '' && !rest.trimStart().startsWith('#')
              const value = inline ? pos + 1 + pad : firstContent(text, next, indent)
              if (value === null) return null
              hit = { key: value, value } // an item has no key: it is reported at its value
              parentIndent = indent
              // A mapping item's keys continue at the column of its first key.
              inlineParent = inline && !/^[A-Za-z0-9_-]+:( |$)/.test(rest.trimStart())
              from = inline ? value : next
              break
            }
          } else if (body.startsWith(`${seg}:`) && (body.length === seg.length + 1 || body[seg.length + 1] === ' ')) {
            const rest = body.slice(seg.length + 1)
            const pad = rest.length - rest.trimStart().length
            const inline = rest.trim() !== '' && !rest.trimStart().startsWith('#')
            // A block value starts at the first content line below the key; none (an empty value): defer.
            const value = inline ? pos + seg.length + 1 + pad : firstContent(text, next, indent)
            if (value === null) return null
            hit = { key: pos, value }
            parentIndent = indent
            inlineParent = inline
            from = next
            break
          }
        }
      }
      at = next
    }
    if (!hit) return null
  }
  return hit
}

/** Offset of the first non-blank, non-comment character from `from`, when its line is indented deeper than `indent`. */
function firstContent(text: string, from: number, indent: number): number | null {
  for (let at = from; at < text.length; ) {
    const eol = text.indexOf('\n', at)
    const line = text.slice(at, eol < 0 ? text.length : eol)
    const body = line.trimStart()
    if (body !== '' && !body.startsWith('#')) {
      const i = line.length - body.length
      return i > indent || body.startsWith('- ') ? at + i : null
    }
    at = eol < 0 ? text.length : eol + 1
  }
  return null
}

/** 1-based line and column of a character offset. */
function lineCol(text: string, offset: number): Position {
  let line = 1
  let last = -1
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++
    last = i
  }
  return { line, col: offset - last }
}
