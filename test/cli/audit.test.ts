import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLog, loadOrCreateAuditKey } from '../../src/audit/log.js'
import { silentLogger } from '../../src/log.js'
import { lines, run } from './run.js'

type TestT = { teardown(fn: () => unknown): void }

async function fixture(t: TestT, n = 6, sizeBytes: number | null = null) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-cli-audit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'audit.log')
  const keyPath = join(dir, 'audit.key')
  const key = await loadOrCreateAuditKey(keyPath)
  const log = new AuditLog({ path, key, durability: 'none', rotate: sizeBytes ? { sizeBytes, everyMs: null, keep: 10 } : undefined }, { log: silentLogger })
  await log.open()
  for (let i = 0; i < n; i++) await log.append(i === 0 ? 'start' : 'cmd', i === 0 ? { version: '0.1.0' } : { cmd: 'status', uid: 0, pid: 100 + i })
  await log.close()
  const config = join(dir, 'node.yaml')
  await writeFile(config, `node: { name: n1, state-dir: ${dir} }\nnetwork: { name: x }\naudit: { path: ${path} }\n`)
  return { dir, path, keyPath, config }
}

t.test('verify: an intact log exits 0 and counts its lines', async (t) => {
  const { path, keyPath } = await fixture(t)
  const r = await run(['audit', 'verify', path, '--key', keyPath])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'intact: 6 lines in 1 file\n')
})

t.test('verify: a tampered line exits 1 and names FILE:LINE', async (t) => {
  const { path, keyPath } = await fixture(t)
  const text = await readFile(path, 'utf8')
  const rows = text.split('\n')
  rows[3] = rows[3]!.replace('"uid":0', '"uid":1000')
  await writeFile(path, rows.join('\n'))
  const r = await run(['audit', 'verify', path, '--key', keyPath])
  t.equal(r.code, 1)
  t.match(r.stdout, new RegExp(`^${path.replace(/[.]/g, '\\.')}:4: mac does not match`))
})

t.test('verify: a deleted line without a key still breaks the chain (and says the mac was not checked)', async (t) => {
  const { path } = await fixture(t)
  const rows = (await readFile(path, 'utf8')).split('\n')
  rows.splice(2, 1)
  await writeFile(path, rows.join('\n'))
  const r = await run(['audit', 'verify', path])
  t.equal(r.code, 1)
  t.match(r.stdout, /:3: seq 4 where 3 was expected/)
  t.match(r.stderr, /no key/)
})

t.test('verify: one FILE takes its rotated older files, in order; --only does not', async (t) => {
  const { path, keyPath } = await fixture(t, 30, 1000)
  const all = await run(['audit', 'verify', path, '--key', keyPath])
  t.equal(all.code, 0, all.stdout)
  t.match(all.stdout, /^intact: 30 lines in \d+ files\n$/)
  const only = await run(['audit', 'verify', path, '--key', keyPath, '--only'])
  t.equal(only.code, 0)
  t.match(only.stdout, /intact: \d+ lines in 1 file; it starts at seq \d+/)
  const swapped = await run(['audit', 'verify', `${path}.1`, `${path}.2`, path, '--key', keyPath])
  t.equal(swapped.code, 1)
  t.match(swapped.stdout, /audit\.log\.2:1: seq \d+ where \d+ was expected/)
})

t.test('verify: the key and the file from the config; a wrong key fails', async (t) => {
  const { config, dir } = await fixture(t)
  const r = await run(['audit', 'verify', '--config', config])
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.equal(r.stderr, '', 'the config\'s key was used')
  const other = join(dir, 'other.key')
  await loadOrCreateAuditKey(other)
  const w = await run(['audit', 'verify', '--config', config, '--key', other])
  t.equal(w.code, 1)
  t.match(w.stdout, /audit\.log:1: mac does not match/)
})

t.test('tail: the last lines, human or JSON', async (t) => {
  const { config } = await fixture(t)
  const r = await run(['audit', 'tail', '-n', '2', '--config', config])
  t.equal(r.code, 0, r.stderr)
  const ls = lines(r.stdout)
  t.equal(ls.length, 2)
  t.match(ls[1], /^\d{4}-\d\d-\d\dT[0-9:.]+Z {2}#6 {2}cmd {2}cmd=status pid=105 uid=0$/)
  const j = await run(['audit', 'tail', '-n', '3', '--json', '--config', config])
  t.same(lines(j.stdout).map((l) => JSON.parse(l).seq), [4, 5, 6])
})
