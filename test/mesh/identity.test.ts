import t from 'tap'
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ipaddr from 'ipaddr.js'
import {
  IdentityInvalidError,
  IdentityMissingError,
  IdentityWriteError,
  OverlayRangeError,
  PublicKeyInvalidError,
  deriveOverlayAddresses,
  generateIdentity,
  loadIdentity,
  parsePublicKey,
  publicKeyBase64,
  saveIdentity,
} from '../../src/mesh/identity.js'

t.test('generateIdentity makes an Ed25519 key whose raw public key matches the private key', async (t) => {
  const id = generateIdentity()
  t.equal(id.publicKey.length, 32)
  t.match(id.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/)
  const priv = createPrivateKey(id.privateKeyPem)
  t.equal(priv.asymmetricKeyType, 'ed25519')
  // A signature made with the private key verifies with a key rebuilt from the raw public bytes.
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id.publicKey.toString('base64url') }, format: 'jwk' })
  const msg = Buffer.from('quicether')
  t.ok(verify(null, msg, pub, sign(null, msg, priv)))
  t.not(publicKeyBase64(generateIdentity()), publicKeyBase64(id), 'two identities differ')
})

t.test('saveIdentity writes mode 0600 in a 0700 directory; loadIdentity reads it back', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'state', 'nested', 'identity.key')
  const id = generateIdentity()
  await saveIdentity(path, id)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.equal((await stat(join(dir, 'state', 'nested'))).mode & 0o777, 0o700)
  t.equal(await readFile(path, 'utf8'), id.privateKeyPem)
  const warnings: string[] = []
  const back = await loadIdentity(path, { onWarning: (m) => warnings.push(m) })
  t.same(back.publicKey, id.publicKey)
  t.same(warnings, [], 'no warning for a 0600 key')
})

t.test('saveIdentity refuses to overwrite unless asked', async (t) => {
  const path = join(t.testdir(), 'identity.key')
  const first = generateIdentity()
  await saveIdentity(path, first)
  await t.rejects(saveIdentity(path, generateIdentity()), IdentityWriteError)
  t.equal(await readFile(path, 'utf8'), first.privateKeyPem, 'the first key is untouched')
  const second = generateIdentity()
  await saveIdentity(path, second, { overwrite: true })
  t.same((await loadIdentity(path)).publicKey, second.publicKey)
})

t.test('loadIdentity warns when the key is readable by group or others', async (t) => {
  const path = join(t.testdir(), 'identity.key')
  await saveIdentity(path, generateIdentity())
  await chmod(path, 0o644)
  const warnings: string[] = []
  await loadIdentity(path, { onWarning: (m) => warnings.push(m) })
  t.equal(warnings.length, 1)
  t.match(warnings[0], /0644/)
  t.match(warnings[0], /chmod 600/)
})

t.test('loadIdentity errors: missing, not a key, not Ed25519, a directory', async (t) => {
  const dir = t.testdir({ 'garbage.key': 'hello\n', 'sub': {} })
  await t.rejects(loadIdentity(join(dir, 'nope.key')), { name: 'IdentityMissingError', code: 'QE_IDENTITY_MISSING' })
  await t.rejects(loadIdentity(join(dir, 'garbage.key'), { onWarning: () => {} }), IdentityInvalidError)
  await t.rejects(loadIdentity(join(dir, 'sub')), IdentityInvalidError)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const rsaPath = join(dir, 'rsa.key')
  await writeFile(rsaPath, rsa, { mode: 0o600 })
  await t.rejects(loadIdentity(rsaPath), { code: 'QE_IDENTITY_INVALID', message: /rsa key, expected Ed25519/ })
  t.ok(new IdentityMissingError() instanceof Error)
})

t.test('public keys: base64 of 32 raw bytes, round trip, strict parsing', async (t) => {
  const id = generateIdentity()
  const b64 = publicKeyBase64(id)
  t.equal(b64.length, 44)
  t.equal(b64, id.publicKey.toString('base64'))
  t.same(parsePublicKey(b64), id.publicKey)
  t.same(parsePublicKey(` ${b64}\n`), id.publicKey, 'surrounding whitespace is ignored')
  for (const bad of ['', 'abc', b64.slice(0, 43), b64 + '=', b64.replace(/=$/, 'A'), id.publicKey.toString('base64url'), randomBytes(33).toString('base64')]) {
    t.throws(() => parsePublicKey(bad), PublicKeyInvalidError, `rejects ${JSON.stringify(bad)}`)
  }
  // The last character of a 32-byte base64 carries 2 stray bits; only the canonical spelling is a key.
  const canonical = Buffer.alloc(32).toString('base64') // 'AAAA...A='
  t.throws(() => parsePublicKey(canonical.slice(0, 42) + 'B='), PublicKeyInvalidError)
})

