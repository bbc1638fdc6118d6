import t from 'tap'
import { mkdtemp, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLog, AuditWriteError, loadOrCreateAuditKey, readAuditKey, type AuditFile } from '../../src/audit/log.js'
import { hashOf, ZERO_HASH } from '../../src/audit/line.js'
import { verifyAudit } from '../../src/audit/verify.js'
import { silentLogger } from '../../src/log.js'

type TestT = { teardown(fn: () => unknown): void }

async function tmp(t: TestT): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qe-audit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const KEY = Buffer.alloc(32, 7)
const lines = async (p: string) => (await readFile(p, 'utf8')).split('\n').filter((l) => l !== '')

t.test('lines: canonical key order, seq from 1, prev chains, mac with a key', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  const log = new AuditLog({ path, key: KEY }, { log: silentLogger, now: () => Date.parse('2025-01-02T03:04:05.678Z') })
  await log.open()
  await log.append('start', { version: '0.1.0', node: 'a' })
  await log.append('peer-up', { peer: 'b', remote: { port: 1, address: 'x' } })
  await log.close()
  const [l1, l2] = await lines(path)
  t.match(l1, /^\{"seq":1,"at":"2025-01-02T03:04:05.678Z","type":"start","node":"a","version":"0.1.0","prev":"0{64}","mac":"[0-9a-f]{64}"\}$/)
  t.equal(JSON.parse(l2!).prev, hashOf(l1!))
  t.match(l2, /"remote":\{"address":"x","port":1\}/, 'nested keys sorted')
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.equal(log.status().lines, 2)
})

t.test('open continues the chain of an existing file; a damaged tail is an error that says so', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  const a = new AuditLog({ path, key: KEY }, { log: silentLogger })
  await a.open()
  await a.append('start', {})
  await a.close()
  const b = new AuditLog({ path, key: KEY }, { log: silentLogger })
  await b.open()
  t.same((await b.append('stop', {})).seq, 2)
  await b.close()
  t.equal((await verifyAudit([path], KEY)).ok, true)

  await appendFile(path, '{"seq":3,"at":"x"')
  const c = new AuditLog({ path, key: KEY }, { log: silentLogger })
  await t.rejects(c.open(), { code: 'QE_AUDIT_DAMAGED', message: /last line is damaged.*cut short/ })
  await writeFile(path, (await readFile(path, 'utf8')).replace(/\{"seq":3.*$/, 'garbage\n'))
  await t.rejects(new AuditLog({ path, key: KEY }, { log: silentLogger }).open(), { code: 'QE_AUDIT_DAMAGED', message: /not valid JSON/ })
})

t.test('a log with a key refuses to continue a chain another key wrote', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  const a = new AuditLog({ path, key: KEY }, { log: silentLogger })
  await a.open()
  await a.append('start', {})
  await a.close()
  await t.rejects(new AuditLog({ path, key: Buffer.alloc(32, 8) }, { log: silentLogger }).open(), { code: 'QE_AUDIT_DAMAGED', message: /mac does not match/ })
})

t.test('rotation by size keeps the chain: the new file starts with the old one\'s last hash; keep bounds the files', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  const log = new AuditLog({ path, key: KEY, rotate: { sizeBytes: 600, everyMs: null, keep: 2 } }, { log: silentLogger })
  await log.open()
  for (let i = 0; i < 20; i++) await log.append('cmd', { cmd: 'status', i })
  await log.close()
  const cur = await lines(path)
  const one = await lines(`${path}.1`)
  const two = await lines(`${path}.2`)
  await t.rejects(stat(`${path}.3`), { code: 'ENOENT' })
  t.equal(JSON.parse(cur[0]!).prev, hashOf(one[one.length - 1]!), 'first line of the new file carries the old file\'s last hash')
  t.equal(JSON.parse(cur[0]!).seq, JSON.parse(one[one.length - 1]!).seq + 1)
  for (const l of [...cur, ...one, ...two]) t.ok(l.length + 1 <= 600)
  t.equal((await verifyAudit([`${path}.2`, `${path}.1`, path], KEY)).ok, true)
  t.equal(JSON.parse(cur[cur.length - 1]!).seq, 20)
})

