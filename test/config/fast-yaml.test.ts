/**
 * The fast path must agree with `yaml` on every document it accepts: same values, same
 * positions. Where it is unsure it must give up (and `yaml` decides). Checked on the
 * shipped examples, generated large configs, hand-picked corner cases and random damage.
 */
import { readdirSync, readFileSync } from 'node:fs'
import fc from 'fast-check'
import t from 'tap'
import { stringify } from 'yaml'
import { fastParse } from '../../src/config/fast-yaml.js'
import { parseWithYaml } from '../../src/config/parse.js'
import { generateConfig } from '../../bench/validate.js'

const root = new URL('../../', import.meta.url)
const examples = ['quicether.example.yaml', ...readdirSync(new URL('examples/', root)).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${f}`)].map(
  (f) => [f, readFileSync(new URL(f, root), 'utf8')] as const,
)

/** undefined when the fast path gives up; otherwise throws unless both parsers agree. */
function agree(text: string): boolean {
  const fast = fastParse(text, 'f.yaml')
  if (!fast) return false
  const full = parseWithYaml(text, 'f.yaml')
  if (!full.ok) throw new Error(`fast path accepted what yaml rejects: ${JSON.stringify(full.diagnostics)}\n${text}`)
  if (full.diagnostics.length > 0) throw new Error(`fast path accepted a document yaml complains about: ${JSON.stringify(full.diagnostics)}\n${text}`)
  const a = JSON.stringify(fast.data)
  const b = JSON.stringify(full.data)
  if (a !== b) throw new Error(`values differ:\nfast ${a}\nyaml ${b}\n${text}`)
  const pa = JSON.stringify(fast.positions.entries())
  const pb = JSON.stringify(full.positions.entries())
  if (pa !== pb) throw new Error(`positions differ:\nfast ${pa}\nyaml ${pb}\n${text}`)
  return true
}

t.test('every shipped example takes the fast path, with the same result', async (t) => {
  for (const [f, text] of examples) t.ok(agree(text), f)
})

t.test('generated configs and stringify output take the fast path', async (t) => {
  t.ok(agree(generateConfig({ routes: 1000, rules: 500, peers: 100 })), 'the benchmark config')
  t.ok(agree(generateConfig({ routes: 3, rules: 2, peers: 2 })))
  t.ok(agree(stringify({ a: { b: [1, 'two', { c: 'x', n: null, t: true, f: 1.5 }], d: 'it\'s', e: '#hash', f: 'a: b', g: '' } })))
})

t.test('corner cases: agree or give up', async (t) => {
  const accepted = [
    'a: 1\nb: 0x1F\nc: 0o17\nd: 1.50\ne: -3\nf: .inf\ng: true\nh: True\ni: yes\nj: ~x\n',
    'a: "quoted # not a comment"\nb: \'it\'\'s\'\nc: plain # a comment\nd: a#b\n',
    '---\na: 1\n',
    '# lead\n\na:   x   \n  # indented comment\nb: y\n',
    'list:\n- a\n- b\nnext: 1\n',
    'list:\n  - { to: 10.0.0.0/16, via: gw }\n  - [1, [2, 3], {x: 1}]\n',
    'a: []\nb: {}\nc: [ ]\nd: { }\n',
    'a: vpn.example.com:7443\nb: [h:1, "[::1]:2"]\nc: -1\nd: -x\n',
    'a:\n  b:\n    c:\n      - d: 1\n        e: 2\n      - f\n',
    '1: one\ntrue: yes\n2.50: x\n0x1F: y\n',
    'a: "x" # c\nb: [a, b] # c\n',
  ]
  for (const text of accepted) t.ok(agree(text), JSON.stringify(text))
  const refused = [
    'a: &x 1\nb: *x\n', 'a: !!str 1\n', 'a: |\n  text\n', 'a: >\n  text\n', 'a:\n  b: 1\n a: 2\n',
    'a: 1\na: 2\n', 'a:\n', 'a: b: c\n', 'a: [1,\n  2]\n', 'a: "x\n  y"\n', 'a: multi\n  line\n', '? a\n: 1\n',
    '- a\n- b\n', 'a: 1\n---\nb: 2\n', 'a: 1\n...\n', '%YAML 1.2\n---\na: 1\n', 'a:\tb\n', 'a: 1\r\n', 'a: "\\n"\n',
    'a: [1, 2, ]\n', '{ a: 1 }\n', 'a: [a: 1]\n', 'a: { "k": 1 }\n', 'a: { b }\n', 'a: x\n  - y\n', '- - a\n', 'a:\n  -\n',
    ' a: 1\n', 'a : 1\n', '~: 1\n', 'a: value:\n', 'a: [x]y\n', 'a: "x"y\n', 'a: @x\n', 'a: `x\n', '',
  ]
  for (const text of refused) {
    t.equal(fastParse(text, 'f.yaml'), undefined, `gives up on ${JSON.stringify(text)}`)
  }
})

// Random damage to the examples: whenever the fast path accepts, yaml must agree exactly.
const yamlish = fc.string({ unit: fc.constantFrom(...': -[]{},&*!|>\'"%@`#?\n \\0123abc.~/x'.split('')), maxLength: 8 })
const edit = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: yamlish }),
  fc.record({ kind: fc.constant('indent' as const), line: fc.nat(), by: fc.integer({ min: -2, max: 2 }) }),
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
          const n = e.line % lines.length
          lines[n] = e.by > 0 ? ' '.repeat(e.by) + lines[n] : lines[n]!.slice(-e.by)
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
