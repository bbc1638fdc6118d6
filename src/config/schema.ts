/**
 * The JSON Schema and its validator: ajv errors → diagnostics people can act on.
 *
 * The schema file (`schemas/quicether.schema.json`) is the published contract for
 * editors; it is read once at import. It is compiled ahead of time into
 * `schemas/quicether.validator.generated.js` (`node scripts/gen-validator.mjs`, run by
 * `npm run build`; a test fails when it is stale), so no process pays ajv's compile at start.
 * Value formats (prefixes, units, endpoints, keys) are only sketched by the schema's
 * patterns; the messages for them come from the same parsers the semantic pass uses.
 */
import { readFileSync } from 'node:fs'
import type { ErrorObject } from 'ajv/dist/2020.js'
import type { DiagnosticCode } from './diagnostics.js'
import { parseAddress, parsePrefix } from '../net/index.js'
import { parseEndpoint, parsePortSpec, parsePublicKey } from './syntax.js'
import type { Path } from './positions.js'
import { formatPath } from './positions.js'
import { closest, suggestKey } from './suggest.js'
import { parseBitrate, parseDuration, parseSize } from './units.js'
// The schema compiled ahead of time (scripts/gen-validator.mjs), beside it in both src/ and dist/.
import { validate } from '../../schemas/quicether.validator.generated.js'

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/** The JSON schema object (2020-12), frozen. Same content as `schemas/quicether.schema.json`. */
export const SCHEMA: object = deepFreeze(
  JSON.parse(readFileSync(new URL('../../schemas/quicether.schema.json', import.meta.url), 'utf8')) as object,
)

/** Where the schema file lives (for `quicether schema` and the examples' `$schema` comment). */
export const SCHEMA_URL = new URL('../../schemas/quicether.schema.json', import.meta.url)

export interface SchemaProblem {
  path: Path
  at: 'key' | 'value'
  code: DiagnosticCode
  message: string
}

/** Validate the raw document; every problem, translated. Empty when the document fits the schema. */
export function checkSchema(data: unknown): SchemaProblem[] {
  if (validate(data)) return []
  const out: SchemaProblem[] = []
  const seen = new Set<string>()
  for (const e of validate.errors ?? []) {
    const p = translate(e, data)
    if (!p) continue
    const id = `${formatPath(p.path)}\u0000${p.message}`
    if (seen.has(id)) continue
    seen.add(id)
    out.push(p)
  }
  return out
}

// --- translation -------------------------------------------------------------------------

/** What a value of each `$defs` entry is, for "expected …" messages. */
const DEF_NOUN: Record<string, string> = {
  name: "a name (lowercase letters, digits and dashes, like 'office-gw')",
  ifname: 'an interface name (at most 15 characters, like eth0)',
  cidr: 'a prefix in CIDR notation (like 10.0.0.0/16)',
  ip: 'an IP address',
  port: 'a port number (1..65535)',
  portSpec: 'a port (22) or a range ("8000-8100")',
  endpoint: 'host:port (like vpn.example.com:7443)',
  listenAddress: 'host:port (like 127.0.0.1:9586)',
  publicKey: 'an Ed25519 public key (44 characters of standard base64)',
  bitrate: 'a bit rate (like 25Mbps)',
  duration: 'a duration (like 500ms or 2s)',
  size: 'a size (like 4MB or 64KiB)',
}

/** The parser that explains why a value of a `$defs` format is wrong. */
const DEF_PARSER: Record<string, (v: unknown) => { error?: string; code?: DiagnosticCode }> = {
  cidr: parsePrefix,
  ip: parseAddress,
  endpoint: (v) => parseEndpoint(v, 7443),
  listenAddress: (v) => parseEndpoint(v),
  publicKey: parsePublicKey,
  portSpec: parsePortSpec,
  bitrate: (v) => ({ ...parseBitrate(v), code: 'bad-unit' }),
  duration: (v) => ({ ...parseDuration(v), code: 'bad-unit' }),
  size: (v) => ({ ...parseSize(v), code: 'bad-unit' }),
}

/** Nouns for the `if/then/else` unions, by the schema path of the union. */
const UNION_NOUN: Record<string, string> = {
  '#/properties/tun/properties/mtu': '"auto" or a number from 1280 to 9000',
  '#/properties/subnets/items': 'a prefix (like 192.168.1.0/24) or a mapping with prefix and exit',
  '#/properties/multipath/properties/traffic-classes/items/properties/match/properties/dscp/items': 'a DSCP value (0..63) or name (EF, AF41, CS1, …)',
  '#/$defs/portSpec': DEF_NOUN.portSpec!,
}

