/**
 * The policy compiler and evaluator: groups (policies.groups and peers[].groups)
 * expand to their members' overlay addresses, the first matching rule decides
 * (protocol, ports, ICMP, prefixes of either family), the default decides the
 * rest; `policies.tests` fail a load at the test's line; `policy explain`
 * names the deciding rule.
 */
import t from 'tap'
import { loadConfigText, type Config } from '../../src/config/index.js'
import { compilePolicy, evaluate, parseTarget, type PolicyMember } from '../../src/policy/policy.js'
import { run } from '../cli/run.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const KEY_A = Buffer.alloc(32, 1).toString('base64')
const KEY_B = Buffer.alloc(32, 2).toString('base64')

const DOC = (extra = '') => `node: { name: hq, role: gateway }
network: { name: corp, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" }, address: { ipv4: 100.88.0.1, ipv6: "fd00:88::1" } }
peers:
  - { name: alice, key: "${KEY_A}", groups: [admins] }
  - { name: bob, key: "${KEY_B}" }
policies:
  default: deny
  groups: { staff: [bob] }
  rules:
    - { name: admins ssh, from: "group:admins", to: 192.168.77.0/24, proto: tcp, ports: [22], action: allow }
    - { name: no telnet, from: any, to: any, proto: tcp, ports: [23], action: deny }
    - { name: staff web, from: "group:staff", to: 192.168.77.10, proto: any, ports: [80, 8000-8100], action: allow }
    - { name: ping, from: any, to: any, proto: icmp, action: allow }
    - { name: lab v6, from: "fd00:99::/32", to: "fd00:77::/64", action: allow }
${extra}`

function load(text: string): Config {
  const r = loadConfigText(text, 'p.yaml')
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

const members: PolicyMember[] = [
  { name: 'hq', addresses: ['100.88.0.1', 'fd00:88::1'], groups: [] },
  { name: 'alice', addresses: ['100.88.0.10', 'fd00:88::10'], groups: ['admins'] },
  { name: 'bob', addresses: ['100.88.0.20'], groups: [] },
]

t.test('groups expand to their members; the first match decides; the default the rest', async (t) => {
  const table = compilePolicy(load(DOC()), members)
  t.equal(table.enforced, true)
  t.same(table.rules[0]!.src, ['100.88.0.10/32', 'fd00:88::10/128'], 'admins: alice, from peers[].groups')
  t.same(table.rules[2]!.src, ['100.88.0.20/32'], 'staff: bob, from policies.groups')
  const v = (src: string, dst: string, proto: 'tcp' | 'udp' | 'icmp', dport: number | null) => {
    const r = evaluate(table, { src, dst, proto, dport })
    return `${r.action}:${r.rule ? r.rule.name : 'default'}`
  }
  t.equal(v('100.88.0.10', '192.168.77.5', 'tcp', 22), 'allow:admins ssh')
  t.equal(v('100.88.0.20', '192.168.77.5', 'tcp', 22), 'deny:default', 'bob is no admin')
  t.equal(v('100.88.0.10', '192.168.77.5', 'tcp', 23), 'deny:no telnet')
  t.equal(v('100.88.0.20', '192.168.77.10', 'udp', 8080), 'allow:staff web', 'proto any with ports: udp too')
  t.equal(v('100.88.0.20', '192.168.77.10', 'tcp', 8101), 'deny:default', 'outside the range')
  t.equal(v('100.88.0.20', '192.168.77.11', 'tcp', 80), 'deny:default', 'another host')
  t.equal(v('100.88.0.20', '192.168.77.11', 'icmp', null), 'allow:ping')
  t.equal(v('fd00:99::5', 'fd00:77::1', 'udp', 53), 'allow:lab v6')
  t.equal(v('100.88.0.20', '10.0.0.1', 'udp', 53), 'deny:default', 'an IPv4 flow never matches IPv6 prefixes')
  t.equal(compilePolicy(load(DOC()), members.slice(0, 1)).rules[0]!.src!.length, 0, 'a group with no known member matches nobody')
})

t.test('no rules and no default written: not enforced, everything allowed', async (t) => {
  const c = load('node: { name: hq }\nnetwork: { name: corp }\npolicies: { groups: { a: [hq] } }\n')
  t.equal(c.policies.enforced, false)
  t.same(evaluate(compilePolicy(c, members), { src: '1.2.3.4', dst: '5.6.7.8', proto: 'tcp', dport: 22 }), { action: 'allow', rule: null })
})

t.test('the hash follows what is enforced, not labels', async (t) => {
  const a = compilePolicy(load(DOC()), members).hash
  t.equal(compilePolicy(load(DOC().replace('name: admins ssh', 'name: renamed')), members).hash, a)
  t.not(compilePolicy(load(DOC().replace('ports: [22]', 'ports: [2222]')), members).hash, a)
})

t.test('targets: ADDRESS[:PORT][/proto]', async (t) => {
  t.same(parseTarget('192.168.77.10:22/tcp'), { addr: '192.168.77.10', port: 22, proto: 'tcp' })
  t.same(parseTarget('[fd00::5]:53/udp'), { addr: 'fd00::5', port: 53, proto: 'udp' })
  t.same(parseTarget('10.0.0.1:443'), { addr: '10.0.0.1', port: 443, proto: 'tcp' })
  t.same(parseTarget('10.0.0.1'), { addr: '10.0.0.1', port: null, proto: 'icmp' })
  t.match(parseTarget('10.0.0.1:22/icmp'), { error: /icmp has no port/ })
  t.match(parseTarget('nope:22'), { error: /not ADDRESS/ })
})

t.test('policies.tests: a failing test fails the load at its line; passing ones are quiet', async (t) => {
  const ok = loadConfigText(DOC(`  tests:
    - { from: "peer:alice", to: "192.168.77.10:22/tcp", expect: allow }
    - { from: "peer:bob", to: "192.168.77.10:22/tcp", expect: deny }
    - { from: "peer:bob", to: "192.168.77.10:8080/udp", expect: allow }
`), 'p.yaml')
  t.ok(ok.ok, JSON.stringify(ok.diagnostics.filter((d) => d.severity === 'error')))
  const bad = loadConfigText(DOC(`  tests:
    - { from: "peer:alice", to: "192.168.77.10:22/tcp", expect: allow }
    - { from: "peer:bob", to: "192.168.77.10:22/tcp", expect: allow }
    - { from: "peer:nobody", to: "192.168.77.10:22/tcp", expect: allow }
`), 'p.yaml')
  t.notOk(bad.ok)
  const errs = bad.diagnostics.filter((d) => d.severity === 'error')
  t.match(errs[0], { line: 17, path: 'policies.tests[1].expect', code: 'policy-test-failed', message: /peer:bob → 192\.168\.77\.10:22\/tcp is denied by the default \(deny\), the test expects allow/ })
  t.match(errs[1], { line: 18, path: 'policies.tests[2].from', code: 'policy-test-unresolved', message: /no member 'nobody'/ })
})

t.test('quicether policy explain names the rule that decides', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'qe-pol-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'q.yaml')
  await writeFile(file, DOC())
  const a = await run(['policy', 'explain', '--from', 'peer:alice', '--to', '192.168.77.10:22/tcp', '-c', file])
  t.equal(a.code, 0, a.stderr)
  t.match(a.stdout, /decided {2}ALLOW by rule 1 'admins ssh': allow group:admins → 192\.168\.77\.0\/24 tcp ports 22/)
  const b = await run(['policy', 'explain', '--from', 'peer:bob', '--to', '192.168.77.10:23', '-c', file, '--json'])
  t.match(JSON.parse(b.stdout), { action: 'deny', rule: { number: 2, name: 'no telnet' } })
  const c = await run(['policy', 'explain', '--from', 'peer:zed', '--to', '192.168.77.10:23', '-c', file])
  t.equal(c.code, 2)
  t.match(c.stderr, /no member 'zed'/)
})

