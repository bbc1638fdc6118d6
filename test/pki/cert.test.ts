import t from 'tap'
import fc from 'fast-check'
import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import {
  CLOCK_SKEW_MS,
  MAX_CERTIFICATE_BYTES,
  CertificateInvalidError,
  CertificateMissingError,
  CertificateRequestError,
  certificateNeedsRenewal,
  certificateSummary,
  encodeCertificate,
  loadCertificate,
  parseCertificate,
  publicKeyOf,
  renewCertificate,
  saveCertificate,
  signCertificate,
  verifyCertificate,
  type Certificate,
  type CertificateRequest,
} from '../../src/pki/index.js'

const DAY = 86_400_000
const T0 = Date.UTC(2030, 0, 1)

function caKey(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey
}

function request(over: Partial<CertificateRequest> = {}): CertificateRequest {
  return {
    network: 'home',
    key: publicKeyBase64(generateIdentity()),
    name: 'laptop',
    groups: ['admin', 'dev'],
    ipv4: '100.88.1.2',
    ipv6: 'fd00:1::5',
    subnets: ['10.1.0.0/24', '192.168.7.0/24'],
    notBefore: T0,
    notAfter: T0 + 365 * DAY,
    ...over,
  }
}

function issue(ca: KeyObject, over: Partial<CertificateRequest> = {}): Certificate {
  return signCertificate(request(over), ca)
}

function opts(ca: KeyObject, over: Partial<{ ca: string; network: string; now: number; revoked: ReadonlySet<string> }> = {}) {
  return { ca: publicKeyOf(ca), network: 'home', now: T0 + DAY, ...over }
}

/** A different, valid value for each field (what an attacker would substitute). */
function tampered(field: keyof Certificate, c: Certificate): unknown {
  switch (field) {
    case 'v': return 2
    case 'network': return 'work'
    case 'serial': return (c.serial[0] === 'a' ? 'b' : 'a') + c.serial.slice(1)
    case 'key': return publicKeyBase64(generateIdentity())
    case 'name': return 'phone'
    case 'groups': return [...c.groups, 'root']
    case 'ipv4': return '100.88.1.3'
    case 'ipv6': return null
    case 'subnets': return ['0.0.0.0/0']
    case 'notBefore': return c.notBefore - 1
    case 'notAfter': return c.notAfter + 365 * DAY
    case 'issuer': return publicKeyBase64(generateIdentity())
    case 'sig': return Buffer.from(c.sig, 'base64').fill(7, 0, 1).toString('base64')
  }
}

t.test('sign, encode, parse: a round trip that verifies, in text and compact forms', async (t) => {
  const ca = caKey()
  const cert = issue(ca, { groups: ['dev', 'admin', 'dev'], subnets: ['192.168.7.0/24', '10.1.0.0/24'] })
  t.equal(cert.v, 1)
  t.match(cert.serial, /^[0-9a-f]{32}$/)
  t.equal(cert.issuer, publicKeyOf(ca))
  t.same(cert.groups, ['admin', 'dev'], 'groups sorted and unique')
  t.same(cert.subnets, ['10.1.0.0/24', '192.168.7.0/24'])
  t.same(verifyCertificate(cert, opts(ca)), { ok: true })

  const text = encodeCertificate(cert)
  t.ok(text.endsWith('}\n'))
  t.same(Object.keys(JSON.parse(text) as object), ['v', 'network', 'serial', 'key', 'name', 'groups', 'ipv4', 'ipv6', 'subnets', 'notBefore', 'notAfter', 'issuer', 'sig'])
  const back = parseCertificate(text)
  t.ok(back.ok)
  if (back.ok) {
    t.same(back.cert, cert)
    t.equal(encodeCertificate(back.cert), text, 'encode ∘ parse is the identity')
    t.ok(Object.isFrozen(back.cert) && Object.isFrozen(back.cert.groups))
    t.same(verifyCertificate(back.cert, opts(ca)), { ok: true })
  }
  const compact = JSON.stringify(cert)
  const fromWire = parseCertificate(JSON.parse(compact) as unknown)
  t.ok(fromWire.ok && verifyCertificate(fromWire.cert, opts(ca)).ok, 'the compact wire form parses as a value and verifies')
  t.ok(compact.length < 700, `compact form is small (${compact.length} bytes)`)
})

