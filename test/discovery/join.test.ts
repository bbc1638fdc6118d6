/**
 * Invites and the join exchange over loopback UDP: a token round trip (a
 * typo is caught), single use bound to the first key, a retry answered
 * again, and every bad token refused with its own code, changing nothing.
 */
import { createSocket, type Socket } from 'node:dgram'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decodeToken, encodeToken, InviteStore, type InviteToken } from '../../src/discovery/invite.js'
import { encodeRequest, JoinServer, requestJoin, type JoinGrant } from '../../src/discovery/join.js'
import { silentLogger } from '../../src/log.js'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import { initCa, openCa } from '../../src/pki/index.js'

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'qe-join-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

t.test('a token round-trips, stays short, and a typo is caught', async (t) => {
  const tok: InviteToken = {
    network: 'homelab-network-2026',
    id: Buffer.alloc(8, 1),
    secret: Buffer.alloc(16, 2),
    expiresAt: 1_800_000_000_000,
    inviterKey: publicKeyBase64(generateIdentity()),
    endpoints: [{ host: '203.0.113.50', port: 7444 }],
  }
  const s = encodeToken(tok)
  t.ok(s.length < 160, `${s.length} characters`)
  t.same(decodeToken(s), tok)
  const v6 = { ...tok, endpoints: [{ host: '2001:db8::7', port: 7444 }, { host: '192.0.2.1', port: 1 }] }
  t.same(decodeToken(encodeToken(v6)).endpoints, v6.endpoints)
  const typo = s.slice(0, 20) + (s[20] === 'A' ? 'B' : 'A') + s.slice(21)
  t.throws(() => decodeToken(typo), { code: 'QE_INVITE_TOKEN' }, 'one wrong character')
  t.throws(() => decodeToken(s.slice(0, 30)), { code: 'QE_INVITE_TOKEN' }, 'cut short')
  t.throws(() => decodeToken('hello'), { code: 'QE_INVITE_TOKEN' })
})

async function server(t: { teardown(fn: () => unknown): void }, opts: { now?: () => number } = {}) {
  const dir = await tmp(t)
  await initCa(join(dir, 'ca'), { network: 'homelab' })
  const ca = await openCa(join(dir, 'ca'))
  const store = new InviteStore(join(dir, 'state', 'invites.json'))
  await store.load()
  const grant = async (req: { key: string; name: string; groups: readonly string[] }): Promise<JoinGrant> => ({
    cert: await ca.sign({ key: req.key, name: req.name, groups: req.groups }),
    secret: (await ca.secret()).toString('base64'),
    network: { name: 'homelab', ca: ca.info.publicKey, overlay: ca.info.overlay },
    bootstrap: ['192.0.2.9:7444'],
    inviter: { name: 'home-server', key: publicKeyBase64(generateIdentity()), endpoints: ['192.0.2.10:7443'] },
  })
  const js = new JoinServer({ store }, { log: silentLogger, grant, ...(opts.now ? { now: opts.now } : {}) })
  const sock: Socket = createSocket('udp4')
  sock.on('message', (m, r) => js.handle(m, { address: r.address, port: r.port }, (b) => sock.send(b, r.port, r.address)))
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => sock.close())
  const port = sock.address().port
  const invite = async (ttlMs = 60_000, now?: number): Promise<InviteToken> => {
    const inv = await store.create({ name: 'pi', groups: ['homelab'], ttlMs, ...(now !== undefined ? { now } : {}) })
    return { network: 'homelab', id: inv.id, secret: inv.secret, expiresAt: inv.expiresAt, inviterKey: publicKeyBase64(generateIdentity()), endpoints: [{ host: '127.0.0.1', port }] }
  }
  return { js, store, invite, port, dir, ca }
}

t.test('a token grants one certificate, to the first key; a retry gets the same; another key is refused', async (t) => {
  const { js, invite, dir } = await server(t)
  const tok = await invite()
  const pi = generateIdentity()
  const g = await requestJoin(tok, pi.publicKey, { timeoutMs: 3000 })
  t.equal(g.cert.name, 'pi')
  t.equal(g.cert.key, publicKeyBase64(pi))
  t.same(g.cert.groups, ['homelab'])
  t.equal(Buffer.from(g.secret, 'base64').length, 32, 'the network secret comes with it')
  const again = await requestJoin(tok, pi.publicKey, { timeoutMs: 3000 })
  t.equal(again.cert.serial, g.cert.serial, 'a retry of the same key gets the same certificate')
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, { timeoutMs: 3000 }), { code: 'QE_INVITE_USED' }, 'reused by another device')
  t.equal(js.stats().granted, 1)
  t.equal(js.stats().used, 1)
  t.equal((await stat(join(dir, 'state', 'invites.json'))).mode & 0o777, 0o600, 'the store holds secrets: 0600')
})

t.test('expired, forged and unknown tokens are refused with their own codes', async (t) => {
  let now = Date.now()
  const { js, invite } = await server(t, { now: () => now })
  const tok = await invite(1000, now)
  now += 5000
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, { timeoutMs: 2000 }), { code: 'QE_INVITE_EXPIRED' })
  const forged = { ...(await invite(60_000, now)), secret: Buffer.alloc(16, 9) }
  await t.rejects(requestJoin(forged, generateIdentity().publicKey, { timeoutMs: 800, retryMs: 200 }), { code: 'QE_INVITE_UNKNOWN' }, 'the right id with a wrong secret')
  const unknown = { ...forged, id: Buffer.alloc(8, 7) }
  await t.rejects(requestJoin(unknown, generateIdentity().publicKey, { timeoutMs: 800, retryMs: 200 }), { code: 'QE_INVITE_UNKNOWN' }, 'an id the inviter never issued')
  t.equal(js.stats().expired, 1)
  t.ok(js.stats().unknown >= 2)
  t.equal(js.stats().granted, 0, 'nothing was granted')
})

t.test('no inviter: unreachable, within the timeout', async (t) => {
  const { invite } = await server(t)
  const tok = { ...(await invite()), endpoints: [{ host: '127.0.0.1', port: 9 }] }
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, { timeoutMs: 600, retryMs: 200 }), { code: 'QE_INVITE_UNREACHABLE' })
})

t.test('malformed datagrams are counted and answered with nothing', async (t) => {
  const { js, port, invite } = await server(t)
  const s = createSocket('udp4')
  t.teardown(() => s.close())
  const tok = await invite()
  const good = encodeRequest(tok, generateIdentity().publicKey, Buffer.alloc(16))
  for (const bad of [Buffer.from('QEJ1'), Buffer.concat([good, Buffer.from('x')]), Buffer.from('QEJ1\u0002' + 'x'.repeat(90))]) s.send(bad, port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 200))
  t.equal(js.stats().malformed, 3)
  t.equal(js.stats().granted, 0)
})

t.test('the store survives a restart: a used invite stays used', async (t) => {
  const { store, invite, dir } = await server(t)
  const tok = await invite()
  await store.use(tok.id, 'K', '{}')
  const again = new InviteStore(join(dir, 'state', 'invites.json'))
  await again.load()
  t.equal(again.get(tok.id)?.usedBy, 'K')
})
