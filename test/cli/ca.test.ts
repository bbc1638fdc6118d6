import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseLifetime } from '../../src/cli/ca.js'
import { defaultOverlayIpv6 } from '../../src/config/defaults.js'
import { deriveOverlayAddresses, generateIdentity, publicKeyBase64, saveIdentity } from '../../src/mesh/identity.js'
import { encodeCertificate, loadCertificate, loadRevocationList, openCa, parseCertificate, signCertificate, verifyCertificate } from '../../src/pki/index.js'
import { lines, run } from './run.js'

const DAY = 86_400_000

async function initDir(dir: string, network = 'home'): Promise<{ ca: string; key: string }> {
  const ca = join(dir, 'ca')
  const r = await run(['ca', 'init', '--network', network, '--dir', ca])
  if (r.code !== 0) throw new Error(r.stderr)
  const key = /CA public key: (\S+)/.exec(r.stdout)?.[1]
  if (!key) throw new Error(`no key in ${r.stdout}`)
  return { ca, key }
}

t.test('ca init: a 0700 directory, the public key, and what to do next', async (t) => {
  const dir = join(t.testdir(), 'ca')
  const r = await run(['ca', 'init', '--network', 'home', '--dir', dir])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '')
  t.equal(statSync(dir).mode & 0o777, 0o700)
  t.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600)
  const info = JSON.parse(readFileSync(join(dir, 'ca.json'), 'utf8')) as { publicKey: string; overlay: { ipv6: string } }
  t.match(r.stdout, `CA public key: ${info.publicKey}`)
  t.match(r.stdout, `network: { name: home, ca: ${info.publicKey} }`)
  t.match(r.stdout, join(dir, 'network.secret'))
  t.match(r.stdout, /quicether invite/)
  t.match(r.stdout, /ca\.key offline/)
  t.equal(info.overlay.ipv6, defaultOverlayIpv6('home'))

  const again = await run(['ca', 'init', '--network', 'home', '--dir', dir])
  t.equal(again.code, 1)
  t.equal(lines(again.stderr).length, 1)
  t.match(again.stderr, /^quicether: .*ca\.key already exists.*\(QE_CA_EXISTS\)\n$/)
  t.equal(JSON.parse(readFileSync(join(dir, 'ca.json'), 'utf8')).publicKey, info.publicKey, 'untouched')
})

