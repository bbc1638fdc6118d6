/**
 * What the rendered table does to packets, with no daemon: three namespaces
 * of this test's own, client — gw — server, joined by veths in 198.18.0.0/15
 * (the benchmarking range, never routed here). On gw the veth toward the
 * server is named `qe0`, standing in for the TUN. The table is applied by the
 * real port; a TCP server on the server answers every connection with the
 * source address it sees.
 *
 *   client 198.18.1.2 ─ wan 198.18.1.1 [gw] qe0 198.18.2.1 ─ 198.18.2.2 server
 */
import t from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { isRoot } from '../system/netns.js'
import { firewallFromInputs, type FirewallInputs, type IngressRule } from '../../src/state/firewall.js'
import { nftablesPort } from '../../src/system/nftables.js'

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const tag = randomBytes(3).toString('hex')
const ns = { client: `qet-fwc-${tag}`, gw: `qet-fwg-${tag}`, server: `qet-fws-${tag}` }
const children: ChildProcess[] = []
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL')
  for (const n of Object.values(ns)) {
    try {
      execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' })
    } catch {
      // never made, or already gone
    }
  }
})

const ip = (n: string, ...args: string[]) => execFileSync('ip', ['-n', n, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
for (const n of Object.values(ns)) {
  execFileSync('ip', ['netns', 'add', n])
  ip(n, 'link', 'set', 'lo', 'up')
}
ip(ns.gw, 'link', 'add', 'wan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.client)
ip(ns.gw, 'link', 'add', 'qe0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.server)
for (const [n, dev, addr] of [[ns.gw, 'wan', '198.18.1.1/24'], [ns.client, 'eth0', '198.18.1.2/24'], [ns.gw, 'qe0', '198.18.2.1/24'], [ns.server, 'eth0', '198.18.2.2/24']] as const) {
  ip(n, 'addr', 'add', addr, 'dev', dev)
  ip(n, 'link', 'set', dev, 'up')
}
execFileSync('ip', ['netns', 'exec', ns.gw, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])

/** Starts a TCP server in `n` on `port` that writes each client's source address and closes. */
async function echoSource(n: string, port: number): Promise<void> {
  const code = `require('net').createServer((s) => s.end(s.remoteAddress)).listen(${port}, '0.0.0.0', () => console.log('up'))`
  const child = spawn('ip', ['netns', 'exec', n, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  await once(child.stdout!, 'data')
}

/** Connects from `n` to host:port; what the server wrote, or `error: …`. */
function connect(n: string, host: string, port: number): string {
  const code = `const s = require('net').connect(${port}, '${host}'); let d = ''; s.setTimeout(3000, () => { console.log('error: timeout'); process.exit() }); s.on('data', (x) => (d += x)); s.on('end', () => console.log(d)); s.on('error', (e) => console.log('error: ' + e.code))`
  return execFileSync('ip', ['netns', 'exec', n, process.execPath, '-e', code], { encoding: 'utf8' }).trim()
}

await echoSource(ns.server, 80)
await echoSource(ns.client, 80)
const port = nftablesPort({ netns: ns.gw })
const none: FirewallInputs = { tun: 'qe0', exit: { ipv4: false, ipv6: false }, masquerade: [], ingress: [], clampMss: false }
const ingress = (masquerade: boolean): IngressRule => ({ proto: 'tcp', family: 4, listenAddress: null, listenPort: 8080, toAddress: '198.18.2.2', toPort: 80, masquerade })

t.test('ingress: the public port reaches the target; masqueraded, the target sees the gateway', async (t) => {
  // No route back to the client from the server: only a masqueraded ingress can work.
  await port.apply(firewallFromInputs({ ...none, ingress: [ingress(true)], clampMss: true }))
  t.equal(connect(ns.client, '198.18.1.1', 8080), '198.18.2.1')
  t.match(connect(ns.client, '198.18.1.1', 8081), /^error: ECONNREFUSED/, 'another port is not forwarded')
})

t.test("ingress without masquerade: the target sees the client's own address", async (t) => {
  ip(ns.server, 'route', 'add', 'default', 'via', '198.18.2.1')
  t.teardown(() => void ip(ns.server, 'route', 'del', 'default', 'via', '198.18.2.1'))
  await port.apply(firewallFromInputs({ ...none, ingress: [ingress(false)], clampMss: true }))
  t.equal(connect(ns.client, '198.18.1.1', 8080), '198.18.1.2')
})

t.test('exit and LAN masquerade: what comes from the TUN leaves with the gateway\'s address', async (t) => {
  ip(ns.server, 'route', 'add', 'default', 'via', '198.18.2.1')
  t.teardown(() => void ip(ns.server, 'route', 'del', 'default', 'via', '198.18.2.1'))
  // A route back to the server, so that an address kept is seen (and answered) as such.
  ip(ns.client, 'route', 'add', '198.18.2.0/24', 'via', '198.18.1.1')
  t.teardown(() => void ip(ns.client, 'route', 'del', '198.18.2.0/24', 'via', '198.18.1.1'))
  await port.apply(firewallFromInputs(none))
  t.equal(connect(ns.server, '198.18.1.2', 80), '198.18.2.2', 'no table: the source is kept')
  await port.apply(firewallFromInputs({ ...none, exit: { ipv4: true, ipv6: false }, clampMss: true }))
  t.equal(connect(ns.server, '198.18.1.2', 80), '198.18.1.1', 'exit: masqueraded')
  await port.apply(firewallFromInputs({ ...none, masquerade: ['198.18.1.0/24'], clampMss: true }))
  t.equal(connect(ns.server, '198.18.1.2', 80), '198.18.1.1', 'LAN: masqueraded')
  await port.apply(firewallFromInputs({ ...none, masquerade: ['198.18.9.0/24'], clampMss: true }))
  t.equal(connect(ns.server, '198.18.1.2', 80), '198.18.2.2', 'another LAN: not masqueraded')
})
