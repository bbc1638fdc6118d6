/**
 * `quicether join` end to end against an inviter on 127.0.0.1: the files it
 * writes (modes), a config that loads, the inviter pinned as first contact;
 * a refused, expired or garbled join that leaves nothing behind; an existing
 * config kept without --force.
 */
import { createSocket } from 'node:dgram'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import { encodeToken, InviteStore } from '../../src/discovery/invite.js'
import { JoinServer, type JoinGrant } from '../../src/discovery/join.js'
import { silentLogger } from '../../src/log.js'
import { generateIdentity, loadIdentity, publicKeyBase64, saveIdentity } from '../../src/mesh/identity.js'
import { initCa, openCa, parseCertificate } from '../../src/pki/index.js'
import { run } from './run.js'

async function inviter(t: { teardown(fn: () => unknown): void }, opts: { bootstrap?: string[] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-cli-join-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await initCa(join(dir, 'ca'), { network: 'homelab' })
  const ca = await openCa(join(dir, 'ca'))
  const store = new InviteStore(join(dir, 'invites.json'))
  await store.load()
  const inviterKey = publicKeyBase64(generateIdentity())
  const js = new JoinServer(
    { store },
    {
      log: silentLogger,
      grant: async (req): Promise<JoinGrant> => ({
        cert: await ca.sign({ key: req.key, name: req.name, groups: req.groups }),
        secret: (await ca.secret()).toString('base64'),
        network: { name: 'homelab', ca: ca.info.publicKey, overlay: ca.info.overlay },
        bootstrap: opts.bootstrap ?? ['192.0.2.9:7444'],
        inviter: { name: 'home-server', key: inviterKey, endpoints: ['192.0.2.10:7443', '[2001:db8::10]:7443'] },
      }),
    },
  )
  const sock = createSocket('udp4')
  let received = 0
  sock.on('message', (m, r) => {
    received++
    js.handle(m, { address: r.address, port: r.port }, (b) => sock.send(b, r.port, r.address))
  })
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => sock.close())
  const token = async (ttlMs = 60_000, now?: number) => {
    const inv = await store.create({ name: 'pi', groups: ['homelab'], ttlMs, ...(now !== undefined ? { now } : {}) })
    return encodeToken({ network: 'homelab', id: inv.id, secret: inv.secret, expiresAt: inv.expiresAt, inviterKey, endpoints: [{ host: '127.0.0.1', port: sock.address().port }] })
  }
  return { dir, token, inviterKey, ca, js, received: () => received }
}

