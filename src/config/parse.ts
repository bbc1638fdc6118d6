/**
 * Text → plain JS document + positions, refusing hostile input with one clear diagnostic.
 *
 * We build the JS value ourselves while walking the YAML AST instead of calling
 * `toJS()`: one pass records the position of every key and value, catches
 * duplicate keys (with the line of the first one), rejects non-string keys, and
 * charges every alias for the size of what it expands to, so an alias bomb
 * ("billion laughs") stops at a budget instead of exhausting memory.
 *
 * Plain files (no anchors, tags, errors...) take the fast path first (parse-fast.ts,
 * `js-yaml`); their positions are built with `yaml` only if a diagnostic asks for one.
 */
import { LineCounter, parseAllDocuments, isAlias, isMap, isPair, isScalar, isSeq } from 'yaml'
import type { Node as YamlNode, Document } from 'yaml'
import type { Diagnostic, DiagnosticCode } from './diagnostics.js'
import { parseFast, setOwn } from './parse-fast.js'
import { MAX_ALIAS_EXPANSION, MAX_CONFIG_BYTES, MAX_DEPTH } from './limits.js'
import { LazyPositions, PositionMap, childKey } from './positions.js'
import type { Position, Positions } from './positions.js'

export { MAX_ALIAS_EXPANSION, MAX_CONFIG_BYTES, MAX_DEPTH }

export type ParseResult<P extends Positions = Positions> =
  | { ok: true; data: Record<string, unknown>; positions: P; diagnostics: Diagnostic[] }
  | { ok: false; diagnostics: Diagnostic[] }

class Fatal extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message)
  }
}

function diag(file: string, pos: Position, code: DiagnosticCode, message: string, path = ''): Diagnostic {
  return { file, line: pos.line, col: pos.col, path, severity: 'error', code, message }
}

// Control characters YAML forbids in a document (tab, LF, CR are fine).
// eslint-disable-next-line no-control-regex -- finding them is the point
const BINARY = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/

export function parseConfigText(text: string, file: string): ParseResult {
  const start: Position = { line: 1, col: 1 }
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > MAX_CONFIG_BYTES) {
    return { ok: false, diagnostics: [diag(file, start, 'too-large', `file is too large (${formatBytes(bytes)}; the limit is ${formatBytes(MAX_CONFIG_BYTES)})`)] }
  }
  const bin = BINARY.exec(text)
  if (bin) {
    const before = text.slice(0, bin.index)
    const line = before.split('\n').length
    const col = bin.index - before.lastIndexOf('\n')
    return { ok: false, diagnostics: [diag(file, { line, col }, 'not-text', 'not a text file (it contains binary data)')] }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1) // a UTF-8 byte-order mark is harmless
  const deep = tooDeepAt(text)
  if (deep !== -1) {
    const before = text.slice(0, deep)
    const line = before.split('\n').length
    const col = deep - before.lastIndexOf('\n')
    return { ok: false, diagnostics: [diag(file, { line, col }, 'too-deep', `nesting is too deep (more than ${MAX_DEPTH} levels)`)] }
  }

  // Plain config files take the fast path; everything else (and every error) goes through `yaml`.
  const data = parseFast(text)
  if (data) return { ok: true, data, positions: new LazyPositions(() => positionsWithYaml(text, file), { text, file }), diagnostics: [] }
  return parseWithYaml(text, file)
}

/** The positions of a document the fast path read (so `yaml` reads it the same way, without errors). */
export function positionsWithYaml(text: string, file: string): PositionMap {
  const r = parseWithYaml(text, file)
  // Unreachable while both paths agree (parse-fast.test.ts); line 1 beats an exception.
  return r.ok ? r.positions : new PositionMap(file)
}

