/**
 * AuthHost's gate follows the peer, not one connection: a connection that another one
 * to the same peer replaced leaves the peer gated and its successor is told to log in;
 * a tunnel that really ends clears both.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { AuthHost } from '../../src/daemon/auth-host.js'
import type { Generation } from '../../src/daemon/generation.js'
import { silentLogger } from '../../src/log.js'
import type { WireMessage } from '../../src/mesh/messages.js'

const KEY = 'laptop-key'

async function host(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-auth-'))
  const sent: { peer: string; msg: WireMessage }[] = []
  const auth = new AuthHost({
    log: silentLogger,
    send: (peer, msg) => sent.push({ peer, msg }),
    nameOf: (key) => (key === KEY ? 'laptop' : null),
    keyOf: (name) => (name === 'laptop' ? KEY : null),
    onChange: () => undefined,
    audit: () => undefined,
  })
  const gen = { config: { node: { name: 'gw', stateDir: dir }, auth: { require2fa: true, session: 3_600_000 } } } as unknown as Generation
  await auth.start(gen)
  t.teardown(async () => {
    await auth.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return { auth, told: () => sent.filter((s) => s.peer === KEY && (s.msg as { type: string }).type === 'login-needed').length }
}

t.test('a replaced connection keeps the peer gated, and the new one is told', async (t) => {
  const { auth, told } = await host(t)
  t.equal(auth.gated({ key: KEY, role: 'client' }), true, 'a client without a session is gated')
  t.same(auth.status().gated, ['laptop'])
  t.equal(told(), 1, 'told once')
  auth.gated({ key: KEY, role: 'client' })
  t.equal(told(), 1, 'not told twice on one connection')

  auth.onPeerDown(KEY, 'replaced')
  t.same(auth.status().gated, ['laptop'], 'still gated after its connection was replaced')
  auth.onPeerUp(KEY)
  t.equal(told(), 2, 'the connection that replaced it is told')
})

t.test('a tunnel that ends clears the gate; the next tunnel is told again', async (t) => {
  const { auth, told } = await host(t)
  auth.gated({ key: KEY, role: 'client' })
  auth.onPeerDown(KEY, 'idle-timeout')
  t.same(auth.status().gated, [], 'no longer listed once its tunnel is down')
  auth.onPeerUp(KEY)
  t.equal(told(), 1, 'a new tunnel is not told before the node decides it is gated')
  auth.gated({ key: KEY, role: 'client' })
  t.equal(told(), 2, 'told again when gated on the new tunnel')
})
