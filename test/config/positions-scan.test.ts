import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { LazyPositions, scanBlockKey, type Path } from '../../src/config/positions.js'
import { positionsWithYaml } from '../../src/config/parse.js'

/** Every path in a document: mapping keys and list items, at every depth. */
function keyPaths(doc: unknown, at: Path = []): Path[] {
  if (typeof doc !== 'object' || doc === null) return []
  const out: Path[] = []
  const entries: [string | number, unknown][] = Array.isArray(doc) ? doc.map((v, i) => [i, v]) : Object.entries(doc)
  for (const [k, v] of entries) {
    out.push([...at, k])
    out.push(...keyPaths(v, [...at, k]))
  }
  return out
}

t.test('the line scan finds every block-style key and item exactly where the full parse does, or defers to it', async (t) => {
  const dir = 'examples'
  const files = [...readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => join(dir, f)), 'quicether.example.yaml']
  let found = 0
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const full = positionsWithYaml(text, file)
    const lazy = new LazyPositions(() => positionsWithYaml(text, file), { text, file })
    for (const path of keyPaths(parse(text))) {
      if (scanBlockKey(text, path)) found++
      for (const at of ['key', 'value'] as const) t.same(lazy.locate(path, at), full.locate(path, at), `${file}: ${path.join('.')} (${at})`)
    }
  }
  t.ok(found > 100, `keys found by the scan: ${found}`)
})

t.test('what the scan does not take (flow style, quoting, a missing item, a key in a block scalar) goes to the full parse', async (t) => {
  const text = 'a: { b: 1 }\n"c": 2\nd:\n  - e: 3\nf: |\n  g: not a key\nh:\n  # a comment\n\n  i: 4\n'
  t.equal(scanBlockKey(text, ['a', 'b']), null, 'flow mapping')
  t.equal(scanBlockKey(text, ['c']), null, 'quoted key')
  t.same(scanBlockKey(text, ['d', 0, 'e']), { key: text.indexOf('e: 3'), value: text.indexOf('3\n') }, 'a key on a list item\'s dash line')
  t.equal(scanBlockKey(text, ['d', 1]), null, 'no such item')
  t.equal(scanBlockKey(text, ['f', 'g']), null, 'inside a block scalar')
  t.same(scanBlockKey(text, ['h', 'i']), { key: text.indexOf('i: 4'), value: text.indexOf('4\n') }, 'past a comment and a blank line')
  const lazy = new LazyPositions(() => positionsWithYaml(text, 'x.yaml'), { text, file: 'x.yaml' })
  t.same(lazy.locate(['h', 'i'], 'key'), { file: 'x.yaml', line: 10, col: 3 })
  t.notOk(lazy.built)
  t.same(lazy.locate(['a', 'b'], 'key'), positionsWithYaml(text, 'x.yaml').locate(['a', 'b'], 'key'))
  t.ok(lazy.built, 'the full parse answered the flow-style key')
})