/** The reference path: the `yaml` package, for any text. Exported for the fast path's tests. */
export function parseWithYaml(text: string, file: string): ParseResult<PositionMap> {
  const start: Position = { line: 1, col: 1 }
  const lc = new LineCounter()
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false, strict: true })
  if (!Array.isArray(docs) || docs.length === 0) {
    return { ok: false, diagnostics: [diag(file, start, 'empty', 'the file is empty: expected a mapping with at least `node` and `network`')] }
  }
  const doc = docs[0] as Document.Parsed
  const diagnostics: Diagnostic[] = []
  for (const e of doc.errors) {
    const code: DiagnosticCode = e.code === 'RESOURCE_EXHAUSTION' ? 'too-deep' : 'yaml-syntax'
    const msg = code === 'too-deep' ? `nesting is too deep (more than ${MAX_DEPTH} levels)` : `YAML syntax: ${firstLine(e.message)}`
    diagnostics.push(diag(file, toPos(lc, e.pos[0]), code, msg))
    if (code === 'too-deep') break
  }
  const extra = docs.slice(1).find((d) => d.contents !== null || d.errors.length > 0)
  if (extra) {
    const at = extra.range[0]
    diagnostics.push(diag(file, toPos(lc, at), 'multiple-documents', 'more than one YAML document (`---`): a config file holds exactly one'))
  }
  if (diagnostics.length > 0) return { ok: false, diagnostics }

  const root = doc.contents
  if (root === null || (isScalar(root) && root.value === null)) {
    return { ok: false, diagnostics: [diag(file, root ? toPos(lc, root.range[0]) : start, 'empty', 'the file is empty: expected a mapping with at least `node` and `network`')] }
  }
  if (!isMap(root)) {
    const what = isSeq(root) ? 'a list' : isScalar(root) ? `${describe(root.value)}` : 'an alias'
    return { ok: false, diagnostics: [diag(file, toPos(lc, root.range[0]), 'not-a-mapping', `expected a mapping of settings (key: value) at the top level, found ${what}`)] }
  }

  const positions = new PositionMap(file, lc)
  const walker = new Walker(file, positions, doc)
  try {
    positions.setOffsets('', root.range[0])
    const data = walker.build(root, '', 0) as Record<string, unknown>
    return { ok: true, data, positions, diagnostics: walker.diagnostics }
  } catch (err) {
    if (err instanceof Fatal) return { ok: false, diagnostics: [err.diagnostic] }
    throw err
  }
}

/**
 * Where flow brackets (`[[[[…`) or compact lists (`- - - …`) nest deeper than MAX_DEPTH, or -1.
 * A quick scan that skips quoted text and comments, so 10,000-deep input is refused in
 * a millisecond instead of exhausting the parser's stack. The walker enforces the exact limit.
 */
function tooDeepAt(text: string): number {
  let depth = 0
  let quote = 0 // the open quote character, or 0
  let comment = false
  let lineStart = true
  let dashes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x0a) {
      comment = false
      lineStart = true
      dashes = 0
      continue
    }
    if (comment) continue
    if (quote !== 0) {
      if (c === 0x5c && quote === 0x22) i++ // \" inside double quotes
      else if (c === quote) {
        if (quote === 0x27 && text.charCodeAt(i + 1) === 0x27) i++ // '' inside single quotes
        else quote = 0
      }
      continue
    }
    if (lineStart) {
      if (c === 0x20) continue
      if (c === 0x2d && (text.charCodeAt(i + 1) === 0x20 || text.charCodeAt(i + 1) === 0x0a)) {
        if (++dashes > MAX_DEPTH) return i
        i++
        continue
      }
      lineStart = false
    }
    if (c === 0x23 && (i === 0 || text.charCodeAt(i - 1) === 0x20 || text.charCodeAt(i - 1) === 0x09)) comment = true
    else if (c === 0x22 || c === 0x27) quote = c
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) return i
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--
  }
  return -1
}

class Walker {
  readonly diagnostics: Diagnostic[] = []
  private aliasBudget = MAX_ALIAS_EXPANSION
  /** Built values of anchored nodes, so an alias reuses the first build. */
  private readonly built = new Map<YamlNode, { value: unknown; size: number }>()
  private nodes = 0

