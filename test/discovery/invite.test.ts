/**
 * Invite tokens (round trip, size, junk, typos, versions, whitespace) and the
 * inviter's store of pending invites (persisted 0600, single use recorded,
 * expiry pruned, serialized writes).
 */
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decodeToken, encodeToken, EXPIRED_KEPT_MS, InviteStore, tokenQr, type InviteToken } from '../../src/discovery/invite.js'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'qe-invite-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

const base: InviteToken = {
  network: 'homelab-network-2026',
  id: Buffer.alloc(8, 1),
  secret: Buffer.alloc(16, 2),
  expiresAt: 1_800_000_000_000,
  inviterKey: publicKeyBase64(generateIdentity()),
  endpoints: [{ host: '203.0.113.50', port: 7444 }],
}

/** A token with its body replaced (and a correct checksum), to test what the checksum does not catch. */
function forge(body: Buffer): string {
  return 'qe1' + Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 4)]).toString('base64url')
}

t.test('a token round-trips and stays short', async (t) => {
  const s = encodeToken(base)
  t.ok(s.startsWith('qe1'))
  t.ok(s.length < 160, `${s.length} characters for a 20-character network and one IPv4 endpoint`)
  t.same(decodeToken(s), base)
  const v6: InviteToken = { ...base, network: 'a', endpoints: [{ host: '2001:db8::7', port: 7444 }, { host: '192.0.2.1', port: 1 }, { host: '::ffff:192.0.2.3', port: 65535 }] }
  t.same(decodeToken(encodeToken(v6)).endpoints, [{ host: '2001:db8::7', port: 7444 }, { host: '192.0.2.1', port: 1 }, { host: '::ffff:c000:203', port: 65535 }], 'IPv6 (canonical text) and IPv4')
  t.equal(decodeToken(encodeToken({ ...base, expiresAt: 1_800_000_000_001 })).expiresAt, 1_800_000_001_000, 'expiry in whole seconds, rounded up')
  const wrapped = s.slice(0, 40) + '\n  ' + s.slice(40, 80) + ' ' + s.slice(80) + '\n'
  t.same(decodeToken(wrapped), base, 'whitespace from a wrapped terminal line is ignored')
})

t.test('a token refuses what it cannot carry', async (t) => {
  t.throws(() => encodeToken({ ...base, endpoints: [{ host: 'gw.example.com', port: 7444 }] }), { code: 'QE_INVITE_TOKEN' }, 'no names')
  t.throws(() => encodeToken({ ...base, endpoints: [] }), { code: 'QE_INVITE_TOKEN' }, 'nowhere to send')
  t.throws(() => encodeToken({ ...base, network: 'Not A Name' }), { code: 'QE_INVITE_TOKEN' })
  t.throws(() => encodeToken({ ...base, inviterKey: 'abc' }), { code: 'QE_INVITE_TOKEN' })
  const many = Array.from({ length: 9 }, (_, i) => ({ host: `192.0.2.${i + 1}`, port: 7444 }))
  t.equal(decodeToken(encodeToken({ ...base, endpoints: many })).endpoints.length, 6, 'endpoints past six are left off')
})

t.test('junk, typos, truncation and other versions are refused with QE_INVITE_TOKEN and a reason', async (t) => {
  const s = encodeToken(base)
  const typo = s.slice(0, 20) + (s[20] === 'A' ? 'B' : 'A') + s.slice(21)
  t.throws(() => decodeToken(typo), { code: 'QE_INVITE_TOKEN', message: /a character is wrong or missing/ }, 'one wrong character')
  t.throws(() => decodeToken(s.slice(0, -1)), { code: 'QE_INVITE_TOKEN' }, 'the last character missing')
  t.throws(() => decodeToken(s.slice(0, 30)), { code: 'QE_INVITE_TOKEN', message: /cut short/ })
  t.throws(() => decodeToken('hello'), { code: 'QE_INVITE_TOKEN', message: /starts with 'qe1'/ })
  t.throws(() => decodeToken(''), { code: 'QE_INVITE_TOKEN' })
  t.throws(() => decodeToken(s.slice(0, 50) + '!' + s.slice(50)), { code: 'QE_INVITE_TOKEN', message: /characters a token never has/ })
  t.throws(() => decodeToken('qe2' + s.slice(3)), { code: 'QE_INVITE_TOKEN', message: /version 2.*update quicether/ })
  const body = Buffer.from(s.slice(3), 'base64url').subarray(0, -4)
  const v9 = Buffer.from(body)
  v9[0] = 9
  t.throws(() => decodeToken(forge(v9)), { code: 'QE_INVITE_TOKEN', message: /version 9/ }, 'a future version inside a qe1 token')
  t.throws(() => decodeToken(forge(Buffer.concat([body, Buffer.from([0])]))), { code: 'QE_INVITE_TOKEN', message: /bytes after its end/ })
  t.throws(() => decodeToken(forge(body.subarray(0, body.length - 3))), { code: 'QE_INVITE_TOKEN', message: /malformed/ }, 'an endpoint cut off')
})

