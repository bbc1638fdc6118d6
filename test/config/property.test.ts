/**
 * Random damage to the valid examples never makes the loader throw: it returns a result,
 * every diagnostic is well-formed, and whatever still loads is a frozen config that
 * round-trips through the renderer.
 */
import { readdirSync, readFileSync } from 'node:fs'
import fc from 'fast-check'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { DIAGNOSTIC_CODES, loadConfigText, renderConfigYaml } from '../../src/config/index.js'
import type { ConfigOverride, LoadResult } from '../../src/config/index.js'

const root = new URL('../../', import.meta.url)
const texts = ['quicether.example.yaml', ...readdirSync(new URL('examples/', root)).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${f}`)].map((f) =>
  readFileSync(new URL(f, root), 'utf8'),
)
const known = new Set<string>(DIAGNOSTIC_CODES)

function wellFormed(r: LoadResult, file: string, sources: ReadonlySet<string> = new Set()): boolean {
  for (const d of r.diagnostics) {
    const fromFlag = sources.has(d.file)
    if (d.file !== file && !fromFlag) throw new Error(`diagnostic names ${d.file}`)
    const minLine = fromFlag ? 0 : 1
    if (!Number.isInteger(d.line) || !Number.isInteger(d.col) || d.line < minLine || d.col < minLine) throw new Error(`bad position ${JSON.stringify(d)}`)
    if (!known.has(d.code)) throw new Error(`unknown code ${d.code}`)
    if (d.severity !== 'error' && d.severity !== 'warning') throw new Error(`bad severity ${JSON.stringify(d)}`)
    if (d.message.length === 0 || d.message.includes('\n')) throw new Error(`bad message ${JSON.stringify(d.message)}`)
  }
  if (r.ok) {
    if (!Object.isFrozen(r.config) || !Object.isFrozen(r.config.network.overlay)) throw new Error('config not frozen')
    const again = loadConfigText(renderConfigYaml(r.config), 'rendered.yaml')
    if (!again.ok) throw new Error(`rendered config does not load: ${JSON.stringify(again.diagnostics)}`)
  } else if (!r.diagnostics.some((d) => d.severity === 'error')) {
    throw new Error('a failed load without an error')
  }
  return true
}

// Text damage: deletions, insertions of YAML-significant characters, swapped and duplicated lines.
const yamlish = fc.string({ unit: fc.constantFrom(...': -[]{},&*!|>\'"%@`#?\n\t\\0123abcXYZ.~/é\u0000'.split('')), maxLength: 12 })
const edit = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: yamlish }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('dup' as const), a: fc.nat() }),
)
type Edit = typeof edit extends fc.Arbitrary<infer E> ? E : never

function damage(text: string, edits: Edit[]): string {
  for (const e of edits) {
    if (e.kind === 'delete') {
      const at = e.at % (text.length + 1)
      text = text.slice(0, at) + text.slice(at + e.len)
    } else if (e.kind === 'insert') {
      const at = e.at % (text.length + 1)
      text = text.slice(0, at) + e.text + text.slice(at)
    } else {
      const lines = text.split('\n')
      const a = e.a % lines.length
      if (e.kind === 'dup') lines.splice(a, 0, lines[a]!)
      else {
        const b = e.b % lines.length
        ;[lines[a], lines[b]] = [lines[b]!, lines[a]!]
      }
      text = lines.join('\n')
    }
  }
  return text
}

t.test('text damage never throws', async (t) => {
  fc.assert(
    fc.property(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 6 }), (i, edits) => {
      const text = damage(texts[i % texts.length]!, edits)
      return wellFormed(loadConfigText(text, 'mut.yaml'), 'mut.yaml')
    }),
    { numRuns: 400 },
  )
  t.pass('400 damaged files, no exception')
})

// Structural damage: replace, delete or rename any value of the parsed document.
function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix)
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out))
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out)
  return out
}

