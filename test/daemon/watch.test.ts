/**
 * The config watcher hears every way a config file is replaced: a write in
 * place, a temporary file renamed over it (editors, Ansible, the daemon's own
 * `apply --confirm`), a `..data` symlink swap (Kubernetes), and a write in
 * place after each of those. The periodic check is off, so only file events
 * count. (chokidar, which src/daemon/watch.ts used before, passes this too
 * when alone; inside a daemon it missed in-place writes after the daemon's
 * own atomic write, in 5 of 13 runs of test/e2e/reload.test.ts, where the
 * listen-port change then waited for the 10 s periodic check.)
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigWatcher } from '../../src/daemon/watch.js'
import { writeFileAtomic } from '../../src/atomic-file.js'
import { createLogger } from '../../src/log.js'

t.test('every kind of replacement is heard, and a write in place after each', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qe-watch-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'quicether.yaml')
  writeFileSync(path, 'v: 0\n')
  const seen: string[] = []
  const w = new ConfigWatcher({ path, periodicMs: 0, debounceMs: 50 }, { onChange: (text) => seen.push(text), log: createLogger({ level: 'silent' }) })
  w.setLoaded('v: 0\n')
  await w.start()
  t.teardown(() => w.stop())

  /** Resolves once `text` was reported, or after 3 s (the check then fails). */
  const heard = async (text: string): Promise<boolean> => {
    for (let i = 0; i < 60 && !seen.includes(text); i++) await new Promise((r) => setTimeout(r, 50))
    return seen.includes(text)
  }

  writeFileSync(path, 'v: 1\n')
  t.ok(await heard('v: 1\n'), 'a write in place')
  await writeFileAtomic(path, 'v: 2\n', 0o600)
  t.ok(await heard('v: 2\n'), 'a temporary file renamed over it (as `apply --confirm` writes)')
  writeFileSync(path, 'v: 3\n')
  t.ok(await heard('v: 3\n'), 'a write in place after the rename: the new file, not the old inode')
  for (const [d, text] of [['..v1', 'v: 4\n'], ['..v2', 'v: 5\n']] as const) {
    mkdirSync(join(dir, d))
    writeFileSync(join(dir, d, 'quicether.yaml'), text)
  }
  symlinkSync('..v1', join(dir, '..data'))
  unlinkSync(path)
  symlinkSync('..data/quicether.yaml', path)
  t.ok(await heard('v: 4\n'), 'the file replaced by a symlink into ..data')
  symlinkSync('..v2', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  t.ok(await heard('v: 5\n'), 'a ..data symlink swap')
  unlinkSync(path)
  writeFileSync(path, 'v: 6\n')
  t.ok(await heard('v: 6\n'), 'back to a plain file')
  writeFileSync(path, 'v: 7\n')
  t.ok(await heard('v: 7\n'), 'and a write in place after it')
  t.same(seen, ['v: 1\n', 'v: 2\n', 'v: 3\n', 'v: 4\n', 'v: 5\n', 'v: 6\n', 'v: 7\n'], 'each content once, in order')
})
