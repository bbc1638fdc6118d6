/**
 * The invalid-config corpus: every file under test/fixtures/invalid/ must fail to load,
 * and its errors must be exactly the ones its header announces, at the announced place:
 *
 *   # expect: LINE:COL CODE MESSAGE-FRAGMENT
 *
 * (one header line per expected error; warnings are not counted).
 */
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { loadConfigFile } from '../../src/config/index.js'

const dir = new URL('../fixtures/invalid/', import.meta.url)
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()

interface Expect {
  line: number
  col: number
  code: string
  fragment: string
}

function expectations(text: string): Expect[] {
  const out: Expect[] = []
  for (const m of text.matchAll(/^# expect: (\d+):(\d+) (\S+) (.+)$/gm)) {
    out.push({ line: Number(m[1]), col: Number(m[2]), code: m[3]!, fragment: m[4]! })
  }
  return out
}

t.ok(files.length >= 40, `the corpus has at least 40 files (${files.length})`)

for (const f of files) {
  t.test(f, async (t) => {
    const path = new URL(f, dir)
    const want = expectations(readFileSync(path, 'utf8'))
    t.ok(want.length > 0, 'the file announces its errors')
    const r = await loadConfigFile(path.pathname)
    t.equal(r.ok, false, 'the file does not load')
    const errors = r.diagnostics.filter((d) => d.severity === 'error')
    const show = errors.map((d) => `${d.line}:${d.col} ${d.code} ${d.message}`).join('\n')
    t.equal(errors.length, want.length, `exactly the announced errors\n${show}`)
    for (const w of want) {
      const hit = errors.find((d) => d.line === w.line && d.col === w.col && d.code === w.code && d.message.includes(w.fragment))
      t.ok(hit, `${w.line}:${w.col} ${w.code} "${w.fragment}"\n  got:\n${show}`)
    }
    for (const d of r.diagnostics) {
      t.equal(d.file, path.pathname, 'diagnostics name the file')
      t.notMatch(d.message, /\n/, 'messages are one line')
    }
  })
}
