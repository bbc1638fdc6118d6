import t from 'tap'
import { MAX_CONFIG_BYTES, parseConfigText } from '../../src/config/parse.js'

const BASE = 'node: { name: n1 }\nnetwork: { name: net }\n'

function only(text: string): { code: string; line: number; col: number; message: string } {
  const r = parseConfigText(text, 'f.yaml')
  if (r.ok) throw new Error('expected a failure')
  if (r.diagnostics.length !== 1) throw new Error(`expected one diagnostic, got ${JSON.stringify(r.diagnostics)}`)
  return r.diagnostics[0]!
}

t.test('every key and value has its line and column', async (t) => {
  const text = [
    'node:', //                      1
    '  name: n1', //                 2
    'network: { name: net }', //     3
    'peers:', //                     4
    '  - name: a', //                5
    '    endpoints: [x.example.com:1, "y:2"]', // 6
    '', //                           7
    'subnets:', //                   8
    '    - 10.0.0.0/8', //           9
  ].join('\n')
  const r = parseConfigText(text, 'f.yaml')
  t.ok(r.ok)
  if (!r.ok) return
  const at = (path: (string | number)[], where: 'key' | 'value' = 'value'): string => {
    const l = r.positions.locate(path, where)
    return `${l.line}:${l.col}`
  }
  t.equal(at(['node', 'name']), '2:9')
  t.equal(at(['node', 'name'], 'key'), '2:3')
  t.equal(at(['network', 'name']), '3:18')
  t.equal(at(['network', 'name'], 'key'), '3:12')
  t.equal(at(['peers', 0]), '5:5')
  t.equal(at(['peers', 0, 'endpoints', 1]), '6:34')
  t.equal(at(['subnets', 0]), '9:7')
  t.equal(at(['peers', 0, 'key']), '5:5', 'a missing key points at its parent')
  t.equal(at(['network', 'overlay', 'ipv4']), '3:1', 'a missing section points at the key of its nearest ancestor')
  t.equal(r.positions.locate(['node']).file, 'f.yaml')
})

t.test('duplicate keys are reported at the second one, with the first one\'s line', async (t) => {
  const r = parseConfigText('node:\n  name: a\n  role: client\n  name: b\nnetwork: { name: x }\n', 'f.yaml')
  t.ok(r.ok, 'the document still loads, so the other checks run')
  if (!r.ok) return
  t.equal(r.diagnostics.length, 1)
  t.match(r.diagnostics[0], { code: 'duplicate-key', line: 4, col: 3, path: 'node.name', message: "duplicate key 'name' (first defined at line 2)" })
  t.equal((r.data.node as { name: string }).name, 'a', 'the first value is kept')
})

t.test('keys that are not plain words', async (t) => {
  const r = parseConfigText(BASE + '? [a, b]\n: 1\n', 'f.yaml')
  t.ok(r.ok)
  if (r.ok) t.match(r.diagnostics[0], { code: 'yaml-syntax', line: 3, message: /plain word/ })
})

t.test('hostile or broken input: one clear diagnostic, no exception', async (t) => {
  t.match(only(''), { code: 'empty', line: 1, col: 1 })
  t.match(only('\n\n   \n# only a comment\n'), { code: 'empty' })
  t.match(only('---\n'), { code: 'empty' })
  t.match(only('~\n'), { code: 'empty' })
  t.match(only('- a\n- b\n'), { code: 'not-a-mapping', message: /found a list/ })
  t.match(only('just some words\n'), { code: 'not-a-mapping', message: /found the text 'just some words'/ })
  t.match(only('42\n'), { code: 'not-a-mapping', message: /the number 42/ })
  t.match(only(BASE + '---\nnode: { name: n2 }\n'), { code: 'multiple-documents', line: 3, col: 1 })
  t.match(only('node: [1, 2\n'), { code: 'yaml-syntax', message: /^YAML syntax: / })
  t.match(only('a: b: c\n'), { code: 'yaml-syntax' })
  t.match(only('node:\n\tname: x\n'), { code: 'yaml-syntax', line: 2 })
  t.match(only('a: *nowhere\n'), { code: 'yaml-syntax' })
  t.match(only('a: &x [1, *x]\n'), { code: 'yaml-syntax', message: /contains it/ })
  t.match(only('node:\n  name: "a\u0000b"\n'), { code: 'not-text', line: 2, col: 11 })
  t.match(only('x'.repeat(MAX_CONFIG_BYTES + 1)), { code: 'too-large', message: /the limit is 1 MiB/ })
})

t.test('10,000-deep nesting is refused, flow or block, without a stack overflow', async (t) => {
  const n = 10_000
  t.match(only('a: ' + '['.repeat(n) + ']'.repeat(n) + '\n'), { code: 'too-deep' })
  t.match(only('a: ' + '{b: '.repeat(n) + '1' + '}'.repeat(n) + '\n'), { code: 'too-deep' })
  t.match(only('a:\n' + '- '.repeat(n) + 'x\n'), { code: 'too-deep' })
  t.match(only('a: ' + '['.repeat(70) + ']'.repeat(70) + '\n'), { code: 'too-deep', message: /more than 64 levels/ })
  const ok = parseConfigText('a: ' + '['.repeat(20) + ']'.repeat(20) + '\n', 'f.yaml')
  t.ok(ok.ok, 'reasonable nesting is fine')
})

t.test('alias bombs stop at the expansion budget', async (t) => {
  let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
  const names = 'abcdefghi'
  for (let i = 1; i < names.length; i++) {
    bomb += `${names[i]}: &${names[i]} [${Array(9).fill('*' + names[i - 1]).join(',')}]\n`
  }
  t.match(only(bomb), { code: 'alias-limit', message: /alias bomb/ })
  const fine = parseConfigText('x: &x { a: 1 }\ny: *x\nz: *x\n', 'f.yaml')
  t.ok(fine.ok, 'ordinary aliases work')
  if (fine.ok) {
    t.same(fine.data, { x: { a: 1 }, y: { a: 1 }, z: { a: 1 } })
    t.not(fine.data.y, fine.data.x, 'each use is its own copy')
  }
})

t.test('a byte-order mark is ignored', async (t) => {
  const r = parseConfigText('\uFEFF' + BASE, 'f.yaml')
  t.ok(r.ok)
})

t.test('Windows line endings and tabs inside values load, with positions', async (t) => {
  const r = parseConfigText('node:\r\n  name: n1\r\nnetwork: { name: "a\tb" }\r\n', 'f.yaml')
  t.ok(r.ok)
  if (!r.ok) return
  t.same(r.data, { node: { name: 'n1' }, network: { name: 'a\tb' } })
  const l = r.positions.locate(['network', 'name'])
  t.same([l.line, l.col], [3, 18])
})
