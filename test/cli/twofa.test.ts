import t from 'tap'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from './run.js'

async function node(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-2fa-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const config = join(dir, 'quicether.yaml')
  const socket = join(dir, 'control.sock')
  await writeFile(config, `node: { name: office, state-dir: ${join(dir, 'state')} }\nnetwork: { name: acme }\ncontrol: { socket: ${socket} }\n`)
  return { dir, config, socket, store: join(dir, 'state', '2fa.json') }
}

/** A fake daemon answering one `login` request with `answer`; records what it was asked. */
async function fakeDaemon(t: { teardown(fn: () => unknown): void }, socket: string, answer: (args: Record<string, unknown>) => unknown) {
  const asked: unknown[] = []
  const server = createServer((s) => {
    let buf = ''
    s.setEncoding('utf8')
    s.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      const req = JSON.parse(buf.slice(0, nl)) as { id: number; cmd: string; args: Record<string, unknown> }
      asked.push({ cmd: req.cmd, args: req.args })
      s.end(JSON.stringify({ id: req.id, ok: true, result: answer(req.args) }) + '\n')
    })
  })
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return asked
}

t.test('enrol prints an otpauth URI and a QR code, and writes the store 0600', async (t) => {
  const n = await node(t)
  const r = await run(['2fa', 'enrol', '--peer', 'alice', '--config', n.config])
  t.equal(r.code, 0, r.stderr)
  const uri = new URL(/otpauth:\/\/\S+/.exec(r.stdout)?.[0] ?? 'x:')
  t.equal(`${uri.protocol}//${uri.host}${decodeURIComponent(uri.pathname)}`, 'otpauth://totp/QuicEther:alice')
  t.match(uri.searchParams.get('secret'), /^[A-Z2-7]{32}$/)
  t.equal(uri.searchParams.get('issuer'), 'QuicEther')
  t.match(r.stdout, /[▀▄█]/, 'a QR code in block characters')
  t.match(r.stderr, 'does not set auth.require-2fa', 'a hint when this node does not ask for it')
  t.equal((await stat(n.store)).mode & 0o777, 0o600)
  const json = await run(['2fa', 'enrol', '--peer', 'bob', '--config', n.config, '--json'])
  const e = JSON.parse(json.stdout) as { peer: string; secret: string; uri: string }
  t.equal(e.peer, 'bob')
  t.match(e.uri, `secret=${e.secret}`)
})

t.test('enrol twice is refused without --force', async (t) => {
  const n = await node(t)
  t.equal((await run(['2fa', 'enrol', '--peer', 'alice', '-c', n.config])).code, 0)
  const again = await run(['2fa', 'enrol', '--peer', 'alice', '-c', n.config])
  t.equal(again.code, 1)
  t.match(again.stderr, /alice is already enrolled.*--force.*\(QE_2FA_ENROLLED\)/)
  t.equal(again.stdout, '', 'no new secret is shown')
  t.equal((await run(['2fa', 'enrol', '--peer', 'alice', '-c', n.config, '--force'])).code, 0)
})

t.test('enrol refuses a name that is not a node name', async (t) => {
  const n = await node(t)
  const r = await run(['2fa', 'enrol', '--peer', 'Alice!', '-c', n.config])
  t.equal(r.code, 2)
  t.match(r.stderr, 'not a node name')
})

t.test('list shows enrolled peers; revoke removes one', async (t) => {
  const n = await node(t)
  t.match((await run(['2fa', 'list', '-c', n.config])).stdout, 'no peers are enrolled')
  await run(['2fa', 'enrol', '--peer', 'bob', '-c', n.config])
  await run(['2fa', 'enrol', '--peer', 'alice', '-c', n.config])
  const r = await run(['2fa', 'list', '-c', n.config])
  t.equal(r.code, 0)
  const rows = r.stdout.trim().split('\n')
  t.match(rows[0], /^PEER\s+ENROLLED\s+SESSION$/)
  t.match(rows[1], /^alice\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+none$/)
  t.match(rows[2], /^bob\s/)
  const json = JSON.parse((await run(['2fa', 'list', '-c', n.config, '--json'])).stdout) as { peer: string; sessionExpiresAt: null }[]
  t.same(json.map((p) => [p.peer, p.sessionExpiresAt]), [['alice', null], ['bob', null]])
  t.equal((await run(['2fa', 'revoke', '--peer', 'alice', '-c', n.config])).code, 0)
  const gone = await run(['2fa', 'revoke', '--peer', 'alice', '-c', n.config])
  t.equal(gone.code, 1)
  t.match(gone.stderr, 'QE_2FA_NOT_ENROLLED')
  t.notMatch((await run(['2fa', 'list', '-c', n.config])).stdout, 'alice')
})

t.test('login with no daemon running says so', async (t) => {
  const n = await node(t)
  const r = await run(['login', '--code', '123456', '-c', n.config])
  t.equal(r.code, 1)
  t.match(r.stderr, /no quicether daemon is running.*\(QE_DAEMON_NOT_RUNNING\)/)
})

t.test('login refuses a code that is not six digits before asking anyone', async (t) => {
  const n = await node(t)
  const r = await run(['login', '--code', '12345', '-c', n.config])
  t.equal(r.code, 2)
  t.match(r.stderr, 'six digits')
})

t.test('login sends the code to the daemon and prints the session', async (t) => {
  const n = await node(t)
  const expiresAt = Date.now() + 12 * 3_600_000
  const asked = await fakeDaemon(t, n.socket, () => ({ peer: 'office', ok: true, expiresAt }))
  const r = await run(['login', '--peer', 'office', '--code', '123456', '-c', n.config])
  t.equal(r.code, 0, r.stderr)
  t.same(asked, [{ cmd: 'login', args: { peer: 'office', code: '123456' } }])
  t.match(r.stdout, `logged in to office until ${new Date(expiresAt).toISOString().slice(0, 19)}Z (in 1`)
})

t.test('login prompts for the code when --code is absent', async (t) => {
  const n = await node(t)
  const asked = await fakeDaemon(t, n.socket, () => ({ peer: 'office', ok: true, expiresAt: Date.now() + 60_000 }))
  const r = await run(['login', '-c', n.config], '654321\n')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, 'code from your authenticator app:')
  t.same(asked, [{ cmd: 'login', args: { code: '654321' } }], 'no peer: the daemon picks the node that asked')
})

t.test('a refused login prints the reason and when to retry, and exits 1', async (t) => {
  const n = await node(t)
  await fakeDaemon(t, n.socket, () => ({ peer: 'office', ok: false, reason: 'rate-limited', retryAfterMs: 90_000 }))
  const r = await run(['login', '--code', '123456', '-c', n.config])
  t.equal(r.code, 1)
  t.match(r.stderr, /office refused the code: too many wrong codes; try again in 1m 30s \(QE_2FA_REFUSED\)/)
})