t.test('rotation by time; an empty current file continues from <path>.1', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  let now = Date.parse('2025-01-01T00:00:00Z')
  const log = new AuditLog({ path, key: null, rotate: { sizeBytes: null, everyMs: 86_400_000, keep: 3 } }, { log: silentLogger, now: () => now })
  await log.open()
  await log.append('a', {})
  now += 86_400_000
  await log.append('b', {})
  await log.close()
  t.equal((await lines(`${path}.1`)).length, 1)
  t.equal((await lines(path)).length, 1)
  // A crash right after a rotation leaves an empty file: the chain goes on from .1.
  await rm(path)
  await writeFile(`${path}`, '')
  const again = new AuditLog({ path, key: null }, { log: silentLogger })
  await again.open()
  t.equal((await again.append('c', {})).seq, 2)
  await again.close()
})

t.test('a fresh log starts with the zero hash', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'sub', 'audit.log')
  const log = new AuditLog({ path, key: null, durability: 'batch' }, { log: silentLogger })
  await log.open()
  await log.append('start', {})
  await log.close()
  const [l] = await lines(path)
  t.equal(JSON.parse(l!).prev, ZERO_HASH)
  t.notMatch(l, /"mac"/)
})

t.test('appends are written in call order, one at a time', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  const log = new AuditLog({ path, key: KEY, durability: 'none' }, { log: silentLogger })
  await log.open()
  await Promise.all(Array.from({ length: 50 }, (_, i) => log.append('n', { i })))
  await log.close()
  t.same((await lines(path)).map((l) => JSON.parse(l).i), Array.from({ length: 50 }, (_, i) => i))
  t.equal((await verifyAudit([path], KEY)).ok, true)
})

t.test('a write error fails the log: onFailure once, appends throw QE_AUDIT_WRITE, a retry resumes the chain', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'audit.log')
  let broken = false
  const failures: string[] = []
  let recovered = 0
  const openFile = async (p: string): Promise<AuditFile> => {
    const real = await (await import('node:fs/promises')).open(p, 'a', 0o600)
    return {
      write: async (s) => {
        if (broken) {
          await real.write(s.slice(0, 5)) // a half-written line
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
        }
        await real.write(s)
      },
      sync: () => real.sync(),
      truncate: (n) => real.truncate(n),
      close: () => real.close(),
    }
  }
  const log = new AuditLog({ path, key: KEY }, { log: silentLogger, openFile, retryMs: 30, onFailure: (r) => failures.push(r), onRecover: () => recovered++ })
  await log.open()
  await log.append('start', {})
  broken = true
  await t.rejects(log.append('x', {}), AuditWriteError)
  await t.rejects(log.append('y', {}), { code: 'QE_AUDIT_WRITE', message: /the audit log cannot be written: ENOSPC/ })
  t.equal(failures.length, 1)
  t.match(log.failed, /ENOSPC/)
  broken = false
  const end = Date.now() + 2000
  while (log.failed !== null && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  t.equal(log.failed, null)
  t.equal(recovered, 1)
  await log.append('z', {})
  await log.close()
  const ls = await lines(path)
  t.same(ls.map((l) => JSON.parse(l).type), ['start', 'audit-resumed', 'z'])
  t.match(JSON.parse(ls[1]!), { refused: 1, reason: /ENOSPC/ })
  t.equal((await verifyAudit([path], KEY)).ok, true, 'the half-written line was cut off')
})

t.test('the key: created 0600 with 32 random bytes, read back; a key open to others is refused', async (t) => {
  const dir = await tmp(t)
  const p = join(dir, 'state', 'audit.key')
  const k = await loadOrCreateAuditKey(p)
  t.equal(k.length, 32)
  t.equal((await stat(p)).mode & 0o777, 0o600)
  t.same(await loadOrCreateAuditKey(p), k)
  await writeFile(join(dir, 'open.key'), k.toString('hex'), { mode: 0o644 })
  await t.rejects(readAuditKey(join(dir, 'open.key')), { code: 'QE_AUDIT_KEY', message: /open to others/ })
  await writeFile(join(dir, 'bad.key'), 'nothex', { mode: 0o600 })
  await t.rejects(readAuditKey(join(dir, 'bad.key')), { code: 'QE_AUDIT_KEY' })
})
