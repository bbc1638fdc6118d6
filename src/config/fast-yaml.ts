/**
 * A fast path for the YAML that config files are made of, beside the `yaml` package.
 *
 * Why: `yaml` builds a full document model (CST, nodes, comments) and costs about
 * 0.5 ms per KiB here; a 150 KiB config with 1,000 routes took most of the 50 ms budget
 * in parsing alone. This reader handles only the plain subset people (and
 * `yaml.stringify`) write in config files:
 *
 *   - block mappings and block sequences indented with spaces, `- key: value` items;
 *   - plain scalars, single-quoted scalars, double-quoted scalars without escapes;
 *   - flow sequences and mappings that open and close on one line (`[a, b]`, `{ up: 5Mbps }`);
 *   - comments, and one leading `---`.
 *
 * Anything else (anchors, aliases, tags, block scalars, multi-line scalars or flows,
 * empty values, duplicate keys, tabs, CR, directives, a second document, any syntax
 * error...) makes it give up by returning `undefined`, and the caller parses the text
 * with `yaml` instead. So this reader never decides what is an error; it only has to
 * agree with `yaml` on the documents it accepts. test/config/fast-yaml.test.ts checks
 * that it does: same values, same positions, on the examples, large generated files
 * and thousands of random mutations.
 *
 * Scalars are typed by `yaml`'s own core-schema tags, so `yes` stays text and `0x1F` is 31.
 */
import { isScalar, LineCounter, Schema } from 'yaml'
import type { ScalarTag } from 'yaml'
import { MAX_DEPTH } from './limits.js'
import { childKey, PositionMap } from './positions.js'

const CORE_TAGS: ScalarTag[] = new Schema({ schema: 'core' }).tags.filter(
  (t): t is ScalarTag => !('collection' in t && t.collection) && t.default === true && t.test instanceof RegExp,
)
const noError = (): void => {}

/** The typed value of a plain scalar, exactly as `yaml` resolves it with the core schema. */
function resolvePlain(s: string): unknown {
  for (const tag of CORE_TAGS) {
    if (tag.test!.test(s)) {
      const r = tag.resolve(s, noError, { intAsBigInt: false } as never)
      return isScalar(r) ? r.value : r
    }
  }
  return s
}

/** Thrown (and caught below) when the text leaves the subset. */
const GIVE_UP = Symbol('give up')
function giveUp(): never {
  throw GIVE_UP
}

interface Line {
  /** Offset of the line's first character. */
  begin: number
  /** Offset of the first non-space character. */
  start: number
  /** Offset of the end of the line (the newline, or the end of the text). */
  end: number
  indent: number
}

const SPACE = 0x20
const HASH = 0x23
const COLON = 0x3a
const DASH = 0x2d
/** Characters a plain scalar may not start with (YAML 1.2 c-indicator). */
const INDICATORS = new Set('-?:,[]{}#&*!|>\'"%@`'.split('').map((c) => c.charCodeAt(0)))
/** Characters that end a plain scalar inside a flow collection. */
const FLOW_END = new Set(',[]{}'.split('').map((c) => c.charCodeAt(0)))

export interface FastParse {
  data: Record<string, unknown>
  positions: PositionMap
}

/** Parse `text` if it is in the plain subset; `undefined` otherwise (use `yaml` then). */
export function fastParse(text: string, file: string): FastParse | undefined {
  if (text.includes('\t') || text.includes('\r')) return undefined
  try {
    return new Reader(text, file).read()
  } catch (err) {
    if (err === GIVE_UP) return undefined
    throw err
  }
}

/** `text.indexOf(needle, from)`, but only within `[from, end)`: searches never run past the line. */
function find(text: string, needle: string, from: number, end: number): number {
  const first = needle.charCodeAt(0)
  const last = end - needle.length
  for (let i = from; i <= last; i++) {
    if (text.charCodeAt(i) === first && (needle.length === 1 || text.startsWith(needle, i))) return i
  }
  return -1
}

class Reader {
  private readonly lines: Line[] = []
  private readonly lc = new LineCounter()
  private readonly positions: PositionMap

  constructor(
    private readonly text: string,
    file: string,
  ) {
    this.positions = new PositionMap(file, this.lc)
  }

