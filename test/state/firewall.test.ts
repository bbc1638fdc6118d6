import t from 'tap'
import { spawnSync } from 'node:child_process'
import { diffFirewall, emptyFirewall, firewallFromInputs, ingressIssues, renderNft, type FirewallInputs, type IngressRule } from '../../src/state/firewall.js'

const base: FirewallInputs = { tun: 'qe0', exit: { ipv4: false, ipv6: false }, masquerade: [], ingress: [], clampMss: false }
const full: FirewallInputs = {
  tun: 'qe0',
  exit: { ipv4: true, ipv6: true },
  masquerade: ['192.168.7.0/24', 'fd00:7::/64', '192.168.7.0/24'],
  ingress: [
    { proto: 'tcp', family: 4, listenAddress: null, listenPort: 32400, toAddress: '100.88.0.2', toPort: 32400, masquerade: true },
    { proto: 'udp', family: 6, listenAddress: '2001:db8::1', listenPort: 51820, toAddress: 'fd00:88::3', toPort: 51820, masquerade: false },
  ],
  clampMss: true,
}

t.test('normal form: sorted, deduplicated, one hash per meaning', async (t) => {
  const a = firewallFromInputs(full)
  const b = firewallFromInputs({ ...full, masquerade: [...full.masquerade].reverse(), ingress: [...full.ingress].reverse() })
  t.equal(a.hash, b.hash)
  t.same(a.inputs.masquerade, ['192.168.7.0/24', 'fd00:7::/64'])
  t.not(a.hash, firewallFromInputs({ ...full, clampMss: false }).hash)
  t.equal(a.table, 'quicether-qe0')
  t.equal(emptyFirewall('qe0').empty, true)
  t.equal(firewallFromInputs(base).empty, true)
})

t.test('the script: replaces the table whole, with its hash', async (t) => {
  const s = renderNft(firewallFromInputs(full))
  t.match(s, /^table inet quicether-qe0 \{\}\ndelete table inet quicether-qe0\ntable inet quicether-qe0 \{/)
  t.match(s, /comment "qe:[0-9a-f]{16}"/)
  t.match(s, /iifname "qe0" oifname != "qe0" meta nfproto ipv4 masquerade/)
  t.match(s, /iifname "qe0" oifname != "qe0" ip6 daddr fd00:7::\/64 masquerade/)
  t.match(s, /iifname != "qe0" meta nfproto ipv4 tcp dport 32400 dnat ip to 100\.88\.0\.2:32400/)
  t.match(s, /ip6 daddr 2001:db8::1 udp dport 51820 dnat ip6 to \[fd00:88::3\]:51820/)
  t.match(s, /oifname "qe0" ct status dnat ip daddr 100\.88\.0\.2 tcp dport 32400 masquerade/)
  t.notMatch(s, /ct status dnat ip6 daddr fd00:88::3/, 'the source is kept toward a member that exits through us')
  t.match(s, /tcp option maxseg size set rt mtu/)
  t.equal(renderNft(emptyFirewall('qe0')), 'table inet quicether-qe0 {}\ndelete table inet quicether-qe0\n', 'empty: the table goes')
})

const canNft = process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0
t.test('nft itself accepts the script (check mode, in a namespace of its own)', { skip: canNft ? false : 'needs root and nft' }, async (t) => {
  const ns = `qet-fw-${process.pid}`
  spawnSync('ip', ['netns', 'add', ns])
  t.teardown(() => void spawnSync('ip', ['netns', 'del', ns]))
  for (const [name, s] of [['full', firewallFromInputs(full)], ['empty', emptyFirewall('qe0')]] as const) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', '-'], { input: renderNft(s), encoding: 'utf8' })
    t.equal(r.status, 0, `${name}: ${r.stderr}`)
  }
})

