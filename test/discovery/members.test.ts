/**
 * Records and the member store: a record is used only once its item
 * signature, its seal, its certificate and the key match all hold; every
 * bad input is refused with its reason and counted, and changes nothing.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import t from 'tap'
import { signItem, type SignedItem } from '../../src/discovery/bep44.js'
import { MemberStore } from '../../src/discovery/members.js'
import { networkKeys, openRecord, parseEndpointText, sealRecord, MAX_VALUE_BYTES, type NetworkKeys } from '../../src/discovery/record.js'
import { publicKeyOf, signCertificate, type Certificate } from '../../src/pki/index.js'

const NOW = Date.UTC(2026, 11, 4)
const DAY = 86_400_000

function keyPair(): { priv: KeyObject; pub: string } {
  const { privateKey } = generateKeyPairSync('ed25519')
  return { priv: privateKey, pub: publicKeyOf(privateKey) }
}

const ca = keyPair()
const otherCa = keyPair()
const secret = randomBytes(32)
const keys: NetworkKeys = networkKeys(secret, 'homelab', ca.pub)

function cert(node: { pub: string }, name: string, opts: { ca?: KeyObject; network?: string; notBefore?: number; notAfter?: number } = {}): Certificate {
  return signCertificate(
    { network: opts.network ?? 'homelab', key: node.pub, name, groups: ['homelab'], ipv4: '100.88.0.5', ipv6: null, subnets: [], notBefore: opts.notBefore ?? NOW - DAY, notAfter: opts.notAfter ?? NOW + 30 * DAY },
    opts.ca ?? ca.priv,
  )
}

function record(node: { priv: KeyObject; pub: string }, seq: number, c = cert(node, 'pi'), k: NetworkKeys = keys): SignedItem {
  return sealRecord({ cert: c, endpoints: [{ host: '192.0.2.5', port: 7443 }, { host: '2001:db8::5', port: 7443 }], bootstrap: null }, k, node.priv, seq)
}

const none: ReadonlySet<string> = new Set()

t.test('a record opens to its certificate and endpoints', async (t) => {
  const pi = keyPair()
  const r = openRecord(record(pi, 1), keys, { now: NOW, revoked: none })
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(r.key, pi.pub)
  t.equal(r.record.cert.name, 'pi')
  t.same(r.record.endpoints, [{ host: '192.0.2.5', port: 7443 }, { host: '2001:db8::5', port: 7443 }])
})

t.test('every bad record is refused with its reason', async (t) => {
  const pi = keyPair()
  const good = record(pi, 1)
  const flip = (b: Buffer, i: number) => Buffer.from(b.map((x, j) => (j === i ? x ^ 1 : x)))
  const cases: [string, SignedItem, string][] = [
    ['a bad signature', { ...good, sig: flip(good.sig, 3) }, 'bad-signature'],
    ['a value changed after signing', { ...good, v: flip(good.v, 20) }, 'bad-signature'],
    ['another network (its salt)', record(pi, 1, cert(pi, 'pi'), networkKeys(randomBytes(32), 'homelab', ca.pub)), 'other-network'],
    ['another network re-signed under our salt', signItem(pi.priv, keys.salt, 1, record(pi, 1, cert(pi, 'pi'), networkKeys(randomBytes(32), 'homelab', ca.pub)).v), 'other-network'],
    ['a certificate from another CA', record(pi, 1, cert(pi, 'pi', { ca: otherCa.priv })), 'cert-invalid'],
    ['a certificate of another network name', record(pi, 1, cert(pi, 'pi', { network: 'office' })), 'cert-invalid'],
    ['an expired certificate', record(pi, 1, cert(pi, 'pi', { notBefore: NOW - 30 * DAY, notAfter: NOW - DAY })), 'cert-expired'],
    ['someone else\'s certificate, signed with my key', record(pi, 1, cert(keyPair(), 'nas')), 'key-mismatch'],
  ]
  for (const [name, item, refusal] of cases) {
    const r = openRecord(item, keys, { now: NOW, revoked: none })
    t.equal(r.ok ? 'ok' : r.refusal, refusal, name)
  }
  const revoked = openRecord(good, keys, { now: NOW, revoked: new Set([pi.pub]) })
  t.equal(revoked.ok ? 'ok' : revoked.refusal, 'revoked', 'a revoked key')
})

t.test('the store keeps the newest record, refuses replays, counts every refusal', async (t) => {
  const pi = keyPair()
  const store = new MemberStore(keys, keyPair().pub)
  t.equal(store.offer(record(pi, 10), 'dht', NOW).outcome, 'new')
  t.equal(store.offer(record(pi, 20), 'pex', NOW).outcome, 'updated')
  const replay = store.offer(record(pi, 15), 'dht', NOW)
  t.match(replay, { outcome: 'refused', refusal: 'replayed' }, 'an older sequence number')
  t.equal(store.get(pi.pub)?.seq, 20, 'the newer record stays')
  const forged = record(pi, 30)
  t.match(store.offer({ ...forged, sig: Buffer.alloc(64) }, 'rendezvous', NOW), { outcome: 'refused', refusal: 'bad-signature' })
  t.equal(store.get(pi.pub)?.seq, 20, 'a forged newer record changes nothing')
  t.equal(store.refusals.replayed, 1)
  t.equal(store.refusals['bad-signature'], 1)
  t.equal(store.size, 1)
})

t.test('a poisoned answer naming an address no member published is refused', async (t) => {
  const pi = keyPair()
  const store = new MemberStore(keys, keyPair().pub)
  const honest = record(pi, 1)
  store.offer(honest, 'dht', NOW)
  // A DHT node answers with the same key and salt, a higher seq and a value of its own making.
  const poisoned: SignedItem = { ...honest, seq: 2, v: Buffer.from('{"c":{},"e":["203.0.113.66:7443"],"b":null}') }
  t.match(store.offer(poisoned, 'dht', NOW), { outcome: 'refused', refusal: 'bad-signature' })
  t.same(store.get(pi.pub)?.endpoints.map((e) => e.host), ['192.0.2.5', '2001:db8::5'], 'the endpoints are still the published ones')
})

t.test('a LAN announcement marks the address it came from as a LAN path, first', async (t) => {
  const pi = keyPair()
  const store = new MemberStore(keys, keyPair().pub)
  const item = record(pi, 1)
  store.offer(item, 'rendezvous', NOW)
  const r = store.offer(item, 'lan', NOW, '2001:db8::5')
  t.equal(r.outcome, 'updated')
  t.same(store.get(pi.pub)?.endpoints.map((e) => e.host), ['2001:db8::5', '192.0.2.5'])
  t.equal(store.offer(item, 'lan', NOW, '2001:db8::5').outcome, 'same', 'a repeat changes nothing')
  t.equal(store.offer(item, 'lan', NOW, '198.51.100.9').outcome, 'same', 'an address the record does not list is no path')
})

t.test('revocation and expiry remove members', async (t) => {
  const a = keyPair()
  const b = keyPair()
  const store = new MemberStore(keys, keyPair().pub)
  store.offer(record(a, 1), 'dht', NOW)
  store.offer(record(b, 1, cert(b, 'nas', { notAfter: NOW + 1000 })), 'dht', NOW)
  t.same(store.setRevoked(new Set([a.pub])), [a.pub])
  t.same(store.expire(NOW + 2000), [b.pub])
  t.equal(store.size, 0)
  t.match(store.offer(record(a, 2), 'pex', NOW), { outcome: 'refused', refusal: 'revoked' }, 'a revoked key cannot come back')
})

t.test('a record fits BEP 44\'s 1000 bytes: endpoints that do not fit are left off the end', async (t) => {
  const pi = keyPair()
  const many = Array.from({ length: 40 }, (_, i) => ({ host: `2001:db8:${i + 1}::1234:5678`, port: 7443 }))
  const item = sealRecord({ cert: cert(pi, 'pi'), endpoints: many, bootstrap: null }, keys, pi.priv, 1)
  t.ok(item.v.length <= MAX_VALUE_BYTES)
  const r = openRecord(item, keys, { now: NOW, revoked: none })
  t.ok(r.ok && r.record.endpoints.length > 0 && r.record.endpoints.length < 40)
  t.same(r.ok ? r.record.endpoints[0] : null, many[0], 'the first (preferred) endpoints are kept')
})

t.test('endpoints in records are IP literals only', async (t) => {
  t.same(parseEndpointText('192.0.2.1:7443'), { host: '192.0.2.1', port: 7443 })
  t.same(parseEndpointText('[2001:db8::1]:7443'), { host: '2001:db8::1', port: 7443 })
  for (const bad of ['example.com:7443', '192.0.2.1', '192.0.2.1:0', '192.0.2.1:70000', '[zz::1]:1', '2001:db8::1:7443']) t.equal(parseEndpointText(bad), null, bad)
})