t.test('ca init: custom overlay goes into the suggested config; bad flags are usage errors', async (t) => {
  const base = t.testdir()
  const r = await run(['ca', 'init', '--network', 'lab', '--dir', join(base, 'ca'), '--overlay-ipv4', '10.70.0.0/16', '--overlay-ipv6', 'fd70:70:70::/48'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, "overlay: { ipv4: 10.70.0.0/16, ipv6: 'fd70:70:70::/48' }")
  for (const args of [
    ['--network', 'Bad'],
    ['--network', 'x', '--overlay-ipv4', 'fd00::/64'],
    ['--network', 'x', '--overlay-ipv6', '10.0.0.0/8'],
    ['--network', 'x', '--overlay-ipv4', '10.0.0.1/8'],
    [],
  ]) {
    const bad = await run(['ca', 'init', '--dir', join(base, 'bad'), ...args])
    t.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`)
    t.match(bad.stderr, /\(QE_USAGE\)/)
  }
  t.throws(() => statSync(join(base, 'bad')), 'nothing created')
})

t.test('ca sign: to stdout with a summary on stderr, or to --out; addresses derived from the key', async (t) => {
  const base = t.testdir()
  const { ca, key: caKey } = await initDir(base)
  const id = generateIdentity()
  const r = await run(['ca', 'sign', '--dir', ca, '--key', publicKeyBase64(id), '--name', 'laptop', '--groups', 'dev,admin', '--subnets', '10.1.0.0/24', '--expires', '30d'])
  t.equal(r.code, 0, r.stderr)
  const parsed = parseCertificate(r.stdout)
  t.ok(parsed.ok, 'stdout is exactly a certificate')
  if (!parsed.ok) return
  const cert = parsed.cert
  t.equal(r.stdout, encodeCertificate(cert))
  t.same(cert.groups, ['admin', 'dev'])
  t.same(cert.subnets, ['10.1.0.0/24'])
  t.same({ ipv4: cert.ipv4, ipv6: cert.ipv6 }, deriveOverlayAddresses(id.publicKey, '100.88.0.0/16', defaultOverlayIpv6('home')))
  t.equal(cert.notAfter - cert.notBefore, 30 * DAY)
  t.same(verifyCertificate(cert, { ca: caKey, network: 'home', now: cert.notBefore }), { ok: true })
  t.equal(lines(r.stderr).length, 1)
  t.match(r.stderr, /^signed laptop \(key .{8}…\); groups admin,dev; .*expires in 30 days\n$/)

  // --identity reads the node's key file; --out writes the file.
  const idPath = join(base, 'node', 'identity.key')
  await saveIdentity(idPath, id)
  const out = join(base, 'node', 'node.crt')
  const w = await run(['ca', 'sign', '--dir', ca, '--identity', idPath, '--name', 'laptop', '--ipv4', '100.88.9.9', '--ipv6', 'none', '--out', out])
  t.equal(w.code, 0, w.stderr)
  t.equal(w.stdout, '')
  t.match(w.stderr, `→ ${out}`)
  t.equal(statSync(out).mode & 0o777, 0o644)
  const saved = await loadCertificate(out)
  t.equal(saved.key, publicKeyBase64(id))
  t.equal(saved.ipv4, '100.88.9.9')
  t.equal(saved.ipv6, null)
  t.equal(saved.notAfter - saved.notBefore, 365 * DAY, 'default lifetime')
  t.equal(readFileSync(join(ca, 'issued.jsonl'), 'utf8').trim().split('\n').length, 2)
})

t.test('ca sign: bad input is refused with one line', async (t) => {
  const base = t.testdir()
  const { ca } = await initDir(base)
  const key = publicKeyBase64(generateIdentity())
  const cases: Array<[string[], number, RegExp]> = [
    [['--name', 'x'], 2, /exactly one of --key and --identity.*QE_USAGE/],
    [['--key', key, '--identity', 'f', '--name', 'x'], 2, /exactly one/],
    [['--key', key], 2, /--name/],
    [['--key', key, '--name', 'X'], 2, /not a valid node name/],
    [['--key', key, '--name', 'x', '--expires', 'soon'], 2, /--expires 'soon'/],
    [['--key', key, '--name', 'x', '--expires', '0d'], 2, /positive/],
    [['--key', 'AAAA', '--name', 'x'], 1, /QE_PUBLIC_KEY_INVALID/],
    [['--key', key, '--name', 'x', '--ipv4', '10.0.0.1'], 1, /ipv4: .*outside the overlay range.*QE_CERT_REQUEST/],
    [['--key', key, '--name', 'x', '--groups', 'a b'], 1, /groups: .*QE_CERT_REQUEST/],
    [['--key', key, '--name', 'x', '--subnets', '10.0.0.1/8'], 1, /subnets: .*QE_CERT_REQUEST/],
    [['--identity', join(base, 'missing.key'), '--name', 'x'], 1, /QE_IDENTITY_MISSING/],
  ]
  for (const [args, code, message] of cases) {
    const r = await run(['ca', 'sign', '--dir', ca, ...args])
    t.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
    t.match(lines(r.stderr)[0], /^quicether: .*\(QE_[A-Z_]+\)$/, 'the error is one line')
    t.match(r.stderr, message)
    t.equal(r.stdout, '')
  }
  const noCa = await run(['ca', 'sign', '--dir', join(base, 'nope'), '--key', key, '--name', 'x'])
  t.equal(noCa.code, 1)
  t.match(noCa.stderr, /QE_CA_MISSING/)
  t.equal(readFileSync(join(ca, 'issued.jsonl'), 'utf8'), '')
})

t.test('ca revoke: bumps seq, says how it spreads; again changes nothing', async (t) => {
  const base = t.testdir()
  const { ca, key: caKey } = await initDir(base)
  const key = publicKeyBase64(generateIdentity())
  const r = await run(['ca', 'revoke', '--dir', ca, '--key', key, '--name', 'laptop'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /is now seq 1 \(1 key\)/)
  t.match(r.stdout, /spreads it/)
  const list = await loadRevocationList(join(ca, 'revoked.json'))
  t.same(list?.revoked.map((e) => [e.key, e.name]), [[key, 'laptop']])
  t.equal(list?.issuer, caKey)
  const again = await run(['ca', 'revoke', '--dir', ca, '--key', key])
  t.equal(again.code, 0)
  t.match(again.stdout, /already revoked.*seq 1/)
  t.equal((await loadRevocationList(join(ca, 'revoked.json')))?.seq, 1)
  const bad = await run(['ca', 'revoke', '--dir', ca, '--key', 'nope'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /QE_PUBLIC_KEY_INVALID/)
})

t.test('ca show: fields, and with a CA whether it verifies (exit 1 when not)', async (t) => {
  const base = t.testdir()
  const { ca, key: caKey } = await initDir(base)
  const id = generateIdentity()
  const crt = join(base, 'node.crt')
  t.equal((await run(['ca', 'sign', '--dir', ca, '--key', publicKeyBase64(id), '--name', 'laptop', '--groups', 'dev', '--out', crt])).code, 0)

  const plain = await run(['ca', 'show', crt])
  t.equal(plain.code, 0, plain.stderr)
  t.match(plain.stdout, /^certificate .*node\.crt\n/)
  t.match(plain.stdout, /name +laptop/)
  t.match(plain.stdout, `key         ${publicKeyBase64(id)}`)
  t.match(plain.stdout, /groups +dev/)
  t.match(plain.stdout, /expires in 365 days/)
  t.match(plain.stdout, /not verified/)

  const good = await run(['ca', 'show', crt, '--dir', ca])
  t.equal(good.code, 0, good.stderr)
  t.match(good.stdout, `verifies: signed by CA ${caKey} for network home`)
  const byKey = await run(['ca', 'show', crt, '--ca', caKey, '--network', 'home'])
  t.equal(byKey.code, 0)
  t.match(byKey.stdout, /verifies/)
  const wrongNet = await run(['ca', 'show', crt, '--ca', caKey, '--network', 'work'])
  t.equal(wrongNet.code, 1)
  t.match(wrongNet.stdout, /does not verify: .*\(QE_CERT_NETWORK\)/)
  const stdin = await run(['ca', 'show', '-', '--dir', ca], readFileSync(crt))
  t.equal(stdin.code, 0, stdin.stderr)
  t.match(stdin.stdout, /^certificate stdin/)

  // An expired certificate from the same CA.
  const caObj = await openCa(ca)
  const old = signCertificate({ network: 'home', key: publicKeyBase64(id), name: 'old', groups: [], ipv4: null, ipv6: null, subnets: [], notBefore: 0, notAfter: DAY }, caObj.privateKey)
  const oldPath = join(base, 'old.crt')
  await writeFile(oldPath, encodeCertificate(old))
  const expired = await run(['ca', 'show', oldPath, '--dir', ca])
  t.equal(expired.code, 1)
  t.match(expired.stdout, /does not verify: expired .*\(QE_CERT_EXPIRED\)/)

  // Revoked through the CA's own list.
  t.equal((await run(['ca', 'revoke', '--dir', ca, '--key', publicKeyBase64(id)])).code, 0)
  const revoked = await run(['ca', 'show', crt, '--dir', ca])
  t.equal(revoked.code, 1)
  t.match(revoked.stdout, /\(QE_CERT_REVOKED\)/)

  // The revocation list itself.
  const list = await run(['ca', 'show', join(ca, 'revoked.json'), '--dir', ca])
  t.equal(list.code, 0, list.stderr)
  t.match(list.stdout, /^revocation list /)
  t.match(list.stdout, /seq +1/)
  t.match(list.stdout, publicKeyBase64(id))
  t.match(list.stdout, /verifies/)
  const otherCa = publicKeyBase64(Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string, 'base64url'))
  const listWrong = await run(['ca', 'show', join(ca, 'revoked.json'), '--ca', otherCa, '--network', 'home'])
  t.equal(listWrong.code, 1)
  t.match(listWrong.stdout, /\(QE_CRL_ISSUER\)/)
})

t.test('ca show: unreadable and malformed input, flag conflicts', async (t) => {
  const base = t.testdir({ 'junk.crt': 'hello', 'obj.crt': '{"v":1}', 'list.json': '{"revoked":[]}' })
  const { ca, key } = await initDir(base)
  const missing = await run(['ca', 'show', join(base, 'nope.crt')])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /does not exist \(QE_CERT_MISSING\)/)
  t.match((await run(['ca', 'show', join(base, 'junk.crt')])).stderr, /not JSON.*\(QE_CERT_INVALID\)/)
  t.match((await run(['ca', 'show', join(base, 'obj.crt')])).stderr, /\(QE_CERT_INVALID\)/)
  t.match((await run(['ca', 'show', join(base, 'list.json')])).stderr, /\(QE_CRL_INVALID\)/)
  const both = await run(['ca', 'show', join(base, 'junk.crt'), '--dir', ca, '--ca', key, '--network', 'home'])
  t.equal(both.code, 2)
  t.match(both.stderr, /either --dir or --ca/)
  const half = await run(['ca', 'show', join(base, 'junk.crt'), '--ca', key])
  t.equal(half.code, 2)
  t.match(half.stderr, /go together/)
})

t.test('parseLifetime: days, durations, both', async (t) => {
  t.equal(parseLifetime('365d'), 365 * DAY)
  t.equal(parseLifetime('12h'), 12 * 3_600_000)
  t.equal(parseLifetime('1d12h'), 36 * 3_600_000)
  t.equal(parseLifetime('90m'), 90 * 60_000)
  for (const bad of ['', 'd', '1y', '-1d', '0s', 'abc']) t.throws(() => parseLifetime(bad), { code: 'QE_USAGE' }, bad)
})

t.test('ca appears in the help', async (t) => {
  const r = await run(['ca', '--help'])
  t.equal(r.code, 0)
  for (const sub of ['init', 'sign', 'revoke', 'show']) t.match(r.stdout, new RegExp(`\\n  ${sub}\\b`))
})
