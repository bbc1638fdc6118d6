/**
 * The nftables port and the firewall slice against a real kernel, each test
 * in a fresh namespace of its own (`qet-<hex>`, deleted in teardown, also on
 * failure): a table applied, read back by its hash, replaced, refused whole
 * (nothing changed), repaired after a flush, and removed. Nothing leaves the
 * namespace; no packet is sent here (the gateways e2e test sends them).
 */
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createNetns, isRoot } from '../system/netns.js'
import { emptyFirewall, firewallFromInputs, type FirewallInputs } from '../../src/state/firewall.js'
import { nftablesPort } from '../../src/system/nftables.js'
import { NftablesError } from '../../src/system/errors.js'
import { NodeReconciler } from '../../src/reconcile/node.js'
import { Reconciler } from '../../src/reconcile/reconciler.js'
import { silentLogger } from '../../src/log.js'
import { nodeKernel } from '../reconcile/fake-adapter.js'
import { desiredNode, type NodeState } from '../../src/state/node.js'
import { loadConfigText } from '../../src/config/index.js'

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const gateway: FirewallInputs = {
  tun: 'qe0',
  exit: { ipv4: true, ipv6: true },
  masquerade: ['192.168.77.0/24', 'fd00:77::/64'],
  ingress: [
    { proto: 'tcp', family: 4, listenAddress: null, listenPort: 32400, toAddress: '100.88.0.5', toPort: 32400, masquerade: true },
    { proto: 'udp', family: 6, listenAddress: 'fd00:1::1', listenPort: 51820, toAddress: 'fd00:88::5', toPort: 51821, masquerade: false },
  ],
  clampMss: true,
}

/** `nft list table` inside the namespace (null: no table). */
function listTable(ns: string, table: string): string | null {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', table], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return null
  }
}

t.test('apply, read back, replace, refuse whole, delete', async (t) => {
  const ns = createNetns(t)
  const port = nftablesPort({ netns: ns.name })
  const first = firewallFromInputs(gateway)
  t.equal(await port.readHash(first.table), null, 'no table yet')

  await port.apply(first)
  t.equal(await port.readHash(first.table), first.hash)
  const text = listTable(ns.name, first.table) ?? ''
  t.match(text, /type nat hook prerouting priority dstnat; policy accept;/)
  t.match(text, /type nat hook postrouting priority srcnat; policy accept;/)
  t.match(text, /type filter hook forward priority mangle; policy accept;/)
  t.match(text, /iifname "qe0" oifname != "qe0" meta nfproto ipv4 masquerade/)
  t.match(text, /ip daddr 192\.168\.77\.0\/24 masquerade/)
  t.match(text, /ip6 daddr fd00:77::\/64 masquerade/)
  t.match(text, /tcp dport 32400 dnat ip to 100\.88\.0\.5:32400/)
  t.match(text, /ip6 daddr fd00:1::1 udp dport 51820 dnat ip6 to \[fd00:88::5\]:51821/)
  t.match(text, /oifname "qe0" ct status dnat ip daddr 100\.88\.0\.5 tcp dport 32400 masquerade/)
  t.match(text, /tcp option maxseg size set rt mtu/)

  // Replaced whole: the v6 exit and the udp ingress go, a new LAN comes.
  const second = firewallFromInputs({ ...gateway, exit: { ipv4: true, ipv6: false }, masquerade: ['10.66.0.0/16'], ingress: gateway.ingress.slice(0, 1) })
  await port.apply(second)
  t.equal(await port.readHash(second.table), second.hash)
  const text2 = listTable(ns.name, second.table) ?? ''
  t.notMatch(text2, /nfproto ipv6 masquerade/)
  t.notMatch(text2, /192\.168\.77\.0/)
  t.notMatch(text2, /udp dport 51820/)
  t.match(text2, /ip daddr 10\.66\.0\.0\/16 masquerade/)

  // A rule nft refuses: one transaction, so the table stays exactly as it was.
  const bad = firewallFromInputs({ ...gateway, ingress: [{ ...gateway.ingress[0]!, toAddress: 'nowhere.invalid' }] })
  const err = await port.apply(bad).then(() => null, (e: unknown) => e)
  t.ok(err instanceof NftablesError, 'a typed error')
  t.equal((err as NftablesError).code, 'QE_NFTABLES')
  t.match((err as NftablesError).message, /nft refused table quicether-qe0: .*Error/)
  t.match((err as NftablesError).stderr, /nowhere\.invalid/, "nft's whole message is kept")
  t.equal(await port.readHash(second.table), second.hash, 'nothing changed')
  t.equal(listTable(ns.name, second.table), text2)

  await port.apply(emptyFirewall('qe0'))
  t.equal(await port.readHash(second.table), null, 'deleted')
  await port.apply(emptyFirewall('qe0'))
  t.equal(listTable(ns.name, second.table), null, 'deleting what is not there is fine')
})