  read(): FastParse {
    this.splitLines()
    if (this.lines.length === 0 || this.lines[0]!.indent !== 0 || this.isSeqEntry(this.lines[0]!.start)) giveUp()
    const [data, next] = this.map(0, 0, '', 1)
    if (next !== this.lines.length) giveUp()
    this.positions.setOffsets('', this.lines[0]!.start)
    return { data, positions: this.positions }
  }

  private splitLines(): void {
    const t = this.text
    this.lc.addNewLine(0)
    let sawContent = false
    for (let begin = 0; begin < t.length; ) {
      let end = t.indexOf('\n', begin)
      if (end === -1) end = t.length
      let start = begin
      while (start < end && t.charCodeAt(start) === SPACE) start++
      if (start < end && t.charCodeAt(start) !== HASH) {
        const indent = start - begin
        if (indent === 0 && (t.startsWith('---', start) || t.startsWith('...', start))) {
          const rest = this.skipSpaces(start + 3, end)
          const marker = rest === end || (t.charCodeAt(rest) === HASH && rest > start + 3)
          // A single `---` before the content is fine; anything else is the full parser's business.
          if (!marker || sawContent || t.startsWith('...', start)) giveUp()
        } else {
          if (indent === 0 && t.charCodeAt(start) === 0x25 /* % directive */) giveUp()
          this.lines.push({ begin, start, end, indent })
          sawContent = true
        }
      }
      if (end < t.length) this.lc.addNewLine(end + 1)
      begin = end + 1
    }
  }

  private skipSpaces(p: number, end: number): number {
    while (p < end && this.text.charCodeAt(p) === SPACE) p++
    return p
  }

  /** `- ` or a lone `-` at `p`. */
  private isSeqEntry(p: number): boolean {
    if (this.text.charCodeAt(p) !== DASH) return false
    const next = this.text.charCodeAt(p + 1)
    return Number.isNaN(next) || next === SPACE || next === 0x0a
  }

  /** A block node starting at line `i` (which has the given indent). */
  private block(i: number, indent: number, path: string, depth: number): [unknown, number] {
    if (depth > MAX_DEPTH) giveUp()
    return this.isSeqEntry(this.lines[i]!.start) ? this.seq(i, indent, path, depth) : this.map(i, indent, path, depth)
  }

  /**
   * A block mapping whose keys sit at column `indent`, from line `i`. `first`, when given,
   * is where the first key starts on line `i` (a mapping that opens a `- key: value` item).
   */
  private map(i: number, indent: number, path: string, depth: number, first?: number): [Record<string, unknown>, number] {
    if (depth > MAX_DEPTH) giveUp()
    const out: Record<string, unknown> = {}
    let idx = i
    while (idx < this.lines.length) {
      const line = this.lines[idx]!
      const start = idx === i && first !== undefined ? first : line.start
      const col = start - line.begin
      if (col < indent) break
      if (col > indent || this.isSeqEntry(start)) giveUp()
      const key = this.key(start, line.end)
      if (!key || Object.prototype.hasOwnProperty.call(out, key.name)) giveUp()
      const childPath = childKey(path, key.name)
      const p = this.skipSpaces(key.after, line.end)
      if (p === line.end || (this.text.charCodeAt(p) === HASH && p > key.after)) {
        // The value is on the next lines: a nested block, or a list at the same indent.
        const next = this.lines[idx + 1]
        if (!next) giveUp()
        let value: unknown
        if (next.indent > indent) [value, idx] = this.block(idx + 1, next.indent, childPath, depth + 1)
        else if (next.indent === indent && this.isSeqEntry(next.start)) [value, idx] = this.seq(idx + 1, indent, childPath, depth + 1)
        else giveUp()
        this.positions.setOffsets(childPath, next.start, key.start)
        out[key.name] = value
      } else {
        const [value, valueStart] = this.inline(p, line.end, childPath, depth + 1)
        this.positions.setOffsets(childPath, valueStart, key.start)
        out[key.name] = value
        idx++
        // A more indented line after a one-line value continues it: not ours.
        if (idx < this.lines.length && this.lines[idx]!.indent > indent) giveUp()
      }
    }
    return [out, idx]
  }

