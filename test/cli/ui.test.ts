/**
 * `quicether ui --url`: the UI's address with the token the daemon made; a
 * clear error when the UI is off or its token is not there yet.
 */
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureUiToken } from '../../src/observe/ui-server.js'
import { run } from './run.js'

async function setup(t: { teardown(fn: () => unknown): void }, ui: string) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-ui-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'q.yaml')
  await writeFile(file, `node: { name: a, state-dir: ${dir} }\nnetwork: { name: n }\n${ui}`)
  return { dir, file }
}

t.test('prints the address with the token; a wildcard listen is reached on loopback', async (t) => {
  const { dir, file } = await setup(t, 'ui: { listen: "0.0.0.0:9587" }\n')
  const token = await ensureUiToken(dir)
  t.equal(await ensureUiToken(dir), token, 'the token is made once and kept')
  const r = await run(['ui', '--url', '--config', file])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, `http://127.0.0.1:9587/#token=${token}\n`)
  const j = await run(['ui', '--config', file, '--json'])
  t.same(JSON.parse(j.stdout), { url: `http://127.0.0.1:9587/#token=${token}`, listen: '0.0.0.0:9587' })
})

t.test('an IPv6 listen is bracketed', async (t) => {
  const { dir, file } = await setup(t, 'ui: { listen: "[::1]:9587" }\n')
  const token = await ensureUiToken(dir)
  t.equal((await run(['ui', '--config', file])).stdout, `http://[::1]:9587/#token=${token}\n`)
})

t.test('the UI off, or no token yet: one line saying why', async (t) => {
  const off = await setup(t, '')
  const r = await run(['ui', '--config', off.file])
  t.equal(r.code, 1)
  t.match(r.stderr, /sets no ui\.listen: the web UI is off.*QE_UI_UNAVAILABLE/)
  const early = await setup(t, 'ui: { listen: "127.0.0.1:9587" }\n')
  const e = await run(['ui', '--config', early.file])
  t.equal(e.code, 1)
  t.match(e.stderr, /no UI token in .* yet: the daemon makes it when its UI starts/)
})
