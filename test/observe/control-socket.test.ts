import t from 'tap'
import { join } from 'node:path'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { statSync, writeFileSync } from 'node:fs'
import { ControlServer, controlRequest, DaemonNotRunningError } from '../../src/observe/control-socket.js'
import { silentLogger } from '../../src/log.js'
import { QeError } from '../../src/errors.js'

// Unix socket paths are limited to 107 bytes: tap's fixture dirs are too deep, so use short temp dirs.
function sockDir(t: { teardown: (f: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'qet-ctl-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

class BoomError extends QeError {
  override readonly code = 'QE_BOOM'
}

t.test('requests reach their handler and errors keep their code', async (t) => {
  const path = join(sockDir(t), 'ctl.sock')
  const server = new ControlServer({ path }, {
    log: silentLogger,
    handlers: { echo: (args) => args, boom: () => { throw new BoomError('boom') } },
  })
  await server.start()
  t.teardown(() => server.stop())
  t.equal(statSync(path).mode & 0o777, 0o600, 'only root may open it')
  t.same(await controlRequest(path, 'echo', { a: 1 }), { a: 1 })
  await t.rejects(controlRequest(path, 'boom'), { code: 'QE_BOOM', message: 'boom' })
  await t.rejects(controlRequest(path, 'nope'), { code: 'QE_CONTROL_UNKNOWN' })
})

t.test('a second server on the same path refuses to start', async (t) => {
  const path = join(sockDir(t), 'ctl.sock')
  const a = new ControlServer({ path }, { log: silentLogger, handlers: {} })
  await a.start()
  t.teardown(() => a.stop())
  const b = new ControlServer({ path }, { log: silentLogger, handlers: {} })
  await t.rejects(b.start(), { code: 'QE_ALREADY_RUNNING' })
})

t.test('a stale socket file left by a crash is replaced', async (t) => {
  const path = join(sockDir(t), 'ctl.sock')
  writeFileSync(path, '') // not a socket nobody listens on: connect fails, so it is stale
  const a = new ControlServer({ path }, { log: silentLogger, handlers: { ping: () => 'pong' } })
  await a.start()
  t.teardown(() => a.stop())
  t.equal(await controlRequest(path, 'ping'), 'pong')
})

t.test('a path too long for a unix socket is refused clearly', async (t) => {
  const s = new ControlServer({ path: '/tmp/' + 'x'.repeat(120) }, { log: silentLogger, handlers: {} })
  await t.rejects(s.start(), { code: 'QE_CONTROL_PATH' })
})

t.test('no daemon: a clear error, not a raw errno', async (t) => {
  await t.rejects(controlRequest(join(sockDir(t), 'none.sock'), 'status'), DaemonNotRunningError)
})
