/**
 * Membership: pinned peers and certified members become one list of admitted
 * peers; revocation cuts both; a certificate cannot take a pinned name.
 */
import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import { effectivePeers, withPeers, type CertifiedMember } from '../../src/state/members.js'

const key = (n: number) => Buffer.alloc(32, n).toString('base64')
const SELF = key(1)

const config = loadConfigText(
  `node: { name: a }
network: { name: n }
peers:
  - { name: office, key: "${key(2)}", endpoints: [192.0.2.1:7443] }
  - { name: old, key: "${key(3)}" }
`,
  'f.yaml',
)
if (!config.ok) throw new Error('fixture does not load')

const member = (n: number, name: string, extra: Partial<CertifiedMember> = {}): CertifiedMember => ({
  key: key(n),
  name,
  groups: ['homelab'],
  ipv4: `100.88.0.${n}`,
  ipv6: null,
  subnets: [],
  endpoints: [{ host: `198.51.100.${n}`, port: 7443 }],
  ...extra,
})

t.test('pinned peers first, then certified members with their certificate limits', async (t) => {
  const eff = effectivePeers(config.config, { members: [member(5, 'pi'), member(4, 'nas')], revoked: [] }, SELF)
  t.same(eff.peers.map((p) => p.name), ['office', 'old', 'nas', 'pi'])
  t.same(eff.peers.find((p) => p.name === 'pi')?.endpoints, [{ host: '198.51.100.5', port: 7443 }])
  t.same(eff.limits.get(key(5)), { overlay: ['100.88.0.5'], subnets: [] })
  t.notOk(eff.limits.has(key(2)), 'a pinned peer has no certificate limits')
})

t.test('a pinned peer with a certificate keeps its name and gains the record\'s endpoints', async (t) => {
  const eff = effectivePeers(config.config, { members: [member(2, 'office-gw')], revoked: [] }, SELF)
  const office = eff.peers.find((p) => p.key === key(2))
  t.equal(office?.name, 'office')
  t.same(office?.endpoints, [{ host: '192.0.2.1', port: 7443 }, { host: '198.51.100.2', port: 7443 }])
  t.equal(eff.peers.length, 2)
})

t.test('revocation cuts certified members and pinned peers alike', async (t) => {
  const eff = effectivePeers(config.config, { members: [member(5, 'pi')], revoked: [key(5), key(3)] }, SELF)
  t.same(eff.peers.map((p) => p.name), ['office'])
  t.same(eff.revokedPinned, ['old'])
})

t.test('a certificate cannot take a pinned peer\'s name, nor this node\'s key', async (t) => {
  const eff = effectivePeers(config.config, { members: [member(6, 'office'), member(1, 'me')], revoked: [] }, SELF)
  t.same(eff.peers.map((p) => p.name), ['office', 'old'])
  t.same(eff.nameClashes, [{ key: key(6), name: 'office' }])
})

t.test('two certificates with one name: the first by key wins', async (t) => {
  const eff = effectivePeers(config.config, { members: [member(9, 'pi'), member(8, 'pi')], revoked: [] }, SELF)
  t.same(eff.peers.filter((p) => p.name === 'pi').map((p) => p.key), [key(8)])
  t.same(eff.nameClashes, [{ key: key(9), name: 'pi' }])
})

t.test('withPeers gives a frozen config with the effective peers, the file\'s config untouched', async (t) => {
  const eff = effectivePeers(config.config, { members: [member(5, 'pi')], revoked: [] }, SELF)
  const c = withPeers(config.config, eff.peers)
  t.equal(c.peers.length, 3)
  t.equal(config.config.peers.length, 2)
  t.ok(Object.isFrozen(c))
})