t.test('the signed bytes are the domain string and the body in the documented key order', async (t) => {
  const ca = caKey()
  const c = issue(ca)
  const body = { v: c.v, network: c.network, serial: c.serial, key: c.key, name: c.name, groups: c.groups, ipv4: c.ipv4, ipv6: c.ipv6, subnets: c.subnets, notBefore: c.notBefore, notAfter: c.notAfter, issuer: c.issuer }
  const bytes = Buffer.from('quicether-cert-v1\n' + JSON.stringify(body), 'utf8')
  t.ok(verify(null, bytes, createPublicKey(ca), Buffer.from(c.sig, 'base64')))
  // Key order in the text is irrelevant: verification rebuilds the body.
  const reversed = Object.fromEntries(Object.entries(c).reverse())
  const p = parseCertificate(JSON.stringify(reversed))
  t.ok(p.ok && verifyCertificate(p.cert, opts(ca)).ok)
})

t.test('tampering with any field breaks the signature', async (t) => {
  const ca = caKey()
  const cert = issue(ca)
  for (const field of Object.keys(cert) as (keyof Certificate)[]) {
    const forged = { ...cert, [field]: tampered(field, cert) }
    const p = parseCertificate(JSON.stringify(forged))
    if (field === 'v') {
      t.notOk(p.ok, 'v: 2 does not even parse')
      continue
    }
    t.ok(p.ok, `${field}: the forgery is well-formed (${p.ok ? '' : p.reason})`)
    if (!p.ok) continue
    // Line up the earlier checks with the forgery so the signature is what decides.
    const o = opts(ca, { network: p.cert.network, ca: p.cert.issuer, now: T0 + DAY })
    const r = verifyCertificate(p.cert, o)
    t.equal(r.ok ? 'ok' : r.code, 'QE_CERT_SIGNATURE', `${field} tampered`)
  }
})

t.test('wrong CA, wrong network; issuer is checked first', async (t) => {
  const ca = caKey()
  const other = caKey()
  const cert = issue(ca)
  t.match(verifyCertificate(cert, opts(other)), { ok: false, code: 'QE_CERT_ISSUER' })
  t.match(verifyCertificate(cert, opts(ca, { network: 'work' })), { ok: false, code: 'QE_CERT_NETWORK', reason: /'home', not 'work'/ })
  t.match(verifyCertificate(cert, opts(other, { network: 'work' })), { ok: false, code: 'QE_CERT_ISSUER' })
  // A certificate signed by another key but claiming this CA as issuer.
  const liar = { ...issue(other), issuer: publicKeyOf(ca) }
  t.match(verifyCertificate(liar, opts(ca)), { ok: false, code: 'QE_CERT_SIGNATURE' })
})

t.test('validity: 5 minutes of slack before notBefore, none after notAfter', async (t) => {
  const ca = caKey()
  const cert = issue(ca)
  const at = (now: number) => {
    const r = verifyCertificate(cert, opts(ca, { now }))
    return r.ok ? 'ok' : r.code
  }
  t.equal(CLOCK_SKEW_MS, 300_000)
  t.equal(at(cert.notBefore), 'ok')
  t.equal(at(cert.notBefore - CLOCK_SKEW_MS), 'ok', 'exactly 5 minutes early')
  t.equal(at(cert.notBefore - CLOCK_SKEW_MS - 1), 'QE_CERT_NOT_YET_VALID')
  t.equal(at(cert.notAfter), 'ok', 'valid through its notAfter millisecond')
  t.equal(at(cert.notAfter + 1), 'QE_CERT_EXPIRED')
  // A bad signature is reported before the time.
  const forged = { ...cert, name: 'other' }
  t.match(verifyCertificate(forged, opts(ca, { now: cert.notAfter + DAY })), { code: 'QE_CERT_SIGNATURE' })
})

t.test('revocation: by node key, checked last', async (t) => {
  const ca = caKey()
  const cert = issue(ca)
  t.same(verifyCertificate(cert, opts(ca, { revoked: new Set([publicKeyBase64(generateIdentity())]) })), { ok: true })
  t.match(verifyCertificate(cert, opts(ca, { revoked: new Set([cert.key]) })), { ok: false, code: 'QE_CERT_REVOKED' })
  t.match(verifyCertificate(cert, opts(ca, { revoked: new Set([cert.key]), now: cert.notAfter + 1 })), { code: 'QE_CERT_EXPIRED' })
})