  /** A block sequence whose dashes sit at column `indent`, from line `i`. */
  private seq(i: number, indent: number, path: string, depth: number): [unknown[], number] {
    if (depth > MAX_DEPTH) giveUp()
    const out: unknown[] = []
    let idx = i
    while (idx < this.lines.length) {
      const line = this.lines[idx]!
      if (line.indent < indent) break
      if (line.indent > indent) giveUp()
      if (!this.isSeqEntry(line.start)) break // the mapping that holds this list goes on
      const itemPath = childKey(path, out.length)
      const p = this.skipSpaces(line.start + 1, line.end)
      if (p === line.end || this.text.charCodeAt(p) === HASH || this.isSeqEntry(p)) giveUp()
      if (this.key(p, line.end)) {
        const [value, next] = this.map(idx, p - line.begin, itemPath, depth + 1, p)
        this.positions.setOffsets(itemPath, p)
        out.push(value)
        idx = next
      } else {
        const [value, valueStart] = this.inline(p, line.end, itemPath, depth + 1)
        this.positions.setOffsets(itemPath, valueStart)
        out.push(value)
        idx++
        if (idx < this.lines.length && this.lines[idx]!.indent > indent) giveUp()
      }
    }
    return [out, idx]
  }

  /** `key:` at `p` (plain or quoted, then `: ` or `:` at the end of the line), or undefined. */
  private key(p: number, end: number): { name: string; start: number; after: number } | undefined {
    const t = this.text
    const c = t.charCodeAt(p)
    let name: string
    let q: number
    if (c === 0x22 || c === 0x27) {
      const s = this.quoted(p, end)
      if (!s) return undefined
      name = s.value
      q = s.end
    } else {
      if (INDICATORS.has(c)) return undefined
      q = p
      const hash = find(t, ' #', p, end)
      for (;;) {
        q = find(t, ':', q, end)
        if (q === -1) return undefined
        if (hash !== -1 && hash < q) return undefined // a comment before any colon
        const next = t.charCodeAt(q + 1)
        if (q + 1 === end || next === SPACE) break
        q++
      }
      if (t.charCodeAt(q - 1) === SPACE || q - p > 1000) giveUp()
      const resolved = resolvePlain(t.slice(p, q))
      if (resolved === null || typeof resolved === 'object') giveUp()
      name = String(resolved)
    }
    if (t.charCodeAt(q) !== COLON || !(q + 1 === end || t.charCodeAt(q + 1) === SPACE)) return undefined
    return { name, start: p, after: q + 1 }
  }

  /** A one-line value at `p`: a flow collection, a quoted or a plain scalar, then at most a comment. */
  private inline(p: number, end: number, path: string, depth: number): [unknown, number] {
    const t = this.text
    const c = t.charCodeAt(p)
    let value: unknown
    let q: number
    if (c === 0x5b || c === 0x7b) {
      ;[value, q] = this.flow(p, end, path, depth)
    } else if (c === 0x22 || c === 0x27) {
      const s = this.quoted(p, end)
      if (!s) giveUp()
      value = s.value
      q = s.end
    } else {
      if (INDICATORS.has(c) && !(c === DASH && p + 1 < end && !INDICATORS.has(t.charCodeAt(p + 1)) && t.charCodeAt(p + 1) !== SPACE)) giveUp()
      let stop = end
      const hash = find(t, ' #', p, end)
      if (hash !== -1) stop = hash
      let last = stop
      while (last > p && t.charCodeAt(last - 1) === SPACE) last--
      const pair = find(t, ': ', p, last)
      if (pair !== -1 || t.charCodeAt(last - 1) === COLON) giveUp() // a mapping inside a value
      value = resolvePlain(t.slice(p, last))
      return [value, p]
    }
    const rest = this.skipSpaces(q, end)
    if (rest !== end && !(t.charCodeAt(rest) === HASH && rest > q)) giveUp()
    return [value, p]
  }

