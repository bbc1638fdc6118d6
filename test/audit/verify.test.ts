import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLog } from '../../src/audit/log.js'
import { canonicalLine, hashOf } from '../../src/audit/line.js'
import { verifyAudit } from '../../src/audit/verify.js'
import { silentLogger } from '../../src/log.js'

const KEY = Buffer.alloc(32, 9)

type TestT = { teardown(fn: () => unknown): void }

/** A log of `n` lines rotated every ~`size` bytes; returns the files oldest first. */
async function makeLog(t: TestT, n: number, size: number | null = null): Promise<{ dir: string; files: string[]; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'qe-verify-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'audit.log')
  const log = new AuditLog({ path, key: KEY, durability: 'none', rotate: size ? { sizeBytes: size, everyMs: null, keep: 10 } : undefined }, { log: silentLogger })
  await log.open()
  for (let i = 0; i < n; i++) await log.append('cmd', { cmd: 'status', uid: 0, i })
  await log.close()
  const files: string[] = []
  for (let i = 10; i >= 1; i--) {
    const f = `${path}.${i}`
    if (await readFile(f).then(() => true, () => false)) files.push(f)
  }
  files.push(path)
  return { dir, files, path }
}

const rows = async (f: string) => (await readFile(f, 'utf8')).split('\n').slice(0, -1)
const put = (f: string, ls: string[]) => writeFile(f, ls.map((l) => l + '\n').join(''))

t.test('an intact log verifies, with and without the key', async (t) => {
  const { files } = await makeLog(t, 5)
  t.match(await verifyAudit(files, KEY), { ok: true, lines: 5, broken: null, firstSeq: 1, macChecked: true })
  t.match(await verifyAudit(files, null), { ok: true, lines: 5, macChecked: false })
})

t.test('a full chain across rotations verifies; swapped rotated files are caught', async (t) => {
  const { files } = await makeLog(t, 30, 1000)
  t.ok(files.length >= 4, `rotated into ${files.length} files`)
  t.match(await verifyAudit(files, KEY), { ok: true, lines: 30 })
  const swapped = [files[1]!, files[0]!, ...files.slice(2)]
  const r = await verifyAudit(swapped, KEY)
  t.equal(r.ok, false)
  t.match(r.broken, { file: files[0], line: 1, reason: /seq \d+ where \d+ was expected/ })
})

t.test('a tampered field: the mac catches it on the line itself', async (t) => {
  const { path } = await makeLog(t, 5)
  const ls = await rows(path)
  ls[2] = ls[2]!.replace('"uid":0', '"uid":1000')
  await put(path, ls)
  t.match(await verifyAudit([path], KEY), { ok: false, lines: 2, broken: { file: path, line: 3, reason: /mac does not match/ } })
  t.match(await verifyAudit([path], null), { ok: false, broken: { line: 4, reason: /prev does not match/ } }, 'without the key: the next line\'s prev')
})

t.test('a deleted line', async (t) => {
  const { path } = await makeLog(t, 5)
  const ls = await rows(path)
  ls.splice(1, 1)
  await put(path, ls)
  t.match(await verifyAudit([path], KEY), { ok: false, broken: { line: 2, reason: /seq 3 where 2 was expected/ } })
})

t.test('an inserted line, even one with a correct seq and prev, needs the key', async (t) => {
  const { path } = await makeLog(t, 4)
  const ls = await rows(path)
  // An attacker without the key rewrites from line 3 on: the chain is consistent, the macs are not.
  const forged: string[] = ls.slice(0, 2)
  let prev = hashOf(ls[1]!)
  for (let seq = 3; seq <= 5; seq++) {
    const l = canonicalLine({ seq, at: new Date().toISOString(), type: 'cmd', fields: { cmd: 'apply', uid: 0 }, prev }, Buffer.alloc(32, 1))
    forged.push(l)
    prev = hashOf(l)
  }
  await put(path, forged)
  t.match(await verifyAudit([path], KEY), { ok: false, broken: { line: 3, reason: /mac does not match/ } })
  // A plain copy of a line (a repeat) is caught by seq.
  await put(path, [ls[0]!, ls[1]!, ls[1]!, ls[2]!])
  t.match(await verifyAudit([path], KEY), { ok: false, broken: { line: 3, reason: /seq 2 where 3 was expected.*inserted/ } })
})

t.test('a wrong key', async (t) => {
  const { files } = await makeLog(t, 3)
  t.match(await verifyAudit(files, Buffer.alloc(32, 1)), { ok: false, lines: 0, broken: { line: 1, reason: /mac does not match/ } })
})

t.test('a truncated last line', async (t) => {
  const { path } = await makeLog(t, 3)
  const text = await readFile(path, 'utf8')
  await writeFile(path, text.slice(0, -20))
  t.match(await verifyAudit([path], KEY), { ok: false, lines: 2, broken: { line: 3, reason: /cut short/ } })
})

t.test('a line rewritten in non-canonical form, or the first line\'s prev changed', async (t) => {
  const { path } = await makeLog(t, 2)
  const ls = await rows(path)
  await put(path, [ls[0]!.replace('{"seq":1,', '{ "seq":1,'), ls[1]!])
  t.match(await verifyAudit([path], KEY), { ok: false, broken: { line: 1, reason: /canonical/ } })
  await put(path, [ls[0]!.replace(/"prev":"0/, '"prev":"1'), ls[1]!])
  t.match(await verifyAudit([path], null), { ok: false, broken: { line: 1, reason: /zero hash/ } })
})

t.test('a log whose oldest files were rotated away verifies from where it starts', async (t) => {
  const { files } = await makeLog(t, 30, 1000)
  const r = await verifyAudit(files.slice(1), KEY)
  t.equal(r.ok, true)
  t.ok((r.firstSeq ?? 0) > 1)
})