const TYPE_NOUN: Record<string, string> = {
  string: 'text',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  null: 'nothing',
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing'
  if (typeof v === 'string') return `the text '${v.length > 40 ? v.slice(0, 40) + '…' : v}'`
  if (typeof v === 'number') return `the number ${v}`
  if (typeof v === 'boolean') return `${v}`
  if (Array.isArray(v)) return 'a list'
  return 'a mapping'
}

function toPath(pointer: string, data: unknown): (string | number)[] {
  if (pointer === '') return []
  const out: (string | number)[] = []
  let cur: unknown = data
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(cur)) {
      out.push(Number(seg))
      cur = cur[Number(seg)]
    } else {
      out.push(seg)
      cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined
    }
  }
  return out
}

/** `#/$defs/cidr/pattern` → `cidr`. */
function defOf(schemaPath: string): string | undefined {
  return /^#\/\$defs\/([^/]+)\//.exec(schemaPath)?.[1]
}

/** The schema path of the union an error sits in (`…/mtu/then/const` → `…/mtu`). */
function unionOf(schemaPath: string): string | undefined {
  const m = /^(.*)\/(then|else)\/[^/]+$/.exec(schemaPath)
  return m?.[1]
}

function schemaAt(schemaPath: string): Record<string, unknown> | undefined {
  let cur: unknown = SCHEMA
  for (const raw of schemaPath.replace(/^#\/?/, '').split('/')) {
    if (raw === '') continue
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined
  }
  return cur && typeof cur === 'object' ? (cur as Record<string, unknown>) : undefined
}

function translate(e: ErrorObject, data: unknown): SchemaProblem | undefined {
  const path = toPath(e.instancePath, data)
  const value = e.data
  const def = defOf(e.schemaPath)
  const union = unionOf(e.schemaPath)
  switch (e.keyword) {
    case 'if':
      return undefined // the failing then/else branch says what is wrong
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty)
      const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {}
      const hint = suggestKey(key, Object.keys(props), keyIndex())
      return { path: [...path, key], at: 'key', code: 'unknown-key', message: `unknown key '${key}'${hint ? `; ${hint}` : ''}` }
    }
    case 'required': {
      const key = String((e.params as { missingProperty: string }).missingProperty)
      const where = path.length === 0 ? 'at the top level' : `in ${formatPath(path)}`
      return { path: [...path, key], at: 'value', code: 'missing-key', message: `missing required key '${key}' ${where}` }
    }
    case 'propertyNames':
      return undefined // reported by the inner error, which carries the name
    case 'type': {
      const noun = def ? DEF_NOUN[def] : union && UNION_NOUN[union] ? UNION_NOUN[union] : typeNoun(String((e.params as { type: string }).type))
      return { path, at: 'value', code: 'wrong-type', message: `expected ${noun}, found ${describe(value)}${typeHint(String((e.params as { type: string }).type), value)}` }
    }
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String)
      const near = typeof value === 'string' ? closest(value, allowed) : undefined
      const hint = near ? `; did you mean '${near}'?` : ''
      return { path, at: 'value', code: 'bad-value', message: `${describe(value)} is not one of: ${allowed.join(', ')}${hint}` }
    }
    case 'const': {
      const noun = union ? UNION_NOUN[union] : undefined
      return { path, at: 'value', code: 'bad-value', message: `${describe(value)} is not allowed here; expected ${noun ?? JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}` }
    }
    case 'pattern':
      return patternProblem(e, path, value, def, union)
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const limit = (e.params as { limit: number }).limit
      if (def && DEF_PARSER[def]) {
        const r = DEF_PARSER[def]!(value)
        if (r.error) return { path, at: 'value', code: r.code ?? 'bad-value', message: r.error }
      }
      const noun = def ? DEF_NOUN[def] : union ? UNION_NOUN[union] : undefined
      const word = e.keyword.startsWith('min') || e.keyword === 'exclusiveMinimum' ? 'small' : 'large'
      const bound = e.keyword === 'minimum' ? `at least ${limit}` : e.keyword === 'maximum' ? `at most ${limit}` : e.keyword === 'exclusiveMinimum' ? `more than ${limit}` : `less than ${limit}`
      const base = `${String(value)} is too ${word}: must be ${bound}`
      return { path, at: 'value', code: def === 'port' || def === 'portSpec' ? 'bad-port-range' : 'bad-value', message: noun ? `${base} (${noun})` : base }
    }
    case 'minLength':
      return { path, at: 'value', code: 'bad-value', message: 'must not be empty' }
    default:
      return { path, at: 'value', code: 'bad-value', message: e.message ?? 'is not valid' }
  }
}

