import t from 'tap'
import fc from 'fast-check'
import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import {
  MAX_REVOCATION_LIST_BYTES,
  RevocationListInvalidError,
  encodeRevocationList,
  loadRevocationList,
  parseRevocationList,
  publicKeyOf,
  revokedKeys,
  saveRevocationList,
  signRevocationList,
  verifyRevocationList,
  type RevocationList,
} from '../../src/pki/index.js'

const T0 = Date.UTC(2030, 0, 1)

function caKey(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey
}

function key(): string {
  return publicKeyBase64(generateIdentity())
}

function list(ca: KeyObject, n = 3, seq = 4): RevocationList {
  const revoked = Array.from({ length: n }, (_, i) => ({ key: key(), name: i === 0 ? null : `node-${i}`, at: T0 + i }))
  return signRevocationList({ network: 'home', seq, issuedAt: T0 + 10, revoked }, ca)
}

t.test('sign, encode, parse: a round trip that verifies; entries sorted by key', async (t) => {
  const ca = caKey()
  const l = list(ca, 5)
  t.equal(l.v, 1)
  t.equal(l.issuer, publicKeyOf(ca))
  const keys = l.revoked.map((e) => e.key)
  t.same(keys, [...keys].sort(), 'sorted by key')
  t.same(verifyRevocationList(l, { ca: publicKeyOf(ca), network: 'home' }), { ok: true })
  const text = encodeRevocationList(l)
  t.same(Object.keys(JSON.parse(text) as object), ['v', 'network', 'issuer', 'seq', 'issuedAt', 'revoked', 'sig'])
  const back = parseRevocationList(text)
  t.ok(back.ok)
  if (back.ok) {
    t.same(back.list, l)
    t.equal(encodeRevocationList(back.list), text)
    t.ok(Object.isFrozen(back.list))
  }
  const wire = parseRevocationList(JSON.parse(JSON.stringify(l)) as unknown)
  t.ok(wire.ok && verifyRevocationList(wire.list, { ca: publicKeyOf(ca), network: 'home' }).ok)
  t.same(revokedKeys(l), new Set(keys))
  t.not(revokedKeys(l), revokedKeys(l), 'a new set each call')
  const empty = signRevocationList({ network: 'home', seq: 0, issuedAt: T0, revoked: [] }, ca)
  t.same(revokedKeys(empty), new Set())
})

t.test('the signed bytes are the domain string and the body in the documented order', async (t) => {
  const ca = caKey()
  const l = list(ca, 2)
  const body = { v: 1, network: l.network, issuer: l.issuer, seq: l.seq, issuedAt: l.issuedAt, revoked: l.revoked.map((e) => ({ key: e.key, name: e.name, at: e.at })) }
  t.ok(verify(null, Buffer.from('quicether-revocations-v1\n' + JSON.stringify(body)), createPublicKey(ca), Buffer.from(l.sig, 'base64')))
  // Entry keys in another order in the text still verify (the body is rebuilt).
  const shuffled = { ...l, revoked: l.revoked.map((e) => ({ at: e.at, name: e.name, key: e.key })) }
  const p = parseRevocationList(JSON.stringify(shuffled))
  t.ok(p.ok && verifyRevocationList(p.list, { ca: l.issuer, network: 'home' }).ok)
})

t.test('tampering breaks the signature; wrong CA and network are named', async (t) => {
  const ca = caKey()
  const l = list(ca)
  const ok = { ca: publicKeyOf(ca), network: 'home' }
  const forgeries: Record<string, unknown> = {
    seq: { ...l, seq: l.seq + 1 },
    issuedAt: { ...l, issuedAt: l.issuedAt + 1 },
    'an entry dropped': { ...l, revoked: l.revoked.slice(1) },
    'an entry renamed': { ...l, revoked: l.revoked.map((e, i) => (i === 1 ? { ...e, name: 'other' } : e)) },
    'an entry re-dated': { ...l, revoked: l.revoked.map((e, i) => (i === 0 ? { ...e, at: e.at + 1 } : e)) },
    // Flip a byte (setting it to 1 left it unchanged when it was already 1: 1 run in 256 failed).
    sig: { ...l, sig: ((b) => (b.writeUInt8(b.readUInt8(10) ^ 0xff, 10), b))(Buffer.from(l.sig, 'base64')).toString('base64') },
  }
  for (const [what, f] of Object.entries(forgeries)) {
    const p = parseRevocationList(f)
    t.ok(p.ok, `${what}: well-formed`)
    if (p.ok) t.match(verifyRevocationList(p.list, ok), { ok: false, code: 'QE_CRL_SIGNATURE' }, what)
  }
  const renamedNet = parseRevocationList({ ...l, network: 'work' })
  t.ok(renamedNet.ok && verifyRevocationList(renamedNet.list, { ...ok, network: 'work' }).ok === false)
  t.match(verifyRevocationList(l, { ...ok, network: 'work' }), { ok: false, code: 'QE_CRL_NETWORK' })
  t.match(verifyRevocationList(l, { ...ok, ca: publicKeyOf(caKey()) }), { ok: false, code: 'QE_CRL_ISSUER' })
  t.match(verifyRevocationList(l, { ca: publicKeyOf(caKey()), network: 'work' }), { code: 'QE_CRL_ISSUER' }, 'issuer first')
})

