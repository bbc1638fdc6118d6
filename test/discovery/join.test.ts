/**
 * The join exchange over 127.0.0.1 UDP with a real CA: a grant end to end,
 * single use bound to the first key, a retry answered again, racing keys,
 * and every bad request refused with its own code and counter.
 */
import { createSocket, type Socket } from 'node:dgram'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { InviteStore, type InviteToken } from '../../src/discovery/invite.js'
import { encodeRequest, JoinServer, requestJoin, type JoinGrant } from '../../src/discovery/join.js'
import { silentLogger } from '../../src/log.js'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import { initCa, openCa, verifyCertificate } from '../../src/pki/index.js'

type Teardown = { teardown(fn: () => unknown): void }

async function tmp(t: Teardown): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'qe-join-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

interface ServerOpts {
  now?: () => number
  /** Wraps the real grant (delay it, fail it). */
  wrap?: (real: () => Promise<JoinGrant>) => Promise<JoinGrant>
  /** Replaces the server's reply (forge answers). */
  reply?: (b: Buffer, send: (b: Buffer) => void) => void
}

async function server(t: Teardown, opts: ServerOpts = {}) {
  const dir = await tmp(t)
  await initCa(join(dir, 'ca'), { network: 'homelab' })
  const ca = await openCa(join(dir, 'ca'))
  const store = new InviteStore(join(dir, 'state', 'invites.json'))
  await store.load()
  const inviterKey = publicKeyBase64(generateIdentity())
  const real = async (req: { key: string; name: string; groups: readonly string[] }): Promise<JoinGrant> => ({
    cert: await ca.sign({ key: req.key, name: req.name, groups: req.groups }),
    secret: (await ca.secret()).toString('base64'),
    network: { name: 'homelab', ca: ca.info.publicKey, overlay: ca.info.overlay },
    bootstrap: ['192.0.2.9:7444'],
    inviter: { name: 'home-server', key: inviterKey, endpoints: ['192.0.2.10:7443'] },
  })
  const grant = (req: { key: string; name: string; groups: readonly string[] }) => (opts.wrap ? opts.wrap(() => real(req)) : real(req))
  const js = new JoinServer({ store }, { log: silentLogger, grant, ...(opts.now ? { now: opts.now } : {}) })
  const sock: Socket = createSocket('udp4')
  sock.on('message', (m, r) =>
    js.handle(m, { address: r.address, port: r.port }, (b) => {
      const send = (x: Buffer) => sock.send(x, r.port, r.address)
      if (opts.reply) opts.reply(b, send)
      else send(b)
    }),
  )
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => sock.close())
  const port = sock.address().port
  const invite = async (ttlMs = 60_000, now?: number): Promise<InviteToken> => {
    const inv = await store.create({ name: 'pi', groups: ['homelab'], ttlMs, ...(now !== undefined ? { now } : {}) })
    return { network: 'homelab', id: inv.id, secret: inv.secret, expiresAt: inv.expiresAt, inviterKey, endpoints: [{ host: '127.0.0.1', port }] }
  }
  return { js, store, invite, port, dir, ca }
}

const fast = { timeoutMs: 3000, retryMs: 100, bind: '127.0.0.1' }

t.test('a token grants one certificate, to the first key; a retry gets the same; another key is refused', async (t) => {
  const { js, invite, dir, ca, store } = await server(t)
  const tok = await invite()
  const pi = generateIdentity()
  const g = await requestJoin(tok, pi.publicKey, fast)
  t.equal(g.cert.name, 'pi')
  t.equal(g.cert.key, publicKeyBase64(pi))
  t.same(g.cert.groups, ['homelab'])
  t.same(verifyCertificate(g.cert, { ca: ca.info.publicKey, network: 'homelab', now: Date.now() }), { ok: true }, 'signed by the CA')
  t.equal(g.network.ca, ca.info.publicKey)
  t.same(g.network.overlay, ca.info.overlay)
  t.equal(Buffer.from(g.secret, 'base64').toString('hex'), (await ca.secret()).toString('hex'), 'the network secret comes with it')
  t.same(g.bootstrap, ['192.0.2.9:7444'])
  t.equal(g.inviter.key, tok.inviterKey)
  const again = await requestJoin(tok, pi.publicKey, fast)
  t.equal(again.cert.serial, g.cert.serial, 'a retry of the same key gets the same certificate')
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, fast), { code: 'QE_INVITE_USED', message: /another device/ }, 'reused by another device')
  t.same(js.stats(), { granted: 1, unknown: 0, expired: 0, used: 1, malformed: 0, errors: 0 })
  t.equal(store.lookup(tok.id)?.usedBy, publicKeyBase64(pi), 'bound to the first key')
  t.equal((await stat(join(dir, 'state', 'invites.json'))).mode & 0o777, 0o600, 'the store holds secrets: 0600')
})

t.test('two keys at once: exactly one gets the certificate', async (t) => {
  const { js, invite } = await server(t, { wrap: async (real) => (await new Promise((r) => setTimeout(r, 300)), real()) })
  const tok = await invite()
  const a = generateIdentity()
  const b = generateIdentity()
  const results = await Promise.allSettled([requestJoin(tok, a.publicKey, fast), requestJoin(tok, b.publicKey, fast)])
  const won = results.filter((r) => r.status === 'fulfilled')
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
  t.equal(won.length, 1, 'one grant')
  t.equal(lost.length, 1)
  t.equal((lost[0]?.reason as { code?: string }).code, 'QE_INVITE_USED')
  t.equal(js.stats().granted, 1, 'the CA signed once, although the first key retried while it waited')
})

