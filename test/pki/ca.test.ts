import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_OVERLAY_IPV4, defaultOverlayIpv6 } from '../../src/config/defaults.js'
import { deriveOverlayAddresses, generateIdentity, parsePublicKey, PublicKeyInvalidError, publicKeyBase64 } from '../../src/mesh/identity.js'
import {
  CaExistsError,
  CaInvalidError,
  CaMissingError,
  CertificateRequestError,
  DEFAULT_CERT_LIFETIME_MS,
  initCa,
  loadRevocationList,
  openCa,
  readCaInfo,
  revokedKeys,
  verifyCertificate,
  verifyRevocationList,
} from '../../src/pki/index.js'

const T0 = Date.UTC(2030, 0, 1)

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777
}

t.test('initCa lays out the directory with the right modes and contents', async (t) => {
  const dir = join(t.testdir(), 'ca')
  const info = await initCa(dir, { network: 'home', now: T0 })
  t.same(info.overlay, { ipv4: DEFAULT_OVERLAY_IPV4, ipv6: defaultOverlayIpv6('home') })
  t.equal(info.network, 'home')
  t.equal(info.dir, dir)
  t.same((await readdir(dir)).sort(), ['ca.json', 'ca.key', 'issued.jsonl', 'network.secret', 'revoked.json'])
  t.equal(await mode(dir), 0o700)
  t.equal(await mode(join(dir, 'ca.key')), 0o600)
  t.equal(await mode(join(dir, 'network.secret')), 0o600)
  t.equal(await mode(join(dir, 'ca.json')), 0o644)
  t.equal(await mode(join(dir, 'revoked.json')), 0o644)
  t.match(await readFile(join(dir, 'ca.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/)
  t.same(JSON.parse(await readFile(join(dir, 'ca.json'), 'utf8')), { v: 1, network: 'home', publicKey: info.publicKey, overlay: info.overlay, createdAt: T0 })
  t.same(parsePublicKey(info.publicKey).length, 32)
  const secret = await readFile(join(dir, 'network.secret'), 'utf8')
  t.match(secret, /^[A-Za-z0-9+/]{43}=\n$/, 'one line of base64')
  t.equal(await readFile(join(dir, 'issued.jsonl'), 'utf8'), '')
  const list = await loadRevocationList(join(dir, 'revoked.json'))
  t.ok(list)
  if (list) {
    t.equal(list.seq, 0)
    t.same(list.revoked, [])
    t.same(verifyRevocationList(list, { ca: info.publicKey, network: 'home' }), { ok: true })
  }
  t.same(await readCaInfo(dir), info)
  const ca = await openCa(dir)
  t.same(ca.info, info)
  t.same(await ca.secret(), Buffer.from(secret.trim(), 'base64'))
  t.equal((await ca.secret()).length, 32)
})

t.test('initCa refuses to replace a CA; an interrupted init (no key) is redone', async (t) => {
  const dir = t.testdir()
  const first = await initCa(dir, { network: 'home' })
  const before = await Promise.all(['ca.key', 'ca.json', 'network.secret'].map((f) => readFile(join(dir, f), 'utf8')))
  await t.rejects(initCa(dir, { network: 'home' }), CaExistsError)
  await t.rejects(initCa(dir, { network: 'other' }), { code: 'QE_CA_EXISTS' })
  const after = await Promise.all(['ca.key', 'ca.json', 'network.secret'].map((f) => readFile(join(dir, f), 'utf8')))
  t.same(after, before, 'nothing was touched')
  t.equal((await openCa(dir)).info.publicKey, first.publicKey)

  await rm(join(dir, 'ca.key'))
  const second = await initCa(dir, { network: 'home' })
  t.not(second.publicKey, first.publicKey)
  t.equal((await openCa(dir)).info.publicKey, second.publicKey)
})

t.test('initCa: custom overlay; bad names and ranges are refused before anything is written', async (t) => {
  const base = t.testdir()
  const info = await initCa(join(base, 'a'), { network: 'lab', overlay: { ipv4: '10.70.0.0/16', ipv6: 'fd70:70:70::/48' } })
  t.same(info.overlay, { ipv4: '10.70.0.0/16', ipv6: 'fd70:70:70::/48' })
  t.same(info.overlay.ipv6 === defaultOverlayIpv6('lab'), false)
  await t.rejects(initCa(join(base, 'b'), { network: 'Bad Name' }), { code: 'QE_CERT_REQUEST', message: /network/ })
  await t.rejects(initCa(join(base, 'c'), { network: 'x', overlay: { ipv4: 'fd00::/64' } }), { code: 'QE_CERT_REQUEST', message: /overlay\.ipv4/ })
  await t.rejects(initCa(join(base, 'd'), { network: 'x', overlay: { ipv4: '10.0.0.1/8' } }), { code: 'QE_CERT_REQUEST', message: /host bits/ })
  await t.rejects(initCa(join(base, 'e'), { network: 'x', overlay: { ipv4: '10.0.0.0/32' } }), { code: 'QE_OVERLAY_RANGE' })
  t.same((await readdir(base)).sort(), ['a'], 'no directory made for a refused init')
})

t.test('openCa errors: missing, no key, key mismatch, malformed ca.json', async (t) => {
  const base = t.testdir()
  await t.rejects(openCa(join(base, 'nope')), { name: 'CaMissingError', code: 'QE_CA_MISSING', message: /quicether ca init/ })
  const dir = join(base, 'ca')
  await initCa(dir, { network: 'home' })

  const key = await readFile(join(dir, 'ca.key'), 'utf8')
  await rm(join(dir, 'ca.key'))
  await t.rejects(openCa(dir), CaMissingError)
  t.ok(await readCaInfo(dir), 'ca.json alone is still readable')

  await writeFile(join(dir, 'ca.key'), generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  await t.rejects(openCa(dir), { code: 'QE_CA_INVALID', message: /does not match/ })
  await writeFile(join(dir, 'ca.key'), 'not a key')
  await t.rejects(openCa(dir), CaInvalidError)
  await writeFile(join(dir, 'ca.key'), key)

  const json = await readFile(join(dir, 'ca.json'), 'utf8')
  await writeFile(join(dir, 'ca.json'), '{')
  await t.rejects(openCa(dir), { code: 'QE_CA_INVALID', message: /not JSON/ })
  await writeFile(join(dir, 'ca.json'), json.replace('"v": 1', '"v": 2'))
  await t.rejects(openCa(dir), CaInvalidError)
  await writeFile(join(dir, 'ca.json'), json.replace(/"ipv4": "[^"]+"/, '"ipv4": "100.88.0.1/16"'))
  await t.rejects(openCa(dir), { code: 'QE_CA_INVALID', message: /overlay\.ipv4/ })
  await writeFile(join(dir, 'ca.json'), json)
  t.ok(await openCa(dir))
})

t.test('sign: addresses derived like deriveOverlayAddresses, defaults, issued.jsonl', async (t) => {
  const dir = t.testdir()
  const info = await initCa(dir, { network: 'home', overlay: { ipv4: '10.77.0.0/16', ipv6: 'fd51:7e7e:1::/48' } })
  const ca = await openCa(dir)
  const id = generateIdentity()
  const cert = await ca.sign({ key: ` ${publicKeyBase64(id)}\n`, name: 'laptop', now: T0 })
  t.same({ ipv4: cert.ipv4, ipv6: cert.ipv6 }, deriveOverlayAddresses(id.publicKey, '10.77.0.0/16', 'fd51:7e7e:1::/48'))
  t.equal(cert.key, publicKeyBase64(id), 'the key is written canonically')
  t.equal(cert.network, 'home')
  t.equal(cert.issuer, info.publicKey)
  t.same(cert.groups, [])
  t.same(cert.subnets, [])
  t.equal(cert.notBefore, T0)
  t.equal(cert.notAfter, T0 + DEFAULT_CERT_LIFETIME_MS)
  t.equal(DEFAULT_CERT_LIFETIME_MS, 365 * 86_400_000)
  t.same(verifyCertificate(cert, { ca: info.publicKey, network: 'home', now: T0 }), { ok: true })

  const custom = await ca.sign({
    key: publicKeyBase64(generateIdentity()),
    name: 'gw',
    groups: ['lan', 'admin', 'lan'],
    ipv4: '10.77.3.4',
    ipv6: 'fd51:7e7e:1:0:0::9',
    subnets: ['192.168.1.0/24', '10.1.0.0/16'],
    lifetimeMs: 3_600_000,
    now: T0,
  })
  t.same(custom.groups, ['admin', 'lan'])
  t.equal(custom.ipv6, 'fd51:7e7e:1::9', 'canonical text')
  t.same(custom.subnets, ['10.1.0.0/16', '192.168.1.0/24'])
  t.equal(custom.notAfter, T0 + 3_600_000)
  const none = await ca.sign({ key: publicKeyBase64(generateIdentity()), name: 'v6only', ipv4: null, now: T0 })
  t.equal(none.ipv4, null)
  t.type(none.ipv6, 'string')

  const lines = (await readFile(join(dir, 'issued.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as unknown)
  t.same(lines, [cert, custom, none].map((c) => ({ serial: c.serial, key: c.key, name: c.name, notAfter: c.notAfter, issuedAt: T0 })))
})

t.test('sign refuses bad requests with errors naming the field', async (t) => {
  const dir = t.testdir()
  await initCa(dir, { network: 'home', overlay: { ipv4: '10.77.0.0/16', ipv6: 'fd51:7e7e:1::/48' } })
  const ca = await openCa(dir)
  const key = publicKeyBase64(generateIdentity())
  await t.rejects(ca.sign({ key: 'nope', name: 'x' }), PublicKeyInvalidError)
  await t.rejects(ca.sign({ key, name: 'No_Caps' }), { code: 'QE_CERT_REQUEST', message: /^name:/ })
  await t.rejects(ca.sign({ key, name: 'x', groups: ['ok', 'not ok'] }), { code: 'QE_CERT_REQUEST', message: /^groups:.*not ok/ })
  await t.rejects(ca.sign({ key, name: 'x', subnets: ['10.0.0.0'] }), { code: 'QE_CERT_REQUEST', message: /^subnets:/ })
  await t.rejects(ca.sign({ key, name: 'x', subnets: ['10.0.0.1/8'] }), { code: 'QE_CERT_REQUEST', message: /^subnets:.*host bits/ })
  await t.rejects(ca.sign({ key, name: 'x', ipv4: '10.78.0.1' }), { code: 'QE_CERT_REQUEST', message: /^ipv4:.*outside the overlay range 10\.77\.0\.0\/16/ })
  await t.rejects(ca.sign({ key, name: 'x', ipv4: 'fd51:7e7e:1::1' }), { code: 'QE_CERT_REQUEST', message: /^ipv4:/ })
  await t.rejects(ca.sign({ key, name: 'x', ipv4: '10.77.0.0' }), { code: 'QE_CERT_REQUEST', message: /network address/ })
  await t.rejects(ca.sign({ key, name: 'x', ipv4: '10.77.255.255' }), { code: 'QE_CERT_REQUEST', message: /broadcast address/ })
  await t.rejects(ca.sign({ key, name: 'x', ipv6: 'fd51:7e7f::1' }), { code: 'QE_CERT_REQUEST', message: /^ipv6:.*outside/ })
  await t.rejects(ca.sign({ key, name: 'x', lifetimeMs: 0 }), CertificateRequestError)
  await t.rejects(ca.sign({ key, name: 'x', lifetimeMs: Number.NaN }), CertificateRequestError)
  t.equal(await readFile(join(dir, 'issued.jsonl'), 'utf8'), '', 'nothing recorded for refused requests')
  await ca.revoke([{ key }])
  await t.rejects(ca.sign({ key, name: 'x' }), { code: 'QE_CERT_REQUEST', message: /revoked/ })
})

t.test('revoke: seq + 1, re-signed, atomic; idempotent; serialized within one Ca', async (t) => {
  const dir = t.testdir()
  const info = await initCa(dir, { network: 'home' })
  const ca = await openCa(dir)
  const a = publicKeyBase64(generateIdentity())
  const b = publicKeyBase64(generateIdentity())
  const c = publicKeyBase64(generateIdentity())

  const one = await ca.revoke([{ key: a, name: 'laptop' }], T0)
  t.equal(one.seq, 1)
  t.same(one.revoked, [{ key: a, name: 'laptop', at: T0 }])
  t.equal(one.issuedAt, T0)
  t.same(verifyRevocationList(one, { ca: info.publicKey, network: 'home' }), { ok: true })
  t.same(await loadRevocationList(join(dir, 'revoked.json')), one, 'written to revoked.json')
  t.same(await ca.revocations(), one)

  const fileBefore = await readFile(join(dir, 'revoked.json'), 'utf8')
  const again = await ca.revoke([{ key: a, name: 'renamed' }], T0 + 1000)
  t.same(again, one, 'revoking again changes nothing')
  t.equal(await readFile(join(dir, 'revoked.json'), 'utf8'), fileBefore, 'the file is not rewritten')

  const two = await ca.revoke([{ key: b }, { key: a }, { key: b }], T0 + 2000)
  t.equal(two.seq, 2)
  t.same(revokedKeys(two), new Set([a, b]))
  t.same(two.revoked.find((e) => e.key === a), { key: a, name: 'laptop', at: T0 }, 'an existing entry is kept as it was')
  t.same(two.revoked.find((e) => e.key === b), { key: b, name: null, at: T0 + 2000 })

  const [x, y] = await Promise.all([ca.revoke([{ key: c }], T0 + 3000), ca.revoke([{ key: publicKeyBase64(generateIdentity()) }], T0 + 3000)])
  t.same([x.seq, y.seq], [3, 4], 'concurrent revokes each get their own seq')
  t.equal((await ca.revocations()).revoked.length, 4)
  t.same(await readdir(dir).then((f) => f.filter((n) => n.endsWith('.tmp'))), [], 'no temporary files left')

  await t.rejects(ca.revoke([{ key: 'bad' }]), PublicKeyInvalidError)
  await t.rejects(ca.revoke([{ key: c, name: 'Bad Name' }]), { code: 'QE_CERT_REQUEST' })
})

t.test('revocations() refuses a list that is missing or does not verify', async (t) => {
  const dir = t.testdir()
  await initCa(dir, { network: 'home' })
  const ca = await openCa(dir)
  const text = await readFile(join(dir, 'revoked.json'), 'utf8')
  await writeFile(join(dir, 'revoked.json'), text.replace('"seq": 0', '"seq": 9'))
  await t.rejects(ca.revocations(), { code: 'QE_CA_INVALID', message: /QE_CRL_SIGNATURE/ })
  await t.rejects(ca.revoke([{ key: publicKeyBase64(generateIdentity()) }]), CaInvalidError, 'and so does revoke')
  await rm(join(dir, 'revoked.json'))
  await t.rejects(ca.revocations(), { code: 'QE_CA_INVALID', message: /un-revoke/ })
  await writeFile(join(dir, 'network.secret'), 'short\n')
  await t.rejects(ca.secret(), CaInvalidError)
})