t.test("another table of the user's is never touched, and a table of ours without its comment reads ''", async (t) => {
  const ns = createNetns(t)
  const port = nftablesPort({ netns: ns.name })
  const nft = (script: string) => execFileSync('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { input: script })
  nft('table inet mine {\n chain c { type filter hook input priority 0; policy accept; }\n}\ntable inet quicether-qe0 {\n}\n')
  t.equal(await port.readHash('quicether-qe0'), '')
  await port.apply(firewallFromInputs(gateway))
  await port.apply(emptyFirewall('qe0'))
  t.not(listTable(ns.name, 'mine'), null, "the user's table is still there")
})

/** A plain node's desired state (no peers), with `fw` as its firewall. */
function nodeState(fw: FirewallInputs): NodeState {
  const r = loadConfigText('node: { name: a, role: gateway }\nnetwork: { name: n, overlay: { ipv4: 100.88.0.0/16 } }\ntun: { mtu: 1400 }\n', 'node.yaml')
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  const self = { ipv4: '100.88.0.1', ipv6: 'fd00:88::1' }
  return { ...desiredNode(r.config, { selfKey: Buffer.alloc(32, 1).toString('base64'), self, tunMtu: 1400, peers: [] }).state, firewall: firewallFromInputs(fw) }
}

t.test("listening(): the namespace's own sockets, and an ingress on one of them refused with nothing changed", async (t) => {
  const ns = createNetns(t)
  const port = nftablesPort({ netns: ns.name })
  const code = "require('net').createServer().listen(2222, '0.0.0.0', () => console.log('up'))"
  const server = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => void server.kill('SIGKILL'))
  await once(server.stdout, 'data')
  t.match(await port.listening(), [{ proto: 'tcp', family: 4, address: '0.0.0.0', port: 2222 }])

  const kernel = new Reconciler({ periodicMs: 0, verifyDelayMs: 1 }, { system: nodeKernel(), log: silentLogger })
  const node = new NodeReconciler({}, { kernel, log: silentLogger, firewall: port })
  const r = await node.apply(nodeState({ ...gateway, ingress: [{ ...gateway.ingress[0]!, listenPort: 2222 }] }))
  t.equal(r.ok, false)
  t.equal(r.firewall.error?.code, 'QE_INGRESS_PORT_IN_USE')
  t.equal(listTable(ns.name, 'quicether-qe0'), null, 'no table was made')
})

t.test('the node reconciler with real nft: apply, a flush repaired, cleanup removes', async (t) => {
  const ns = createNetns(t)
  const port = nftablesPort({ netns: ns.name })
  const kernel = new Reconciler({ periodicMs: 0, verifyDelayMs: 1 }, { system: nodeKernel(), log: silentLogger })
  const node = new NodeReconciler({}, { kernel, log: silentLogger, firewall: port })

  const r = await node.apply(nodeState(gateway))
  t.equal(r.ok, true, JSON.stringify(r.firewall.error))
  t.ok(r.firewall.actions.length > 0)
  t.equal(await port.readHash('quicether-qe0'), firewallFromInputs(gateway).hash)

  execFileSync('ip', ['netns', 'exec', ns.name, 'nft', 'flush', 'ruleset'])
  t.equal(await port.readHash('quicether-qe0'), null, 'someone flushed the ruleset')
  t.equal(await node.repairFirewall(), true)
  t.equal(await port.readHash('quicether-qe0'), firewallFromInputs(gateway).hash, 'repaired')

  // nft refuses the next table: the previous one keeps running.
  const bad = await node.apply(nodeState({ ...gateway, masquerade: ['not-a-prefix'] }))
  t.equal(bad.ok, false)
  t.equal(bad.firewall.error?.code, 'QE_NFTABLES')
  t.equal(await port.readHash('quicether-qe0'), firewallFromInputs(gateway).hash)

  await node.cleanup()
  t.equal(listTable(ns.name, 'quicether-qe0'), null, 'cleanup removed the table')
})