t.test('the inviter failing is a refusal the joiner hears at once, and the invite stays usable', async (t) => {
  let fail = true
  const { js, invite } = await server(t, { wrap: (real) => (fail ? Promise.reject(new Error('disk full')) : real()) })
  const tok = await invite()
  const pi = generateIdentity()
  const started = Date.now()
  await t.rejects(requestJoin(tok, pi.publicKey, { ...fast, timeoutMs: 5000 }), { code: 'QE_INVITE_REFUSED' })
  t.ok(Date.now() - started < 2000, 'not at the timeout')
  t.equal(js.stats().errors, 1)
  fail = false
  const g = await requestJoin(tok, pi.publicKey, fast)
  t.equal(g.cert.name, 'pi', 'a second try after the inviter recovered')
})

t.test('expired, forged and unknown tokens are refused with their own codes', async (t) => {
  let now = Date.now()
  const { js, invite } = await server(t, { now: () => now })
  const tok = await invite(1000, now)
  now += 5000
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, fast), { code: 'QE_INVITE_EXPIRED' })
  const forged = { ...(await invite(60_000, now)), secret: Buffer.alloc(16, 9) }
  await t.rejects(requestJoin(forged, generateIdentity().publicKey, { ...fast, timeoutMs: 600 }), { code: 'QE_INVITE_UNKNOWN' }, 'the right id with a wrong secret')
  const unknown = { ...forged, id: Buffer.alloc(8, 7) }
  await t.rejects(requestJoin(unknown, generateIdentity().publicKey, { ...fast, timeoutMs: 600 }), { code: 'QE_INVITE_UNKNOWN' }, 'an id the inviter never issued')
  t.equal(js.stats().expired, 1)
  t.ok(js.stats().unknown >= 2)
  t.equal(js.stats().granted, 0, 'nothing was granted')
})

t.test('answers that do not authenticate are ignored', async (t) => {
  // Every answer is tampered with: a flipped byte in a sealed grant, a refusal with a wrong MAC.
  const { js, invite } = await server(t, {
    reply: (b, send) => {
      const x = Buffer.from(b)
      x[x.length - 1] = (x[x.length - 1] as number) ^ 1
      send(x)
    },
  })
  const tok = await invite()
  // Long enough for the request to reach the inviter on a loaded machine (the grant is counted when it is sealed).
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, { ...fast, timeoutMs: 2000 }), { code: 'QE_INVITE_UNREACHABLE' }, 'a tampered grant is not taken, nor is it an error')
  t.equal(js.stats().granted, 1)
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, { ...fast, timeoutMs: 2000 }), { code: 'QE_INVITE_UNREACHABLE' }, 'nor a refusal with a wrong MAC')
})

t.test('a grant that does not check is refused', async (t) => {
  const other = await server(t)
  const tok = await other.invite()
  // The token names another inviter key than the one the grant carries.
  await t.rejects(requestJoin({ ...tok, inviterKey: publicKeyBase64(generateIdentity()) }, generateIdentity().publicKey, fast), { code: 'QE_INVITE_REFUSED', message: /another inviter/ })
  const tok2 = await other.invite()
  await t.rejects(requestJoin({ ...tok2, network: 'elsewhere' }, generateIdentity().publicKey, fast), { code: 'QE_INVITE_REFUSED', message: /network/ })
})

t.test('no inviter: unreachable, within the timeout', async (t) => {
  const { invite } = await server(t)
  const tok = { ...(await invite()), endpoints: [{ host: '127.0.0.1', port: 9 }, { host: '::1', port: 9 }] }
  const started = Date.now()
  await t.rejects(requestJoin(tok, generateIdentity().publicKey, { timeoutMs: 600, retryMs: 200 }), { code: 'QE_INVITE_UNREACHABLE', message: /127\.0\.0\.1:9, \[::1\]:9/ })
  const took = Date.now() - started
  t.ok(took >= 550 && took < 1500, `gave up after ${took} ms`)
})

t.test('malformed datagrams are counted and answered with nothing', async (t) => {
  const { js, port, invite } = await server(t)
  const s = createSocket('udp4')
  const answers: Buffer[] = []
  s.on('message', (m) => answers.push(m))
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => s.close())
  const tok = await invite()
  const good = encodeRequest(tok, generateIdentity().publicKey, Buffer.alloc(16))
  const wrongType = Buffer.from(good)
  wrongType[4] = 2
  for (const bad of [Buffer.from('QEJ1'), Buffer.concat([good, Buffer.from('x')]), good.subarray(0, good.length - 1), wrongType]) s.send(bad, port, '127.0.0.1')
  await new Promise((r) => setTimeout(r, 200))
  t.equal(js.stats().malformed, 4)
  t.equal(js.stats().granted, 0)
  t.same(answers, [], 'no answer to any of them')
})

t.test('a used invite stays used across a restart of the inviter', async (t) => {
  const { store, invite, dir } = await server(t)
  const tok = await invite()
  const pi = generateIdentity()
  await requestJoin(tok, pi.publicKey, fast)
  const reloaded = new InviteStore(join(dir, 'state', 'invites.json'))
  await reloaded.load()
  t.equal(reloaded.lookup(tok.id)?.usedBy, publicKeyBase64(pi))
  t.equal(reloaded.lookup(tok.id)?.response, store.lookup(tok.id)?.response, 'with the same answer for a retry')
})