t.test('join writes identity, certificate, secret and a config that loads', async (t) => {
  const { dir, token, inviterKey, ca } = await inviter(t)
  const state = join(dir, 'pi-state')
  const config = join(dir, 'pi.yaml')
  const r = await run(['join', await token(), '--config', config, '--state-dir', state, '--listen-port', '7543', '--timeout', '3'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /Joined 'homelab' as 'pi' \(groups: homelab\), invited by 'home-server'/)
  t.match(r.stdout, /created identity .*identity\.key/)
  t.match(r.stdout, new RegExp(`Next: quicether start -c ${config.replace(/[.]/g, '\\.')}`))
  const id = await loadIdentity(join(state, 'identity.key'))
  const mode = async (f: string) => (await stat(join(state, f))).mode & 0o777
  t.equal(await mode('identity.key'), 0o600)
  t.equal(await mode('network.secret'), 0o600)
  t.equal(await mode('node.crt'), 0o644, 'the certificate is public')
  t.equal((await stat(state)).mode & 0o777, 0o700, 'the state directory is 0700')
  t.same((await readdir(state)).sort(), ['identity.key', 'network.secret', 'node.crt'], 'no temporary files left')
  t.equal((await readFile(join(state, 'network.secret'), 'utf8')).trim(), (await ca.secret()).toString('base64'))
  const cert = parseCertificate(await readFile(join(state, 'node.crt'), 'utf8'))
  t.ok(cert.ok && cert.cert.key === publicKeyBase64(id), 'the certificate is for the new identity')
  const text = await readFile(config, 'utf8')
  t.match(text, /^# yaml-language-server: \$schema=/, 'a commented file, like init\'s')
  const loaded = loadConfigText(text, config)
  t.ok(loaded.ok, 'the config validates')
  if (!loaded.ok) return
  const c = loaded.config
  t.equal(c.node.name, 'pi')
  t.equal(c.node.stateDir, state)
  t.equal(c.network.name, 'homelab')
  t.equal(c.network.ca, ca.info.publicKey)
  t.equal(c.network.overlay.ipv4, ca.info.overlay.ipv4)
  t.equal(c.network.overlay.ipv6, ca.info.overlay.ipv6)
  t.equal(c.network.certificate, join(state, 'node.crt'))
  t.equal(c.network.secret, join(state, 'network.secret'))
  t.equal(c.listen.port, 7543)
  t.same(
    c.peers.map((p) => [p.name, p.key, p.endpoints]),
    [['home-server', inviterKey, [{ host: '192.0.2.10', port: 7443 }, { host: '2001:db8::10', port: 7443 }]]],
    'the inviter is the first contact',
  )
  t.same(c.discovery.bootstrap, [{ host: '192.0.2.9', port: 7444 }])
  t.equal(c.discovery.dht, true)

  const again = await run(['join', await token(), '--config', config, '--state-dir', state, '--timeout', '3'])
  t.equal(again.code, 1, 'an existing config is not overwritten without --force')
  t.match(again.stderr, /QE_CONFIG_EXISTS/)
  const forced = await run(['join', await token(), '--config', config, '--state-dir', state, '--timeout', '3', '--force'])
  t.equal(forced.code, 0, forced.stderr)
  t.match(forced.stdout, /using the existing identity/)
  const cert2 = parseCertificate(await readFile(join(state, 'node.crt'), 'utf8'))
  t.ok(cert2.ok && cert2.cert.key === publicKeyBase64(id), 'the identity is kept: a new certificate for the same key')
})

t.test('an existing identity in the state directory is kept', async (t) => {
  const { dir, token } = await inviter(t, { bootstrap: [] })
  const state = join(dir, 's')
  const mine = generateIdentity()
  await saveIdentity(join(state, 'identity.key'), mine)
  const config = join(dir, 's.yaml')
  const r = await run(['join', await token(), '--config', config, '--state-dir', state, '--timeout', '3'])
  t.equal(r.code, 0, r.stderr)
  const cert = parseCertificate(await readFile(join(state, 'node.crt'), 'utf8'))
  t.ok(cert.ok && cert.cert.key === publicKeyBase64(mine))
  const loaded = loadConfigText(await readFile(config, 'utf8'), config)
  t.ok(loaded.ok && loaded.config.discovery.dht === false && loaded.config.discovery.bootstrap.length === 0, 'no bootstrap node known: no DHT')
})

t.test('a refused, expired or garbled join writes nothing', async (t) => {
  const { dir, token, received } = await inviter(t)
  const tok = await token()
  const first = await run(['join', tok, '--config', join(dir, 'a.yaml'), '--state-dir', join(dir, 'a'), '--timeout', '3'])
  t.equal(first.code, 0, first.stderr)
  const empty = join(dir, 'empty')
  await mkdir(empty)
  const b = await run(['join', tok, '--config', join(empty, 'b.yaml'), '--state-dir', join(empty, 'b'), '--timeout', '3'])
  t.equal(b.code, 1)
  t.match(b.stderr, /QE_INVITE_USED/)
  t.same(await readdir(empty), [], 'used by another device: no state dir, no config')

  const before = received()
  const expired = await run(['join', await token(1000, Date.now() - 10_000), '--config', join(empty, 'c.yaml'), '--state-dir', join(empty, 'c'), '--timeout', '3'])
  t.equal(expired.code, 1)
  t.match(expired.stderr, /expired at .* ask for a new one \(QE_INVITE_EXPIRED\)/)
  t.equal(received(), before, 'an expired token sends no packet')

  const garbled = await run(['join', 'qe1' + 'A'.repeat(120), '--config', join(empty, 'd.yaml'), '--state-dir', join(empty, 'd'), '--timeout', '1'])
  t.equal(garbled.code, 1)
  t.match(garbled.stderr, /QE_INVITE_TOKEN/, 'a garbled token')

  const badPort = await run(['join', await token(), '--config', join(empty, 'e.yaml'), '--state-dir', join(empty, 'e'), '--listen-port', '70000'])
  t.equal(badPort.code, 2)
  t.match(badPort.stderr, /--listen-port .*QE_USAGE/)
  t.same(await readdir(empty), [], 'still nothing')
})

t.test('no inviter answering: unreachable, nothing written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'qe-cli-join-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const tok = encodeToken({ network: 'homelab', id: Buffer.alloc(8, 1), secret: Buffer.alloc(16, 2), expiresAt: Date.now() + 60_000, inviterKey: publicKeyBase64(generateIdentity()), endpoints: [{ host: '127.0.0.1', port: 9 }] })
  const r = await run(['join', tok, '--config', join(dir, 'x.yaml'), '--state-dir', join(dir, 'x'), '--timeout', '0.5'])
  t.equal(r.code, 1)
  t.match(r.stderr, /did not answer at 127\.0\.0\.1:9 .*QE_INVITE_UNREACHABLE/)
  t.same(await readdir(dir), [])
})

t.test('an existing config that is a directory is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'qe-cli-join-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'conf.yaml'))
  await writeFile(join(dir, 'marker'), '')
  const tok = encodeToken({ network: 'homelab', id: Buffer.alloc(8, 1), secret: Buffer.alloc(16, 2), expiresAt: Date.now() + 60_000, inviterKey: publicKeyBase64(generateIdentity()), endpoints: [{ host: '127.0.0.1', port: 9 }] })
  const r = await run(['join', tok, '--config', join(dir, 'conf.yaml'), '--state-dir', join(dir, 'x'), '--force'])
  t.match(r.stderr, /not a regular file/)
  t.same((await readdir(dir)).sort(), ['conf.yaml', 'marker'])
})