  constructor(
    private readonly file: string,
    private readonly positions: PositionMap,
    private readonly doc: Document.Parsed,
  ) {}

  /** The JS value of `node`, whose formatted path is `path`; records the positions beneath it. */
  build(node: unknown, path: string, depth: number): unknown {
    if (depth > MAX_DEPTH) {
      throw new Fatal(diag(this.file, this.pos(node), 'too-deep', `nesting is too deep (more than ${MAX_DEPTH} levels)`))
    }
    if (isAlias(node)) {
      const target = node.resolve(this.doc)
      if (!target) throw new Fatal(diag(this.file, this.pos(node), 'yaml-syntax', `YAML syntax: unknown alias *${node.source}`))
      const prev = this.built.get(target)
      if (!prev) {
        throw new Fatal(diag(this.file, this.pos(node), 'yaml-syntax', `YAML syntax: alias *${node.source} refers to a value that contains it`))
      }
      // Charge the alias for everything it expands to, so nested aliases add up.
      this.aliasBudget -= prev.size
      this.nodes += prev.size
      if (this.aliasBudget < 0) {
        throw new Fatal(diag(this.file, this.pos(node), 'alias-limit', `aliases expand to more than ${MAX_ALIAS_EXPANSION} values (an "alias bomb"?)`))
      }
      return structuredClone(prev.value)
    }
    const before = this.nodes++
    let value: unknown
    if (isMap(node)) {
      const out: Record<string, unknown> = {}
      const seen = new Map<string, number>()
      for (const pair of node.items) {
        if (!isPair(pair)) continue
        const k = pair.key
        if (!isScalar(k) || (typeof k.value !== 'string' && typeof k.value !== 'number' && typeof k.value !== 'boolean')) {
          this.diagnostics.push(diag(this.file, this.pos(k ?? node), 'yaml-syntax', 'a mapping key must be a plain word, not a list, a mapping or null', path))
          continue
        }
        const key = String(k.value)
        const keyOffset = k.range![0]
        const childPath = childKey(path, key)
        const first = seen.get(key)
        if (first !== undefined) {
          const line = this.positions.position(first).line
          this.diagnostics.push(diag(this.file, this.pos(k), 'duplicate-key', `duplicate key '${key}' (first defined at line ${line})`, childPath))
          continue
        }
        seen.set(key, keyOffset)
        const child = pair.value as YamlNode | null
        this.positions.setOffsets(childPath, child?.range ? child.range[0] : keyOffset, keyOffset)
        setOwn(out, key, child === null ? null : this.build(child, childPath, depth + 1))
      }
      value = out
    } else if (isSeq(node)) {
      const out: unknown[] = []
      const items = node.items
      for (let i = 0; i < items.length; i++) {
        const item = items[i] as YamlNode | null
        const childPath = childKey(path, i)
        this.positions.setOffsets(childPath, item?.range ? item.range[0] : node.range![0])
        out.push(item === null ? null : this.build(item, childPath, depth + 1))
      }
      value = out
    } else if (isScalar(node)) {
      value = node.value
      if (typeof value === 'bigint') value = Number(value)
    } else {
      value = null
    }
    const n = node as YamlNode
    if (n.anchor) this.built.set(n, { value, size: this.nodes - before })
    return value
  }

  private pos(node: unknown): Position {
    const range = (node as { range?: [number, number, number] } | null)?.range
    return range ? this.positions.position(range[0]) : { line: 1, col: 1 }
  }
}


function toPos(lc: LineCounter, offset: number): Position {
  const p = lc.linePos(offset)
  return { line: p.line, col: p.col }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').trim()
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `the text '${v.length > 40 ? v.slice(0, 40) + '…' : v}'`
  if (typeof v === 'number') return `the number ${v}`
  if (typeof v === 'boolean') return `the value ${v}`
  return 'a single value'
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1).replace(/\.0$/, '')} MiB`
  if (n >= 1024) return `${(n / 1024).toFixed(1).replace(/\.0$/, '')} KiB`
  return `${n} B`
}
