/**
 * The fast path (js-yaml) must give exactly the data of the `yaml` path on every document
 * it accepts, and step aside (undefined) on anything hostile or ambiguous. Checked on the
 * shipped examples, generated large configs, hand-picked corner cases and random damage.
 * Positions are not compared: the fast path has none, `yaml` builds them when asked.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { stringify } from 'yaml'
import { parseFast } from '../../src/config/parse-fast.js'
import { parseConfigText, parseWithYaml } from '../../src/config/parse.js'
import { LazyPositions } from '../../src/config/positions.js'
import { generateConfig } from '../../bench/validate.js'

const root = new URL('../../', import.meta.url)
const examples = ['quicether.example.yaml', ...readdirSync(new URL('examples/', root)).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${f}`)].map(
  (f) => [f, readFileSync(new URL(f, root), 'utf8')] as const,
)

/** false when the fast path steps aside; otherwise throws unless both paths give the same data. */
function agree(text: string): boolean {
  const fast = parseFast(text)
  if (!fast) return false
  const full = parseWithYaml(text, 'f.yaml')
  if (!full.ok) throw new Error(`fast path accepted what yaml rejects: ${JSON.stringify(full.diagnostics)}\n${text}`)
  if (full.diagnostics.length > 0) throw new Error(`fast path accepted a document yaml complains about: ${JSON.stringify(full.diagnostics)}\n${text}`)
  if (!isDeepStrictEqual(fast, full.data)) throw new Error(`values differ:\nfast ${JSON.stringify(fast)}\nyaml ${JSON.stringify(full.data)}\n${text}`)
  return true
}

t.test('every shipped example takes the fast path, with the same data', async (t) => {
  for (const [f, text] of examples) t.ok(agree(text), f)
})

t.test('generated configs and stringify output take the fast path', async (t) => {
  t.ok(agree(generateConfig({ routes: 1000, rules: 500, peers: 100 })), 'the benchmark config')
  t.ok(agree(generateConfig({ routes: 3, rules: 2, peers: 2 })))
  t.ok(agree(stringify({ a: { b: [1, 'two', { c: 'x', n: null, t: true, f: 1.5 }], d: 'it\'s', e: '#hash', f: 'a: b', g: '' } })))
})

t.test('corner cases: the same data, or step aside', async (t) => {
  const accepted = [
    'a: 1\nb: 0x1F\nc: 0o17\nd: 1.50\ne: -3\nf: .inf\ng: true\nh: True\ni: yes\nj: ~x\nk: ~\nl: NULL\nm: -.INF\nn: +12\no: 1e3\n',
    'a: "quoted # not a comment"\nb: \'it\'\'s\'\nc: plain # a comment\nd: a#b\ne: "tab\\tand \\u00e9"\n',
    '---\na: 1\n',
    'a: 1\n...\n',
    '# lead\n\na:   x   \n  # indented comment\nb: y\n',
    'list:\n- a\n- b\nnext: 1\n',
    'list:\n  - { to: 10.0.0.0/16, via: gw }\n  - [1, [2, 3], {x: 1}]\n',
    'a: []\nb: {}\nc: [ ]\nd: { }\ne:\nf: [a,\n  b]\n',
    'a: vpn.example.com:7443\nb: [h:1, "[::1]:2"]\nc: -1\nd: -x\n',
    'a:\n  b:\n    c:\n      - d: 1\n        e: 2\n      - f\n',
    '1: one\ntrue: yes\n2.50: x\n0x1F: y\n',
    'a: |\n  text\n  more\nb: >\n  folded\n  text\n',
    'a: multi\n  line\n',
    'a: 1\r\nb: 2\r\n',
    'a: 123456789012345678901234567890\n',
    'a: .nan\n',
    'a:\n\n  # a comment right of the value\n x\nb: 1\n',
  ]
  for (const text of accepted) t.ok(agree(text), JSON.stringify(text))
  const refused = [
    'a: &x 1\nb: *x\n', 'a: !!str 1\n', 'a: !custom 1\n', '<<: { a: 1 }\n', 'a: 1\na: 2\n', '~: 1\n', '? [a, b]\n: 1\n', '- a\n- b\n',
    'a: 1\n---\nb: 2\n', '%YAML 1.1\n---\na: yes\n', 'just words\n', '42\n', '', '# nothing\n', 'a: b: c\n', 'a: [1, 2\n',
    'a: ' + '['.repeat(70) + ']'.repeat(70) + '\n', 'k'.repeat(1100) + ': 1\n', '#\rx: 1\na: 1\n', 'a: 1\n\uFEFFb: 2\n',
    // A comment left of the content after it: yaml rejects the first (an implicit key over two
    // lines), js-yaml reads {a: x}; found by the random damage below (seed -1134005776).
    'a:\n\n# c\n x\nb: 1\n', 'a:\n\n# c\n  - x\nb: 1\n',
  ]
  for (const text of refused) t.equal(parseFast(text), undefined, `steps aside on ${JSON.stringify(text)}`)
})

