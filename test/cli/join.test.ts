/**
 * `quicether join` end to end against an inviter on 127.0.0.1: the files it
 * writes (modes), a config that loads, the inviter pinned as first contact;
 * and a refused join that leaves nothing behind.
 */
import { createSocket } from 'node:dgram'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import { encodeToken, InviteStore } from '../../src/discovery/invite.js'
import { JoinServer } from '../../src/discovery/join.js'
import { silentLogger } from '../../src/log.js'
import { generateIdentity, loadIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import { initCa, openCa, parseCertificate } from '../../src/pki/index.js'
import { run } from './run.js'

async function inviter(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-cli-join-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await initCa(join(dir, 'ca'), { network: 'homelab' })
  const ca = await openCa(join(dir, 'ca'))
  const store = new InviteStore(join(dir, 'invites.json'))
  await store.load()
  const inviterKey = publicKeyBase64(generateIdentity())
  const js = new JoinServer({ store }, {
    log: silentLogger,
    grant: async (req) => ({
      cert: await ca.sign({ key: req.key, name: req.name, groups: req.groups }),
      secret: (await ca.secret()).toString('base64'),
      network: { name: 'homelab', ca: ca.info.publicKey, overlay: ca.info.overlay },
      bootstrap: ['192.0.2.9:7444'],
      inviter: { name: 'home-server', key: inviterKey, endpoints: ['192.0.2.10:7443'] },
    }),
  })
  const sock = createSocket('udp4')
  sock.on('message', (m, r) => js.handle(m, { address: r.address, port: r.port }, (b) => sock.send(b, r.port, r.address)))
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => sock.close())
  const token = async () => {
    const inv = await store.create({ name: 'pi', groups: ['homelab'], ttlMs: 60_000 })
    return encodeToken({ network: 'homelab', id: inv.id, secret: inv.secret, expiresAt: inv.expiresAt, inviterKey, endpoints: [{ host: '127.0.0.1', port: sock.address().port }] })
  }
  return { dir, token, inviterKey, ca }
}

t.test('join writes identity, certificate, secret and a config that loads', async (t) => {
  const { dir, token, inviterKey, ca } = await inviter(t)
  const state = join(dir, 'pi-state')
  const config = join(dir, 'pi.yaml')
  const r = await run(['join', await token(), '--config', config, '--state-dir', state, '--timeout', '3'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /Joined 'homelab' as 'pi'/)
  const id = await loadIdentity(join(state, 'identity.key'))
  t.equal((await stat(join(state, 'identity.key'))).mode & 0o777, 0o600)
  t.equal((await stat(join(state, 'network.secret'))).mode & 0o777, 0o600)
  const cert = parseCertificate(await readFile(join(state, 'node.crt'), 'utf8'))
  t.ok(cert.ok && cert.cert.key === publicKeyBase64(id), 'the certificate is for the new identity')
  const loaded = loadConfigText(await readFile(config, 'utf8'), config)
  t.ok(loaded.ok, 'the config validates')
  if (!loaded.ok) return
  t.equal(loaded.config.node.name, 'pi')
  t.equal(loaded.config.network.ca, ca.info.publicKey)
  t.same(loaded.config.peers.map((p) => [p.name, p.key]), [['home-server', inviterKey]], 'the inviter is the first contact')
  t.same(loaded.config.discovery.bootstrap, [{ host: '192.0.2.9', port: 7444 }])
  t.equal(loaded.config.discovery.dht, true)
  const again = await run(['join', await token(), '--config', config, '--state-dir', state, '--timeout', '3'])
  t.equal(again.code === 0, false, 'an existing config is not overwritten without --force')
  t.match(again.stderr, /QE_CONFIG_EXISTS/)
})

t.test('a refused join writes nothing', async (t) => {
  const { dir, token } = await inviter(t)
  const tok = await token()
  const first = await run(['join', tok, '--config', join(dir, 'a.yaml'), '--state-dir', join(dir, 'a'), '--timeout', '3'])
  t.equal(first.code, 0, first.stderr)
  const state = join(dir, 'b')
  const r = await run(['join', tok, '--config', join(dir, 'b.yaml'), '--state-dir', state, '--timeout', '3'])
  t.not(r.code, 0)
  t.match(r.stderr, /QE_INVITE_USED/)
  t.same(await readdir(dir).then((f) => f.filter((x) => x.startsWith('b'))), [], 'no state dir, no config')
  const expired = await run(['join', 'qe1' + 'A'.repeat(120), '--config', join(dir, 'c.yaml'), '--state-dir', join(dir, 'c'), '--timeout', '1'])
  t.match(expired.stderr, /QE_INVITE_TOKEN/, 'a garbled token')
})
