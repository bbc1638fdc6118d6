import t from 'tap'
import { NAT_BEHAVIOUR, NAT_MAPPING_TIMEOUT_S, NAT_TYPES, classifyNat, isNatType, natSysctls, natTypeTable, type NatObservation } from '../../src/lab/nat-types.js'

const plan = { lan: 'qel-1a2b-al', wan: 'qel-1a2b-aw', publicAddr: '203.0.113.2', hostAddr: '192.168.1.2' }

t.test('public is plain routing: no table', async (t) => {
  t.equal(natTypeTable('qel-1a2b-nata', 'public', plan), null)
})

t.test('every NAT type snats to the public address on the WAN side only', async (t) => {
  for (const type of NAT_TYPES.filter((x) => x !== 'public')) {
    const text = natTypeTable('qel-1a2b-nata', type, plan) ?? ''
    t.match(text, /^table ip qel-1a2b-nata \{/, type)
    t.match(text, new RegExp(`oifname "${plan.wan}" snat to 203\\.0\\.113\\.2${type === 'symmetric' ? ' random' : ''}\\n`), `${type}: snat${type === 'symmetric' ? ' random' : ''}`)
    t.notMatch(text, /masquerade/, `${type}: the public address is explicit`)
  }
})

t.test('the cones map inbound 1:1 to the host; the others let only replies in', async (t) => {
  const dnat = /iifname "qel-1a2b-aw" ip daddr 203\.0\.113\.2 meta l4proto \{ tcp, udp \} dnat to 192\.168\.1\.2/
  const dropNew = /iifname "qel-1a2b-aw" ct state new counter drop/
  const full = natTypeTable('n', 'full-cone', plan) ?? ''
  t.match(full, dnat)
  t.notMatch(full, dropNew, 'full cone: no filtering')
  const restricted = natTypeTable('n', 'restricted-cone', plan) ?? ''
  t.match(restricted, dnat)
  t.match(restricted, /update @contacted \{ th sport \. ip daddr \}/, 'restricted cone: remembers whom the host sent to, from which port')
  t.match(restricted, /th dport \. ip saddr @contacted accept\n\s+iifname "qel-1a2b-aw" ct state new counter drop/, 'and admits only those addresses')
  t.match(restricted, new RegExp(`timeout ${NAT_MAPPING_TIMEOUT_S}s`))
  for (const type of ['port-restricted', 'symmetric'] as const) {
    const text = natTypeTable('n', type, plan) ?? ''
    t.notMatch(text, /dnat/, `${type}: no inbound mapping`)
    t.match(text, dropNew, `${type}: only conntrack replies come in`)
  }
})

t.test('mappings outlive 60 s (RFC 4787 asks 2 min)', async (t) => {
  t.ok(NAT_MAPPING_TIMEOUT_S >= 120)
  t.same(natSysctls(), ['net.netfilter.nf_conntrack_udp_timeout=120', 'net.netfilter.nf_conntrack_udp_timeout_stream=180'])
})

t.test('isNatType and the promised behaviour of each type', async (t) => {
  t.ok(isNatType('symmetric'))
  t.notOk(isNatType('cone'))
  t.notOk(isNatType(3))
  t.same(Object.keys(NAT_BEHAVIOUR).sort(), [...NAT_TYPES].sort())
  t.same(NAT_BEHAVIOUR['restricted-cone'], { mapping: 'endpoint-independent', filtering: 'address-dependent' })
})

t.test('classifyNat follows RFC 5780', async (t) => {
  const obs = (seen: [string, string, string], arrived: [boolean, boolean, boolean], local = '192.168.1.2:4000'): NatObservation => ({
    local,
    seen: { ip1p1: seen[0], ip1p2: seen[1], ip2p1: seen[2] },
    arrived: { ip1p1: arrived[0], ip1p2: arrived[1], ip2p1: arrived[2] },
  })
  const P = '203.0.113.2'
  const pub = '203.0.113.130:4000'
  t.same(classifyNat(obs([pub, pub, pub], [true, true, true], pub)), { mapping: 'none', filtering: 'none' })
  t.same(classifyNat(obs([`${P}:4000`, `${P}:4000`, `${P}:4000`], [true, true, true])), NAT_BEHAVIOUR['full-cone'])
  t.same(classifyNat(obs([`${P}:4000`, `${P}:4000`, `${P}:4000`], [true, true, false])), NAT_BEHAVIOUR['restricted-cone'])
  t.same(classifyNat(obs([`${P}:4000`, `${P}:4000`, `${P}:4000`], [true, false, false])), NAT_BEHAVIOUR['port-restricted'])
  t.same(classifyNat(obs([`${P}:4000`, `${P}:5000`, `${P}:6000`], [true, false, false])), NAT_BEHAVIOUR.symmetric)
  t.equal(classifyNat(obs([`${P}:4000`, `${P}:4000`, `${P}:6000`], [true, false, false])).mapping, 'address-dependent')
  t.throws(() => classifyNat({ ...obs([P, P, P], [true, true, true]), seen: { ip1p1: null, ip1p2: P, ip2p1: P } }), { code: 'QE_LAB_COMMAND' })
  t.throws(() => classifyNat(obs([P, P, P], [false, false, false])), { code: 'QE_LAB_COMMAND' })
})