const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom('0.0.0.0/0', '10.0.0.5/16', '::/0', '25MBps', 'yes', 'qe0', '', '-1', 'group:nope', 'peer:x', '8000-80', '[::1]:0', 'aaaa', 1e308, -0),
)

t.test('structural damage never throws', async (t) => {
  const docs = texts.map((x) => parse(x) as unknown)
  fc.assert(
    fc.property(fc.nat(), fc.array(fc.tuple(fc.nat(), fc.constantFrom('set', 'delete', 'rename', 'wrap'), jsonValue), { minLength: 1, maxLength: 4 }), (i, ops) => {
      const doc = structuredClone(docs[i % docs.length]) as Record<string, unknown>
      for (const [n, op, value] of ops) {
        const all = paths(doc).filter((p) => p.length > 0)
        if (all.length === 0) break // every value deleted: the empty document is checked as it is
        const p = all[n % all.length]!
        const parent = p.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], doc) as Record<string | number, unknown>
        const key = p[p.length - 1]!
        if (op === 'set') parent[key] = value
        else if (op === 'delete') {
          if (Array.isArray(parent)) parent.splice(Number(key), 1)
          else delete parent[key]
        }
        else if (op === 'rename' && !Array.isArray(parent)) {
          parent[`${String(key)}x`] = parent[key]
          delete parent[key]
        } else parent[key] = [parent[key]]
      }
      return wellFormed(loadConfigText(stringify(doc), 'mut.yaml'), 'mut.yaml')
    }),
    { numRuns: 400 },
  )
  t.pass('400 damaged documents, no exception')
})

// A mapping whose keys shadow Object's own methods (YAML writes `{toString: ""}` as data):
// every message that shows a value must still be built. fast-check drew this once; every
// value of every example is checked with it here, not left to the draw.
t.test('a mapping named like the methods of Object, in place of any value, is reported', async (t) => {
  const hostile = { toString: '', valueOf: '', constructor: '', hasOwnProperty: '' }
  let loads = 0
  for (const [i, text] of texts.entries()) {
    const base = parse(text) as unknown
    for (const p of paths(base).filter((p) => p.length > 0)) {
      const doc = structuredClone(base) as Record<string | number, unknown>
      const parent = p.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], doc) as Record<string | number, unknown>
      parent[p[p.length - 1]!] = hostile
      wellFormed(loadConfigText(stringify(doc), `ex${i}.yaml`), `ex${i}.yaml`)
      loads++
    }
  }
  t.ok(loads > 100, `${loads} documents, each value in turn replaced, no exception`)
})

t.test('random overrides never throw', async (t) => {
  const keys = fc.constantFrom('node', 'name', 'role', 'multipath', 'mode', 'subnets', '0', '1', 'peers', 'key', 'interfaces', 'bandwidth', 'up', 'policies', 'rules', 'x')
  fc.assert(
    fc.property(fc.nat(), fc.array(fc.record({ path: fc.array(keys, { minLength: 1, maxLength: 4 }), value: jsonValue, source: fc.constantFrom('--a', '--b') }), { maxLength: 4 }), (i, overrides: ConfigOverride[]) => {
      return wellFormed(loadConfigText(texts[i % texts.length]!, 'mut.yaml', { overrides }), 'mut.yaml', new Set(['--a', '--b']))
    }),
    { numRuns: 300 },
  )
  t.pass('300 override sets, no exception')
})

t.test('a block scalar where a list belongs (found by the damage property, seed 289708699) gives a one-line message', async (t) => {
  const text = 'node: { name: gw, role: gateway }\nnetwork: { name: n }\ngateway:\n  ingress: |\n    - { listen: "0.0.0.0:32400", to: "home-server:32400", proto: tcp }\n'
  const r = loadConfigText(text, 'mut.yaml')
  t.notOk(r.ok)
  t.ok(wellFormed(r, 'mut.yaml'))
  t.match(r.diagnostics.find((d) => d.path === 'gateway.ingress')?.message ?? '', /write a list/)
})