function typeNoun(type: string): string {
  return type
    .split(',')
    .map((t) => TYPE_NOUN[t] ?? t)
    .join(' or ')
}

function typeHint(expected: string, value: unknown): string {
  if (expected === 'boolean' && typeof value === 'string' && /^(yes|no|on|off|y|n|true|false)$/i.test(value)) {
    return ` (write true or false without quotes; YAML 1.2 reads '${value}' as text)`
  }
  if ((expected === 'integer' || expected === 'number') && typeof value === 'string' && /^[0-9.]+$/.test(value)) {
    return ' (write the number without quotes)'
  }
  if (expected === 'array' && (typeof value === 'string' || typeof value === 'number')) {
    // A message is one line: a text of several lines (a block scalar) is suggested only as the flow list.
    const text = String(value)
    if (text.includes('\n') || text.length > 60) return ' (write a list: [ … ], or one "- item" per line)'
    return ` (write a list: [${JSON.stringify(value)}] or "- ${text}" on its own line)`
  }
  return ''
}

function patternProblem(e: ErrorObject, path: Path, value: unknown, def: string | undefined, union: string | undefined): SchemaProblem {
  // A group name or other map key: the error carries the key, and the path is the map.
  const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName
  if (propertyName !== undefined) {
    return { path: [...path, propertyName], at: 'key', code: 'bad-value', message: `'${propertyName}' is not a valid name: use lowercase letters, digits and dashes (1..63, no leading or trailing dash)` }
  }
  if (def && DEF_PARSER[def]) {
    const r = DEF_PARSER[def]!(value)
    if (r.error) return { path, at: 'value', code: r.code ?? 'bad-value', message: r.error }
  }
  if (def === 'name') {
    const lower = typeof value === 'string' ? value.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') : ''
    const hint = lower && lower !== value ? `; did you mean '${lower.slice(0, 63)}'?` : ''
    return { path, at: 'value', code: 'bad-value', message: `${describe(value)} is not a valid name: use lowercase letters, digits and dashes (1..63, no leading or trailing dash)${hint}` }
  }
  if (def) return { path, at: 'value', code: 'bad-value', message: `${describe(value)} is not ${DEF_NOUN[def] ?? 'valid'}` }
  if (union && UNION_NOUN[union]) return { path, at: 'value', code: 'bad-value', message: `${describe(value)} is not ${UNION_NOUN[union]}` }
  const desc = schemaAt(e.schemaPath.replace(/\/pattern$/, ''))?.description
  return { path, at: 'value', code: 'bad-value', message: `${describe(value)} is not valid here${typeof desc === 'string' ? `: ${lowerFirst(desc)}` : ''}` }
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1).replace(/\.$/, '')
}

// --- key index, for "did you mean multipath.scheduler?" -----------------------------------

let index: Map<string, string[]> | undefined

/** Every key of the schema → the dotted paths of the objects that allow it (`[]` marks list items). */
export function keyIndex(): ReadonlyMap<string, readonly string[]> {
  if (index) return index
  const out = new Map<string, string[]>()
  const defs = (SCHEMA as { $defs?: Record<string, unknown> }).$defs ?? {}
  const visit = (s: unknown, where: string, depth: number): void => {
    if (!s || typeof s !== 'object' || depth > 12) return
    const node = s as Record<string, unknown>
    if (typeof node.$ref === 'string') visit(defs[node.$ref.replace('#/$defs/', '')], where, depth + 1)
    if (node.properties && typeof node.properties === 'object') {
      for (const [k, sub] of Object.entries(node.properties as Record<string, unknown>)) {
        out.set(k, [...(out.get(k) ?? []), where])
        visit(sub, where === '' ? k : `${where}.${k}`, depth + 1)
      }
    }
    for (const k of ['items', 'then', 'else'] as const) {
      if (node[k]) visit(node[k], k === 'items' ? `${where}[]` : where, depth + 1)
    }
  }
  visit(SCHEMA, '', 0)
  index = out
  return out
}
