import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lines, positionOf, run } from './run.js'

const VALID = `# a minimal node
node:
  name: laptop
network:
  name: home
`

// Two errors in one file: both must be reported, each at its own line and column.
const INVALID = `node:
  name: laptop
  role: wizard
network:
  name: home
multipath:
  mode: fast
`

// Valid, with a warning: aggregate mode with a single uplink to aggregate.
const WARNS = `node:
  name: seed
network:
  name: home
interfaces: [{ name: eth0 }]
multipath:
  mode: aggregate
`

const FILES = { 'valid.yaml': VALID, 'invalid.yaml': INVALID, 'warns.yaml': WARNS }

function fixtures(dir: string): { dir: string; valid: string; invalid: string; warns: string } {
  return { dir, valid: join(dir, 'valid.yaml'), invalid: join(dir, 'invalid.yaml'), warns: join(dir, 'warns.yaml') }
}

const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

t.test('a valid file: exit 0, nothing on stdout, a summary on stderr', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const r = await run(['validate', f.valid])
  t.equal(r.code, 0)
  t.equal(r.stdout, '')
  t.equal(lines(r.stderr).length, 1)
  t.match(r.stderr, /^quicether: 1 file checked: 1 valid\n$/)
})

t.test('an invalid file: exit 1, every problem as FILE:LINE:COL: error: MESSAGE (at path)', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const r = await run(['validate', f.invalid])
  t.equal(r.code, 1)
  const out = lines(r.stdout)
  t.equal(out.length, 2, 'both problems, not just the first')
  const role = positionOf(INVALID, 'wizard')
  const mode = positionOf(INVALID, 'fast')
  t.match(out[0], `${f.invalid}:${role.line}:${role.col}: error: `)
  t.match(out[0], / \(at node\.role\)$/)
  t.match(out[0], /client|gateway|bootstrap/, 'says what is allowed')
  t.match(out[1], `${f.invalid}:${mode.line}:${mode.col}: error: `)
  t.match(out[1], / \(at multipath\.mode\)$/)
  t.match(r.stderr, /^quicether: 1 file checked: 0 valid, 1 invalid \(2 errors\)\n$/)
})

t.test('--format json: one array with file, line, column, path, severity, code, message', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const r = await run(['validate', '--format', 'json', f.invalid, f.valid])
  t.equal(r.code, 1)
  const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>
  t.equal(list.length, 2)
  const role = positionOf(INVALID, 'wizard')
  t.same(Object.keys(list[0] ?? {}).sort(), ['code', 'column', 'file', 'line', 'message', 'path', 'severity'])
  t.match(list[0], { file: f.invalid, line: role.line, column: role.col, path: 'node.role', severity: 'error', code: String, message: String })
  t.match(list[1], { file: f.invalid, path: 'multipath.mode', line: positionOf(INVALID, 'fast').line })
})

t.test('--format github: workflow annotations with file, line and col', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const r = await run(['validate', '--format', 'github', f.invalid])
  t.equal(r.code, 1)
  const out = lines(r.stdout)
  t.equal(out.length, 2)
  const role = positionOf(INVALID, 'wizard')
  t.match(out[0], new RegExp(`^::error file=${re(f.invalid)},line=${role.line},col=${role.col},title=quicether \\([a-z-]+\\)::.+ \\(at node\\.role\\)$`))
})

t.test('stdin via "-"', async (t) => {
  const ok = await run(['validate', '-'], VALID)
  t.equal(ok.code, 0)
  const bad = await run(['validate', '-'], INVALID)
  t.equal(bad.code, 1)
  const role = positionOf(INVALID, 'wizard')
  t.match(lines(bad.stdout)[0], `<stdin>:${role.line}:${role.col}: error: `)
  const twice = await run(['validate', '-', '-'], VALID)
  t.equal(twice.code, 2, 'stdin twice is a usage error')
  t.match(twice.stderr, /\(QE_USAGE\)/)
})

t.test('multiple files: all checked, all problems, worst exit code wins', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const r = await run(['validate', f.valid, f.invalid, f.warns])
  t.equal(r.code, 1)
  t.equal(lines(r.stdout).filter((l) => l.startsWith(f.invalid)).length, 2)
  t.match(r.stderr, /3 files checked: 2 valid, 1 invalid \(2 errors, 1 warning\)/)
  const missing = join(f.dir, 'missing.yaml')
  const r2 = await run(['validate', f.invalid, missing, f.valid])
  t.equal(r2.code, 2, 'an unreadable file makes it 2 even with invalid ones')
  t.equal(lines(r2.stdout).length, 2, 'the other files were still checked')
  t.match(r2.stderr, new RegExp(`^quicether: .*missing\\.yaml.*\\(QE_CONFIG_READ\\)$`, 'm'))
  t.match(r2.stderr, /3 files checked: 1 valid, 1 invalid, 1 unreadable/)
  const j = await run(['validate', '--format', 'json', f.valid, missing])
  t.equal(j.code, 2)
  t.match(JSON.parse(j.stdout), [{ file: missing, severity: 'error', code: 'unreadable', message: /no such file/ }], 'machine formats list unreadable files too')
  const g = await run(['validate', '--format', 'github', missing])
  t.match(g.stdout, new RegExp(`^::error file=${re(missing)},title=quicether \\(unreadable\\)::cannot read`))
})