function inRange(addr: string, cidr: string): boolean {
  const a = ipaddr.parse(addr)
  const [net, len] = ipaddr.parseCIDR(cidr)
  return a.kind() === net.kind() && a.match(net, len)
}

t.test('deriveOverlayAddresses: inside the ranges, deterministic, different keys differ', async (t) => {
  const v4 = '10.77.0.0/16'
  const v6 = 'fd51:7e7e:1::/64'
  const seen4 = new Set<string>()
  const seen6 = new Set<string>()
  for (let i = 0; i < 200; i++) {
    const pk = generateIdentity().publicKey
    const a = deriveOverlayAddresses(pk, v4, v6)
    t.ok(inRange(a.ipv4, v4), `${a.ipv4} in ${v4}`)
    t.ok(inRange(a.ipv6, v6), `${a.ipv6} in ${v6}`)
    t.not(a.ipv4, '10.77.0.0')
    t.not(a.ipv4, '10.77.255.255')
    t.not(a.ipv6, 'fd51:7e7e:1::')
    t.same(deriveOverlayAddresses(Buffer.from(pk), v4, v6), a, 'same key, same addresses')
    seen4.add(a.ipv4)
    seen6.add(a.ipv6)
  }
  // 200 keys into 65,534 hosts: a few birthday collisions are possible, all-equal is a bug.
  t.ok(seen4.size > 190, `distinct IPv4 addresses: ${seen4.size}`)
  t.equal(seen6.size, 200, 'distinct IPv6 addresses')
})

t.test('deriveOverlayAddresses is a function of SHA-256 of the key (pinned vector)', async (t) => {
  // sha256(32 zero bytes) = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925.
  // In a /24 there are 254 hosts: host = 1 + (digest mod 254); in a /120, 255: host = 1 + (digest mod 255).
  const digest = BigInt('0x66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925')
  const h4 = Number(1n + (digest % 254n))
  const h6 = Number(1n + (digest % 255n))
  const a = deriveOverlayAddresses(Buffer.alloc(32), '192.0.2.0/24', '2001:db8::/120')
  t.equal(a.ipv4, `192.0.2.${h4}`)
  t.equal(a.ipv6, `2001:db8::${h6.toString(16)}`)
})

t.test('deriveOverlayAddresses never picks network/broadcast in tiny ranges', async (t) => {
  for (let i = 0; i < 100; i++) {
    const pk = randomBytes(32)
    // /30 has exactly two usable hosts; /127 has one non-zero host.
    const a = deriveOverlayAddresses(pk, '10.9.9.4/30', 'fd00::/127')
    t.ok(a.ipv4 === '10.9.9.5' || a.ipv4 === '10.9.9.6', a.ipv4)
    t.equal(a.ipv6, 'fd00::1')
  }
  // Host bits in the CIDR are ignored: the network is what counts.
  const pk = randomBytes(32)
  t.same(deriveOverlayAddresses(pk, '10.9.9.7/30', 'fd00::1/127'), deriveOverlayAddresses(pk, '10.9.9.4/30', 'fd00::/127'))
})

t.test('deriveOverlayAddresses rejects bad ranges and bad keys', async (t) => {
  const pk = randomBytes(32)
  t.throws(() => deriveOverlayAddresses(pk, '10.0.0.0/31', 'fd00::/64'), OverlayRangeError)
  t.throws(() => deriveOverlayAddresses(pk, '10.0.0.0/32', 'fd00::/64'), OverlayRangeError)
  t.throws(() => deriveOverlayAddresses(pk, '10.0.0.0/8', 'fd00::1/128'), OverlayRangeError)
  t.throws(() => deriveOverlayAddresses(pk, 'fd00::/64', 'fd00::/64'), OverlayRangeError, 'IPv6 given as the IPv4 range')
  t.throws(() => deriveOverlayAddresses(pk, '10.0.0.0/8', '10.0.0.0/8'), OverlayRangeError, 'IPv4 given as the IPv6 range')
  t.throws(() => deriveOverlayAddresses(pk, '10.0.0/8', 'fd00::/64'), OverlayRangeError)
  t.throws(() => deriveOverlayAddresses(pk, 'nonsense', 'fd00::/64'), OverlayRangeError)
  t.throws(() => deriveOverlayAddresses(randomBytes(31), '10.0.0.0/8', 'fd00::/64'), PublicKeyInvalidError)
})
