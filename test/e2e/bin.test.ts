// The real binary, as Ansible and CI run it: bin/quicether.js → dist/cli/main.js (npm run build).
// In test/e2e because it runs the CLI as processes (and so balances the lanes of npm test).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin', 'quicether.js')
const BUILT = existsSync(join(ROOT, 'dist', 'cli', 'main.js'))

function qe(args: string[], opts: { input?: string | Buffer; cwd?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { input: opts.input ?? '', cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const VALID = 'node:\n  name: laptop\nnetwork:\n  name: home\n'
const INVALID = 'node:\n  name: laptop\n  role: wizard\nnetwork:\n  name: home\n'

t.test('the built binary', { skip: BUILT ? false : 'dist/ is not built (npm run build)' }, async (t) => {
  t.test('--version and exit codes', async (t) => {
    const v = qe(['--version'])
    t.equal(v.code, 0)
    t.equal(v.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version)
    const u = qe(['validate', '--nope'])
    t.equal(u.code, 2)
    t.match(u.stderr, /^quicether: unknown option '--nope' \(QE_USAGE\)\n/)
  })

  t.test('validate reads stdin through "-"', async (t) => {
    const ok = qe(['validate', '-'], { input: VALID })
    t.equal(ok.code, 0, ok.stderr)
    const bad = qe(['validate', '-'], { input: INVALID })
    t.equal(bad.code, 1)
    t.match(bad.stdout, /^<stdin>:3:9: error: .* \(at node\.role\)$/m)
    const gh = qe(['validate', '--format', 'github', '-'], { input: INVALID })
    t.match(gh.stdout, /^::error file=<stdin>,line=3,col=9,/m)
  })

  t.test('validate of files: valid, invalid, a directory, a missing file', async (t) => {
    const dir = t.testdir({ 'ok.yaml': VALID, 'bad.yaml': INVALID, 'sub': {} })
    t.equal(qe(['validate', join(dir, 'ok.yaml')]).code, 0)
    t.equal(qe(['validate', join(dir, 'bad.yaml')]).code, 1)
    const d = qe(['validate', join(dir, 'sub')])
    t.equal(d.code, 2)
    t.notMatch(d.stderr, /\n\s+at /, 'no stack trace')
    t.equal(qe(['validate', join(dir, 'missing.yaml')]).code, 2)
  })

  t.test('init from another working directory; schema found from the package', async (t) => {
    const dir = t.testdir({})
    const r = qe(['init', '--name', 'bin-test', '--config', 'q.yaml', '--state-dir', 'state'], { cwd: dir })
    t.equal(r.code, 0, r.stderr)
    t.equal(statSync(join(dir, 'state', 'identity.key')).mode & 0o777, 0o600)
    t.equal(qe(['validate', join(dir, 'q.yaml')]).code, 0)
    const s = qe(['schema'], { cwd: dir })
    t.equal(s.code, 0)
    t.equal((JSON.parse(s.stdout) as { title?: string }).title, 'QuicEther node configuration')
  })

  t.test('start --print-config with flags', async (t) => {
    const dir = t.testdir({ 'q.yaml': VALID })
    const r = qe(['start', '--config', join(dir, 'q.yaml'), '--print-config', '--multipath', 'aggregate'])
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^multipath:\n {2}mode: aggregate$/m)
    const bad = qe(['start', '--config', join(dir, 'q.yaml'), '--print-config', '--multipath', 'fast'])
    t.equal(bad.code, 1)
    t.match(bad.stderr, /^--multipath: error: .* \(at multipath\.mode\)$/m)
  })
})