t.test('the QR code is terminal text', async (t) => {
  const q = await tokenQr(encodeToken(base))
  t.ok(q.split('\n').length > 10, 'several lines')
  t.match(q, /[▀▄█]/)
})

t.test('the store: 0600, single use recorded, survives a reload', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'state', 'invites.json')
  const store = new InviteStore(path)
  t.equal(await store.load(), null, 'no file: an empty store')
  const now = 1_800_000_000_000
  const inv = await store.create({ name: 'pi', groups: ['homelab'], ttlMs: 3_600_000, now })
  t.equal(inv.id.length, 8)
  t.equal(inv.secret.length, 16)
  t.equal(inv.expiresAt, now + 3_600_000)
  t.equal((await stat(path)).mode & 0o777, 0o600, 'the file holds secrets: 0600')
  t.equal((await stat(join(dir, 'state'))).mode & 0o777, 0o700, 'a directory it creates is 0700')
  const got = store.lookup(inv.id)
  t.equal(got?.name, 'pi')
  t.equal(got?.usedBy, null)
  t.equal(Buffer.from(got?.secret ?? '', 'base64').toString('hex'), inv.secret.toString('hex'))
  t.equal(store.lookup(Buffer.alloc(8)), undefined)

  t.equal(await store.markUsed(inv.id, 'KEY-A', '{"grant":1}'), true)
  t.equal(await store.markUsed(Buffer.alloc(8), 'KEY-A', '{}'), false, 'an unknown id')
  const again = new InviteStore(path)
  t.equal(await again.load(now), null)
  t.same(again.lookup(inv.id), { ...got, usedBy: 'KEY-A', response: '{"grant":1}' }, 'a used invite stays used, with its answer, across a restart')
  t.equal((await stat(path)).mode & 0o777, 0o600, 'still 0600 after a rewrite')
})

t.test('the store drops invites an hour past expiry, on load and on create', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'invites.json')
  const store = new InviteStore(path)
  await store.load()
  const now = 1_800_000_000_000
  const old = await store.create({ name: 'old', groups: [], ttlMs: 1000, now })
  const fresh = await store.create({ name: 'fresh', groups: [], ttlMs: 10 * 3_600_000, now })
  const later = now + 1000 + EXPIRED_KEPT_MS + 1
  const reloaded = new InviteStore(path)
  await reloaded.load(now + 2000)
  t.ok(reloaded.lookup(old.id), 'just expired: kept, so a late retry hears "expired"')
  await reloaded.load(later)
  t.equal(reloaded.lookup(old.id), undefined, 'long expired: dropped on load')
  t.ok(reloaded.lookup(fresh.id))
  await store.create({ name: 'third', groups: [], ttlMs: 1000, now: later })
  t.equal(store.lookup(old.id), undefined, 'dropped on create')
  const onDisk = JSON.parse(await readFile(path, 'utf8')) as { invites: { name: string }[] }
  t.same(onDisk.invites.map((i) => i.name).sort(), ['fresh', 'third'])
  await t.rejects(store.create({ name: 'x', groups: [], ttlMs: 0 }), RangeError)
})

t.test('concurrent changes are written one after another, none lost', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'invites.json')
  const store = new InviteStore(path)
  await store.load()
  const made = await Promise.all(Array.from({ length: 20 }, (_, i) => store.create({ name: `n${i}`, groups: [], ttlMs: 60_000 })))
  await Promise.all(made.slice(0, 10).map((m, i) => store.markUsed(m.id, `K${i}`, '{}')))
  const again = new InviteStore(path)
  await again.load()
  t.equal(again.list().length, 20)
  t.equal(again.list().filter((i) => i.usedBy !== null).length, 10)
})

t.test('a corrupt store file is reported and read as empty', async (t) => {
  const dir = await tmp(t)
  const path = join(dir, 'invites.json')
  await writeFile(path, '{ not json')
  const store = new InviteStore(path)
  t.match(await store.load(), /not JSON/)
  t.same(store.list(), [])
  await writeFile(path, JSON.stringify({ invites: [{ id: 'zz' }] }))
  t.match(await store.load(), /not an invite/)
})