t.test('parse refuses junk, oversize and non-canonical lists without throwing', async (t) => {
  const ca = caKey()
  const l = list(ca, 2)
  const [a, b] = l.revoked as [RevocationList['revoked'][0], RevocationList['revoked'][0]]
  const bad: Record<string, unknown> = {
    'not JSON': '[',
    'a string in JSON': '"x"',
    'an extra field': { ...l, x: 1 },
    'an extra entry field': { ...l, revoked: [{ ...a, why: 'x' }, b] },
    'missing seq': Object.fromEntries(Object.entries(l).filter(([k]) => k !== 'seq')),
    'negative seq': { ...l, seq: -1 },
    'fractional seq': { ...l, seq: 1.5 },
    'unsorted entries': { ...l, revoked: [b, a] },
    'duplicate entries': { ...l, revoked: [a, a] },
    'non-canonical entry key': { ...l, revoked: [{ ...a, key: Buffer.alloc(32).toString('base64').slice(0, 42) + 'D=' }] },
    'bad entry name': { ...l, revoked: [{ ...a, name: 'Not Valid' }] },
    'missing entry name': { ...l, revoked: [{ key: a.key, at: a.at }] },
    'v 0': { ...l, v: 0 },
  }
  for (const [what, input] of Object.entries(bad)) {
    let r: ReturnType<typeof parseRevocationList> | undefined
    t.doesNotThrow(() => (r = parseRevocationList(input)), what)
    t.equal(r?.ok, false, what)
  }
  t.match(parseRevocationList(' '.repeat(MAX_REVOCATION_LIST_BYTES + 1)), { ok: false, reason: /at most/ })
  fc.assert(fc.property(fc.json(), (s) => parseRevocationList(s).ok === false))
  fc.assert(fc.property(fc.constantFrom(...Object.keys(l)), fc.anything(), (field, value) => {
    const r = parseRevocationList({ ...l, [field]: value })
    return !r.ok || JSON.stringify(r.list) === JSON.stringify(l) || !verifyRevocationList(r.list, { ca: r.list.issuer, network: r.list.network }).ok
  }))
})

t.test('signRevocationList refuses two entries for one key', async (t) => {
  const ca = caKey()
  const k = key()
  t.throws(
    () => signRevocationList({ network: 'home', seq: 1, issuedAt: T0, revoked: [{ key: k, name: null, at: T0 }, { key: k, name: 'x', at: T0 }] }, ca),
    RevocationListInvalidError,
  )
  t.throws(() => signRevocationList({ network: 'Home', seq: 1, issuedAt: T0, revoked: [] }, ca), { code: 'QE_CRL_INVALID' })
})

t.test('save and load: atomic, 0644; a missing file is null', async (t) => {
  const dir = t.testdir({ 'junk.json': '{}' })
  const ca = caKey()
  const path = join(dir, 'state', 'revoked.json')
  t.equal(await loadRevocationList(path), null)
  t.equal(await loadRevocationList(join(dir, 'no', 'such', 'dir', 'revoked.json')), null)
  const l = list(ca)
  await saveRevocationList(path, l)
  t.equal((await stat(path)).mode & 0o777, 0o644)
  t.equal((await stat(join(dir, 'state'))).mode & 0o777, 0o700)
  t.equal(await readFile(path, 'utf8'), encodeRevocationList(l))
  t.same(await loadRevocationList(path), l)
  t.same(await readdir(join(dir, 'state')), ['revoked.json'])
  await t.rejects(loadRevocationList(join(dir, 'junk.json')), { name: 'RevocationListInvalidError', code: 'QE_CRL_INVALID' })
  await writeFile(join(dir, 'big.json'), ' '.repeat(MAX_REVOCATION_LIST_BYTES + 1))
  await t.rejects(loadRevocationList(join(dir, 'big.json')), { code: 'QE_CRL_INVALID', message: /too large/ })
  await t.rejects(loadRevocationList(dir), { code: 'QE_CRL_INVALID' }, 'a directory')
})