t.test('plan lines for people', async (t) => {
  const lines = diffFirewall(firewallFromInputs(full), null).map((d) => d.text)
  t.same(lines, [
    '+ firewall nat masquerade qe0 → any other interface (exit, ipv4)',
    '+ firewall nat masquerade qe0 → any other interface (exit, ipv6)',
    '+ firewall nat masquerade qe0 → 192.168.7.0/24',
    '+ firewall nat masquerade qe0 → fd00:7::/64',
    '+ firewall ingress tcp 0.0.0.0:32400 → 100.88.0.2:32400 (masqueraded)',
    '+ firewall ingress udp [2001:db8::1]:51820 → [fd00:88::3]:51820 (source kept)',
    '+ firewall mss clamp on qe0',
  ])
  t.same(diffFirewall(firewallFromInputs(full), firewallFromInputs(full)), [])
  t.same(diffFirewall(emptyFirewall('qe0'), firewallFromInputs({ ...base, exit: { ipv4: true, ipv6: false } })).map((d) => d.text), ['- firewall nat masquerade qe0 → any other interface (exit, ipv4)'])
})

t.test('plan lines: an ingress keeps its listen side and changes target: one change line', async (t) => {
  const a = firewallFromInputs(full)
  const moved = firewallFromInputs({ ...full, ingress: [{ ...full.ingress[0]!, toAddress: '100.88.0.9', masquerade: false }, full.ingress[1]!] })
  t.same(diffFirewall(moved, a), [{ op: 'change', text: '~ firewall ingress tcp 0.0.0.0:32400 → 100.88.0.9:32400 (source kept) (was → 100.88.0.2:32400 (masqueraded))' }])
  t.same(diffFirewall(emptyFirewall('qe0'), a).map((d) => d.op), ['del', 'del', 'del', 'del', 'del', 'del', 'del'], 'everything goes')
})

t.test('ingress checks: ports in use and duplicates', async (t) => {
  const rule = (r: Partial<IngressRule>): IngressRule => ({ proto: 'tcp', family: 4, listenAddress: null, listenPort: 22, toAddress: '100.88.0.2', toPort: 22, masquerade: true, ...r })
  const state = (...ingress: IngressRule[]) => firewallFromInputs({ ...base, ingress })
  const ssh = { proto: 'tcp', family: 4, address: '0.0.0.0', port: 22 } as const
  t.same(ingressIssues(state(rule({})), [ssh]), [
    { severity: 'error', code: 'QE_INGRESS_PORT_IN_USE', message: 'ingress tcp 0.0.0.0:22: port 22 is in use by a listening socket on this node (0.0.0.0:22); choose another listen port' },
  ])
  t.same(ingressIssues(state(rule({ proto: 'udp' })), [ssh]), [], 'another protocol')
  t.same(ingressIssues(state(rule({ listenPort: 2222 })), [ssh]), [], 'another port')
  t.same(ingressIssues(state(rule({ listenAddress: '192.0.2.1' })), [{ ...ssh, address: '127.0.0.1' }]), [], 'another address')
  t.equal(ingressIssues(state(rule({ listenAddress: '192.0.2.1' })), [ssh]).length, 1, 'a socket on every address')
  t.equal(ingressIssues(state(rule({})), [{ ...ssh, address: '127.0.0.1' }]).length, 1, 'an ingress on every address')
  t.equal(ingressIssues(state(rule({})), [{ proto: 'tcp', family: 6, address: '::', port: 22 }]).length, 1, 'a dual-stack socket takes v4 too')
  t.same(ingressIssues(state(rule({ family: 6, listenAddress: 'fd00::1', toAddress: 'fd00:88::2' })), [ssh]), [], 'a v4 socket does not take v6')
  t.match(ingressIssues(state(rule({ listenPort: 80 }), rule({ listenPort: 80, toPort: 8080 })), []), [{ code: 'QE_INGRESS_DUPLICATE', message: /ingress tcp 0\.0\.0\.0:80 is forwarded twice/ }])
  t.same(ingressIssues(emptyFirewall('qe0'), [ssh]), [])
})