t.test('parse refuses junk, oversize and non-canonical input without throwing', async (t) => {
  const ca = caKey()
  const good = issue(ca)
  const bad: Record<string, unknown> = {
    'empty text': '',
    'not JSON': '{"v":1',
    'a number': 42,
    'null': null,
    'an array': [good],
    'an extra field': { ...good, extra: 1 },
    'a missing field': Object.fromEntries(Object.entries(good).filter(([k]) => k !== 'ipv6')),
    'v 2': { ...good, v: 2 },
    'uppercase serial': { ...good, serial: good.serial.toUpperCase().replace(/^[0-9]/, 'A') },
    'short serial': { ...good, serial: good.serial.slice(2) },
    'non-canonical key (stray bits)': { ...good, key: Buffer.alloc(32).toString('base64').slice(0, 42) + 'B=' },
    'base64url key': { ...good, key: Buffer.alloc(32, 0xff).toString('base64url') + '=' },
    'non-canonical issuer': { ...good, issuer: Buffer.alloc(32).toString('base64').slice(0, 42) + 'C=' },
    'short sig': { ...good, sig: good.sig.slice(4) },
    'uppercase name': { ...good, name: 'Laptop' },
    'name with a dot': { ...good, name: 'a.b' },
    'bad group': { ...good, groups: ['a b'] },
    'unsorted groups': { ...good, groups: ['dev', 'admin'] },
    'duplicate groups': { ...good, groups: ['dev', 'dev'] },
    'non-canonical ipv6': { ...good, ipv6: 'fd00:1:0::5' },
    'ipv6 in ipv4': { ...good, ipv4: 'fd00::1' },
    'ipv4 in ipv6': { ...good, ipv6: '100.88.1.2' },
    'address with a prefix': { ...good, ipv4: '100.88.1.2/32' },
    'host bits in a subnet': { ...good, subnets: ['10.1.0.1/24'] },
    'non-canonical subnet': { ...good, subnets: ['fd00:0::/64'] },
    'unsorted subnets': { ...good, subnets: ['192.168.7.0/24', '10.1.0.0/24'] },
    'duplicate subnets': { ...good, subnets: ['10.1.0.0/24', '10.1.0.0/24'] },
    'fractional time': { ...good, notBefore: good.notBefore + 0.5 },
    'time as text': { ...good, notAfter: String(good.notAfter) },
    'notAfter before notBefore': { ...good, notAfter: good.notBefore - 1 },
    'too many groups to fit 4 KiB': { ...good, groups: Array.from({ length: 60 }, (_, i) => `group-${String(i).padStart(2, '0')}-${'x'.repeat(50)}`) },
  }
  for (const [what, input] of Object.entries(bad)) {
    let r: ReturnType<typeof parseCertificate> | undefined
    t.doesNotThrow(() => (r = parseCertificate(input)), what)
    t.equal(r?.ok, false, what)
    if (r && !r.ok) t.type(r.reason, 'string')
  }
  const padded = encodeCertificate(good).replace('\n', '\n' + ' '.repeat(MAX_CERTIFICATE_BYTES))
  t.match(parseCertificate(padded), { ok: false, reason: /at most 4096 bytes/ }, 'oversize text is refused before parsing')
  const hostile = Object.defineProperty({ ...good }, 'name', { enumerable: true, get() { throw new Error('boom') } })
  t.equal(parseCertificate(hostile).ok, false, 'a throwing getter is a parse failure, not a crash')
})

t.test('property: parse never throws, and only well-formed input parses', async (t) => {
  const ca = caKey()
  const good = issue(ca)
  fc.assert(fc.property(fc.string({ maxLength: 600 }), (s) => parseCertificate(s).ok === false))
  fc.assert(fc.property(fc.json(), (s) => parseCertificate(s).ok === false))
  // One field replaced by anything at all: never a throw; and if it parses, it no longer verifies unless nothing changed.
  const fields = Object.keys(good) as (keyof Certificate)[]
  fc.assert(
    fc.property(fc.constantFrom(...fields), fc.anything(), (field, value) => {
      const r = parseCertificate({ ...good, [field]: value })
      if (!r.ok) return true
      const same = JSON.stringify(r.cert) === JSON.stringify(good)
      return same || !verifyCertificate(r.cert, opts(ca, { ca: r.cert.issuer, network: r.cert.network })).ok
    }),
  )
  t.pass('properties hold')
})

t.test('signCertificate: serials, and refusal of bodies that would not parse', async (t) => {
  const ca = caKey()
  const a = issue(ca)
  const b = issue(ca)
  t.not(a.serial, b.serial, 'random serials differ')
  t.equal(issue(ca, { serial: 'ab'.repeat(16) }).serial, 'ab'.repeat(16), 'a given serial is kept')
  t.throws(() => issue(ca, { ipv6: 'FD00::1' }), CertificateRequestError, 'non-canonical address')
  t.throws(() => issue(ca, { subnets: ['10.0.0.1/8'] }), { code: 'QE_CERT_REQUEST', message: /host bits/ })
  t.throws(() => issue(ca, { notAfter: T0 }), CertificateRequestError, 'empty lifetime')
  t.throws(() => issue(ca, { serial: 'xyz' }), CertificateRequestError)
  t.throws(() => signCertificate(request(), createPublicKey(ca)), CertificateRequestError, 'a public key cannot sign')
  t.throws(() => signCertificate(request(), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), { code: 'QE_CERT_REQUEST', message: /ec key, expected Ed25519/ })
  const v4only = issue(ca, { ipv6: null, subnets: [] })
  t.equal(v4only.ipv6, null)
  t.ok(verifyCertificate(v4only, opts(ca)).ok)
})