t.test('warnings: printed as warning:, exit 0; --strict makes them fail', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const r = await run(['validate', f.warns])
  t.equal(r.code, 0)
  const out = lines(r.stdout)
  t.equal(out.length, 1)
  t.match(out[0], new RegExp(`^${re(f.warns)}:\\d+:\\d+: warning: .+ \\(at multipath\\.`))
  const strict = await run(['validate', '--strict', f.warns])
  t.equal(strict.code, 1)
  t.match(lines(strict.stdout)[0], /: error: /)
  const json = await run(['validate', '--strict', '--format', 'json', f.warns])
  t.equal(json.code, 1)
  t.match(JSON.parse(json.stdout), [{ severity: 'error' }])
})

t.test('a key this version does not act on: a QE_NOT_IMPLEMENTED warning at the key; --strict fails on it', async (t) => {
  const text = VALID + 'multipath:\n  scheduler: round-robin\n'
  const dir = t.testdir({ 'inert.yaml': text })
  const file = join(dir, 'inert.yaml')
  const at = positionOf(text, 'scheduler')
  const r = await run(['validate', file])
  t.equal(r.code, 0, 'valid: a warning')
  t.match(r.stdout, new RegExp(`^${re(file)}:${at.line}:${at.col}: warning: multipath\\.scheduler is not acted on by this version .*\\(at multipath\\.scheduler\\)$`, 'm'))
  const json = await run(['validate', '--format', 'json', file])
  t.match(JSON.parse(json.stdout), [{ line: at.line, column: at.col, severity: 'warning', code: 'QE_NOT_IMPLEMENTED', path: 'multipath.scheduler' }])
  const strict = await run(['validate', '--strict', file])
  t.equal(strict.code, 1)
  t.match(strict.stdout, /: error: multipath\.scheduler is not acted on/)
})

t.test('--quiet: errors only, no warnings and no summary', async (t) => {
  const f = fixtures(t.testdir(FILES))
  const w = await run(['validate', '--quiet', f.warns, f.valid])
  t.equal(w.code, 0)
  t.equal(w.stdout, '')
  t.equal(w.stderr, '')
  const e = await run(['validate', '-q', f.invalid])
  t.equal(e.code, 1)
  t.equal(lines(e.stdout).length, 2)
  t.equal(e.stderr, '')
})

t.test('bad input: one clear line each, the right exit code', async (t) => {
  const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  for (let i = 1; i < 9; i++) laughs.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`)
  const dir = t.testdir({
    'sub': {},
    'empty.yaml': '',
    'list.yaml': '- a\n- b\n',
    'deep.yaml': 'node: ' + '['.repeat(10_000) + ']'.repeat(10_000) + '\n',
    'laughs.yaml': laughs.join('\n') + '\n',
    'notyaml.yaml': 'node: {name: [unclosed\n',
  })
  const binary = join(dir, 'binary.yaml')
  writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0xff, 0xfe]))
  const huge = join(dir, 'huge.yaml')
  writeFileSync(huge, 'node:\n  name: x\n' + '# padding padding padding padding padding padding padding\n'.repeat(180_000))
  const cases: Array<[string, number, RegExp]> = [
    [join(dir, 'sub'), 2, /directory/],
    [join(dir, 'absent.yaml'), 2, /no such file|does not exist|not found/i],
    [binary, 1, /binary|not a text/i],
    [huge, 1, /too large|larger/i],
    [join(dir, 'empty.yaml'), 1, /empty/],
    [join(dir, 'list.yaml'), 1, /mapping/],
    [join(dir, 'deep.yaml'), 1, /too deep|nesting/i],
    [join(dir, 'laughs.yaml'), 1, /alias/i],
  ]
  for (const [file, code, what] of cases) {
    const r = await run(['validate', file])
    t.equal(r.code, code, `${file}: exit ${code}`)
    const problem = r.code === 2 ? lines(r.stderr)[0] : lines(r.stdout)[0]
    t.match(problem, what, `${file}: says what is wrong`)
    t.equal(lines(r.stdout).length + lines(r.stderr).length, 2, `${file}: one problem line and the summary`)
    t.notMatch(r.stderr + r.stdout, /\n\s+at /, 'no stack trace')
  }
  // Broken YAML: every syntax error, each on its own positioned line.
  const r = await run(['validate', join(dir, 'notyaml.yaml')])
  t.equal(r.code, 1)
  t.ok(lines(r.stdout).length >= 1)
  for (const l of lines(r.stdout)) t.match(l, /notyaml\.yaml:\d+:\d+: error: YAML/)
})

t.test('stdin larger than any config stops reading and fails', async (t) => {
  const r = await run(['validate', '-'], Buffer.alloc(3 * 1024 * 1024, 0x61))
  t.equal(r.code, 1)
  t.match(lines(r.stdout)[0], /^<stdin>: error: .*larger/)
})

t.test('the default file is /etc/quicether.yaml', async (t) => {
  const r = await run(['validate', '--help'])
  t.match(r.stdout, /default: \["\/etc\/quicether\.yaml"\]/)
})