t.test('__proto__ is an ordinary key on both paths, never a prototype', async (t) => {
  const text = '__proto__: { polluted: 1 }\na: 1\n'
  t.ok(agree(text))
  const data = parseFast(text)!
  t.ok(Object.prototype.hasOwnProperty.call(data, '__proto__'))
  t.equal(Object.getPrototypeOf(data), Object.prototype)
})

t.test('positions are built only when asked, and then point where yaml says', async (t) => {
  const text = 'node:\n  name: n1\nnetwork: { name: net }\npeers:\n  - name: a\n'
  const r = parseConfigText(text, 'f.yaml')
  t.ok(r.ok)
  if (!r.ok) return
  t.ok(r.positions instanceof LazyPositions, 'the fast path answered')
  const lazy = r.positions as LazyPositions
  t.notOk(lazy.built, 'nothing built before a diagnostic asks')
  lazy.markOverride(['multipath', 'mode'], '--multipath')
  t.same(lazy.locate(['multipath', 'mode', 'x']), { file: '--multipath', line: 0, col: 0 }, 'a flag answers without a parse')
  t.notOk(lazy.built)
  t.same(lazy.locate(['network', 'name'], 'key'), { file: 'f.yaml', line: 3, col: 12 })
  t.ok(lazy.built)
  const full = parseWithYaml(text, 'f.yaml')
  if (!full.ok) return t.fail('yaml rejects it')
  for (const path of [['node', 'name'], ['peers', 0, 'name'], ['peers', 0], ['network'], ['peers', 3, 'key']]) {
    t.same(lazy.locate(path), full.positions.locate(path), path.join('.'))
  }
})

// Random damage to the examples: whenever the fast path accepts, yaml must agree exactly.
const yamlish = fc.string({ unit: fc.constantFrom(...': -[]{},&*!|>\'"%@`#?\n\r\t \\0123abc.~/x<_\uFEFF\u0085'.split('')), maxLength: 8 })
const edit = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: yamlish }),
  fc.record({ kind: fc.constant('indent' as const), line: fc.nat(), by: fc.integer({ min: -2, max: 2 }) }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('dup' as const), a: fc.nat() }),
)

t.test('random damage: the fast path never disagrees with yaml', async (t) => {
  let accepted = 0
  fc.assert(
    fc.property(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 3 }), (i, edits) => {
      let text = examples[i % examples.length]![1]
      for (const e of edits) {
        if (e.kind === 'delete') {
          const at = e.at % (text.length + 1)
          text = text.slice(0, at) + text.slice(at + e.len)
        } else if (e.kind === 'insert') {
          const at = e.at % (text.length + 1)
          text = text.slice(0, at) + e.text + text.slice(at)
        } else {
          const lines = text.split('\n')
          if (e.kind === 'indent') {
            const n = e.line % lines.length
            lines[n] = e.by > 0 ? ' '.repeat(e.by) + lines[n] : lines[n]!.slice(-e.by)
          } else if (e.kind === 'dup') {
            const n = e.a % lines.length
            lines.splice(n, 0, lines[n]!)
          } else {
            const a = e.a % lines.length
            const b = e.b % lines.length
            ;[lines[a], lines[b]] = [lines[b]!, lines[a]!]
          }
          text = lines.join('\n')
        }
      }
      if (agree(text)) accepted++
      return true
    }),
    { numRuns: 3000 },
  )
  t.ok(accepted > 300, `the fast path took ${accepted} of 3000 damaged files and agreed on all`)
})