t.test('certificateNeedsRenewal: true once less than a third of the lifetime remains', async (t) => {
  const ca = caKey()
  const cert = issue(ca, { notBefore: 0, notAfter: 300 })
  t.equal(certificateNeedsRenewal(cert, 0), false)
  t.equal(certificateNeedsRenewal(cert, 199), false)
  t.equal(certificateNeedsRenewal(cert, 200), false, 'exactly a third left')
  t.equal(certificateNeedsRenewal(cert, 201), true)
  t.equal(certificateNeedsRenewal(cert, 400), true, 'expired')
  const year = issue(ca)
  t.equal(certificateNeedsRenewal(year, T0 + 243 * DAY), false)
  t.equal(certificateNeedsRenewal(year, T0 + 244 * DAY), true)
})

t.test('renewCertificate keeps the identity fields, changes serial and validity', async (t) => {
  const ca = caKey()
  const old = issue(ca, { notBefore: T0, notAfter: T0 + 30 * DAY })
  const now = T0 + 25 * DAY
  const fresh = renewCertificate(old, ca, { now })
  for (const f of ['network', 'key', 'name', 'groups', 'ipv4', 'ipv6', 'subnets', 'issuer'] as const) t.same(fresh[f], old[f], `${f} kept`)
  t.not(fresh.serial, old.serial)
  t.equal(fresh.notBefore, now)
  t.equal(fresh.notAfter, now + 30 * DAY, 'the old lifetime by default')
  t.ok(verifyCertificate(fresh, opts(ca, { now: now + 29 * DAY })).ok)
  t.equal(renewCertificate(old, ca, { now, lifetimeMs: DAY }).notAfter, now + DAY)
  t.throws(() => renewCertificate(old, ca, { now, lifetimeMs: 0 }), CertificateRequestError)
})

t.test('save and load: atomic, 0644, parent made 0700; clear errors', async (t) => {
  const dir = t.testdir({ 'junk.crt': 'hello\n', sub: {} })
  const ca = caKey()
  const cert = issue(ca)
  const path = join(dir, 'state', 'node.crt')
  await saveCertificate(path, cert)
  t.equal((await stat(path)).mode & 0o777, 0o644)
  t.equal((await stat(join(dir, 'state'))).mode & 0o777, 0o700)
  t.equal(await readFile(path, 'utf8'), encodeCertificate(cert))
  t.same(await loadCertificate(path), cert)
  const renewed = renewCertificate(cert, ca, { now: T0 + DAY })
  await saveCertificate(path, renewed)
  t.same(await loadCertificate(path), renewed, 'replaced in place')
  t.same(await readdir(join(dir, 'state')), ['node.crt'], 'no temporary files left behind')

  await t.rejects(loadCertificate(join(dir, 'missing.crt')), { name: 'CertificateMissingError', code: 'QE_CERT_MISSING', message: /quicether ca sign/ })
  await t.rejects(loadCertificate(join(dir, 'junk.crt')), CertificateInvalidError)
  await t.rejects(loadCertificate(join(dir, 'sub')), { code: 'QE_CERT_INVALID', message: /not a regular file/ })
  await writeFile(join(dir, 'big.crt'), 'x'.repeat(MAX_CERTIFICATE_BYTES + 1))
  await t.rejects(loadCertificate(join(dir, 'big.crt')), { code: 'QE_CERT_INVALID', message: /too large/ })
  await mkdir(join(dir, 'ro'), { mode: 0o500 })
  if (process.getuid?.() !== 0) await t.rejects(saveCertificate(join(dir, 'ro', 'x.crt'), cert), { code: 'QE_PKI_WRITE' })
  t.ok(new CertificateMissingError() instanceof Error)
})

t.test('certificateSummary: one line with name, short key, groups, addresses, expiry', async (t) => {
  const ca = caKey()
  const cert = issue(ca)
  const s = certificateSummary(cert, T0)
  t.notMatch(s, /\n/)
  t.match(s, /^laptop /)
  t.match(s, cert.key.slice(0, 8))
  t.notMatch(s, cert.key, 'the key is shortened')
  t.match(s, 'admin,dev')
  t.match(s, '100.88.1.2')
  t.match(s, 'fd00:1::5')
  t.match(s, 'expires in 365 days')
  t.match(certificateSummary(cert, cert.notAfter + 2 * DAY), 'expired 2 days ago')
  t.match(certificateSummary(cert, cert.notAfter - 5 * 3_600_000), 'expires in 5 hours')
  t.match(certificateSummary(issue(ca, { groups: [], ipv4: null, ipv6: null }), T0), /no groups; no overlay address/)
})
