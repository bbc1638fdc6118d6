/**
 * The fast path for plain config files: `js-yaml`, beside the `yaml` package (parse.ts).
 *
 * Why: `yaml` builds a full document model (CST, nodes, comments) and needs about
 * 100 ms for a 150 KiB config with 1,000 routes, twice the whole load budget. `js-yaml`
 * builds the values straight from its event stream, several times faster. It keeps no
 * positions, so the loader asks `yaml` for them only when a diagnostic needs one.
 *
 * The fast path never decides what is an error. It returns `undefined` (and the
 * caller parses with `yaml`, which owns every guard and every message) for anything
 * beyond plain data: anchors, aliases, tags, merge keys (`<<`), directives, no or
 * several documents, null or complex keys, a top level that is not a mapping, text
 * whose lines `yaml` reads differently (a lone CR, a byte-order mark inside, a line
 * over 1,000 characters, a comment line left of the content after it), and anything `js-yaml` itself refuses (syntax errors,
 * duplicate keys, depth).
 * test/config/parse-fast.test.ts checks that on what it accepts both paths give the
 * same data: the examples, large generated configs and thousands of random edits.
 */
import { constructFromEvents, CORE_SCHEMA, defineMappingTag, EVENT_ID, parseEvents, SCALAR_STYLE } from 'js-yaml'
import type { Event } from 'js-yaml'
import { MAX_DEPTH } from './limits.js'

/** The document as plain data when `text` is plain data that js-yaml reads; `undefined` otherwise. */
export function parseFast(text: string): Record<string, unknown> | undefined {
  if (!sameLines(text)) return undefined
  let events: Event[]
  try {
    // js-yaml's nesting limit is one level stricter than the `yaml` path's: what it
    // refuses goes to `yaml`, which gives the exact verdict.
    events = parseEvents(text, { maxDepth: MAX_DEPTH })
  } catch {
    return undefined
  }
  if (!plain(events, text)) return undefined
  let docs: unknown[]
  try {
    docs = constructFromEvents(events, { source: text, schema: SCHEMA, json: false, maxAliases: 0 })
  } catch {
    return undefined
  }
  const doc = docs[0]
  if (docs.length !== 1 || doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined
  return doc as Record<string, unknown>
}

/** `obj[key] = value`, except that `__proto__` becomes an own key, never the prototype. Both paths use it. */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, configurable: true, writable: true })
  else obj[key] = value
}

/**
 * Mappings as plain objects, like CORE_SCHEMA's own, with the keys the `yaml` path
 * accepts: strings, numbers and booleans, as text. A null or complex key is refused
 * (so `yaml` reports it), and `__proto__` is an ordinary own key.
 */
const mapTag = defineMappingTag<Record<string, unknown>>('tag:yaml.org,2002:map', {
  create: () => ({}),
  addPair: (map, key, value) => {
    if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'boolean') return 'a mapping key must be a plain word'
    setOwn(map, String(key), value)
    return ''
  },
  has: (map, key) => Object.prototype.hasOwnProperty.call(map, String(key)),
  keys: (map) => Object.keys(map),
  get: (map, key) => map[String(key)],
  identify: () => false, // load only
})

/** YAML 1.2 core schema, as the `yaml` package resolves plain scalars (`yes` is text, `0x1F` is 31). */
const SCHEMA = CORE_SCHEMA.withTags(mapTag)

const ODD_BREAK = /\r(?!\n)|\uFEFF/
/** Longest line we read (`yaml` refuses implicit keys of more than 1,024 characters). */
const MAX_LINE = 1000

/**
 * Whether js-yaml sees the lines `yaml` sees. Not when there is a lone CR (a line break
 * to js-yaml, as in YAML 1.2, but not to `yaml`) or a byte-order mark past the start;
 * and js-yaml takes implicit keys of any length, which sit on one line, so no line may
 * be too long. Nor when a comment line stands left of the content line after it: after
 * `key:`, a blank line and a comment in column 0, `yaml` takes an indented plain value
 * for the start of a new key ("Implicit keys need to be on a single line") where js-yaml
 * reads the value (`a:\n\n# c\n x` is `{a: x}` to js-yaml); such a layout is rare, so
 * any comment left of the next content line goes to `yaml`.
 */
function sameLines(text: string): boolean {
  if (ODD_BREAK.test(text)) return false
  let commentIndent = Infinity // the leftmost comment line since the last content line
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    if (end - start > MAX_LINE) return false
    let i = start
    while (i < end && (text[i] === ' ' || text[i] === '\t')) i++
    if (text[i] === '#') commentIndent = Math.min(commentIndent, i - start)
    else if (i < end && text[i] !== '\r') {
      if (i - start > commentIndent) return false
      commentIndent = Infinity
    }
    start = end + 1
  }
  return true
}

/** One document, no directive, and no anchor, alias, tag or merge key (`<<`) anywhere. */
function plain(events: readonly Event[], text: string): boolean {
  let documents = 0
  for (const e of events) {
    switch (e.type) {
      case EVENT_ID.DOCUMENT:
        if (++documents > 1 || e.directives.length > 0) return false
        break
      case EVENT_ID.ALIAS:
        return false
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE:
        if (e.anchorStart !== -1 || e.tagStart !== -1) return false
        break
      case EVENT_ID.SCALAR:
        if (e.anchorStart !== -1 || e.tagStart !== -1) return false
        if (e.style === SCALAR_STYLE.PLAIN && e.valueEnd - e.valueStart === 2 && text.startsWith('<<', e.valueStart)) return false
        break
      case EVENT_ID.POP:
        break
    }
  }
  return documents === 1
}