t.test('packed for the engine: one packed rule per port range, in order; a rule that can never match is left out', async (t) => {
  const { packPolicy } = await import('../../src/policy/pack.js')
  const table = compilePolicy(load(DOC()), [members[0]!, members[2]!]) // no alice: "admins" is empty
  const p = packPolicy(table)
  t.same(p.origins, [1, 2, 2, 3, 4], 'admins left out; staff web twice (80 and 8000-8100)')
  const b = Buffer.from(p.acl, 'hex')
  t.equal(b[0], 0, 'default deny')
  t.equal(b.readUInt32BE(4), 5)
  // The first packed rule: no telnet (deny, tcp, 23..23, any source, any destination).
  t.same([b[8], b[9], b.readUInt16BE(10), b.readUInt16BE(12), b.readInt16BE(14), b.readUInt16BE(16), b.readUInt16BE(18)], [0, 6, 23, 23, -1, 0, 0])
  t.same(packPolicy(compilePolicy(load('node: { name: hq }\nnetwork: { name: corp }\n'), members)), { acl: '', origins: [] }, 'nothing enforced: nothing packed')
})

t.test("members are this node by its addresses and each peer by the forwarding table's host routes for its key", async (t) => {
  const { policyMembers } = await import('../../src/state/node.js')
  const c = load(DOC())
  const m = policyMembers(c, { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }, [
    { prefix: '100.88.0.10/32', peer: KEY_A },
    { prefix: 'fd00:88::10/128', peer: KEY_A },
    { prefix: '192.168.50.0/24', peer: KEY_A },
    { prefix: '100.88.0.20/32', peer: KEY_B },
  ])
  t.same(m.map((x) => [x.name, x.addresses]), [['hq', ['100.88.0.1', 'fd00:88::1']], ['alice', ['100.88.0.10', 'fd00:88::10']], ['bob', ['100.88.0.20']]], 'subnets a peer routes are not its identity')
})

t.test('a flow from a named member is matched by name for peer and group rules (offline addresses may collide)', async (t) => {
  // bob's address, as a config derives it offline, can be anyone's: here it is alice's.
  const clash: PolicyMember[] = [{ name: 'alice', addresses: ['100.88.0.10'], groups: ['admins'] }, { name: 'bob', addresses: ['100.88.0.10'], groups: [] }]
  const table = compilePolicy(load(DOC()), clash)
  t.equal(evaluate(table, { src: '100.88.0.10', dst: '192.168.77.5', proto: 'tcp', dport: 22, member: 'bob' }).action, 'deny', 'bob is no admin, whatever his address')
  t.equal(evaluate(table, { src: '100.88.0.10', dst: '192.168.77.5', proto: 'tcp', dport: 22, member: 'alice' }).action, 'allow')
  t.equal(evaluate(table, { src: '100.88.0.10', dst: '192.168.77.5', proto: 'tcp', dport: 22 }).action, 'allow', 'by address alone (the engine), the address decides')
})