  /** A quoted scalar that closes on this line; double quotes only without escapes. */
  private quoted(p: number, end: number): { value: string; end: number } | undefined {
    const t = this.text
    const quote = t[p]!
    if (quote === '"') {
      const close = find(t, '"', p + 1, end)
      if (close === -1) return undefined
      const body = t.slice(p + 1, close)
      if (body.includes('\\')) giveUp()
      return { value: body, end: close + 1 }
    }
    let value = ''
    let q = p + 1
    for (;;) {
      const close = find(t, "'", q, end)
      if (close === -1) return undefined
      value += t.slice(q, close)
      if (t[close + 1] === "'") {
        value += "'"
        q = close + 2
      } else return { value, end: close + 1 }
    }
  }

  /** A flow sequence or mapping that closes on this line. Returns the value and the offset after it. */
  private flow(p: number, end: number, path: string, depth: number): [unknown, number] {
    if (depth > MAX_DEPTH) giveUp()
    const t = this.text
    const isSeq = t.charCodeAt(p) === 0x5b
    const close = isSeq ? 0x5d : 0x7d
    const seq: unknown[] = []
    const map: Record<string, unknown> = {}
    let q = this.skipSpaces(p + 1, end)
    if (t.charCodeAt(q) === close) return [isSeq ? seq : map, q + 1]
    for (;;) {
      if (q >= end) giveUp()
      if (isSeq) {
        const itemPath = childKey(path, seq.length)
        const [v, vEnd] = this.flowItem(q, end, itemPath, depth + 1)
        this.positions.setOffsets(itemPath, q)
        seq.push(v)
        q = vEnd
      } else {
        const keyStart = q
        const c = t.charCodeAt(q)
        if (INDICATORS.has(c)) giveUp()
        const colon = find(t, ': ', q, end)
        if (colon === -1) giveUp()
        const raw = t.slice(q, colon)
        if (/[,[\]{}#]|:/.test(raw) || raw.endsWith(' ')) giveUp()
        const resolved = resolvePlain(raw)
        if (resolved === null || typeof resolved === 'object') giveUp()
        const name = String(resolved)
        if (Object.prototype.hasOwnProperty.call(map, name)) giveUp()
        q = this.skipSpaces(colon + 2, end)
        const c2 = t.charCodeAt(q)
        if (c2 === 0x2c || c2 === close) giveUp() // an empty value
        const childPath = childKey(path, name)
        const [v, vEnd] = this.flowItem(q, end, childPath, depth + 1)
        this.positions.setOffsets(childPath, q, keyStart)
        map[name] = v
        q = vEnd
      }
      q = this.skipSpaces(q, end)
      const c = t.charCodeAt(q)
      if (c === close) return [isSeq ? seq : map, q + 1]
      if (c !== 0x2c) giveUp()
      q = this.skipSpaces(q + 1, end)
      if (t.charCodeAt(q) === close) giveUp() // a trailing comma
    }
  }

  /** A value inside a flow collection: a nested flow, a quoted or a plain scalar. */
  private flowItem(p: number, end: number, path: string, depth: number): [unknown, number] {
    const t = this.text
    const c = t.charCodeAt(p)
    if (c === 0x5b || c === 0x7b) return this.flow(p, end, path, depth)
    if (c === 0x22 || c === 0x27) {
      const s = this.quoted(p, end)
      if (!s) giveUp()
      const after = t.charCodeAt(this.skipSpaces(s.end, end))
      if (after === COLON) giveUp() // "key": value inside a list
      return [s.value, s.end]
    }
    if (INDICATORS.has(c) && !(c === DASH && p + 1 < end && !INDICATORS.has(t.charCodeAt(p + 1)) && t.charCodeAt(p + 1) !== SPACE)) giveUp()
    let q = p
    while (q < end) {
      const d = t.charCodeAt(q)
      if (FLOW_END.has(d)) break
      if (d === COLON) {
        const next = t.charCodeAt(q + 1)
        if (q + 1 >= end || next === SPACE || FLOW_END.has(next)) giveUp() // a pair inside a list
      }
      if (d === HASH && t.charCodeAt(q - 1) === SPACE) giveUp()
      q++
    }
    let last = q
    while (last > p && t.charCodeAt(last - 1) === SPACE) last--
    if (last === p) giveUp()
    return [resolvePlain(t.slice(p, last)), q]
  }
}
