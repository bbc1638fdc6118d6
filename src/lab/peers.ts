/**
 * The tunnels QuicEther is measured against, set up between two lab nodes
 * on the same link: OpenVPN 2.6 (UDP, TLS with throwaway certificates made by
 * `openssl` in the run's temp dir, AES-256-GCM, p2p, userspace data channel)
 * and wireguard-go (Debian's, a userspace TUN; keys from `wg genkey`). Each
 * listens only on the lab link's address; every interface name is qel-….
 */
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { LabCommandError } from './errors.js'
import { ipBatch, run, runIn, spawnIn, stopChild } from './exec.js'
import { LAB_PREFIX } from './names.js'
import { pingOnce } from './traffic.js'
import type { Lab } from './topology.js'

export interface PeerTunnel {
  readonly name: string
  /** Overlay address of the b side (the iperf3 server's). */
  readonly serverAddr: string
  /** Processes whose CPU is the tunnel's cost. */
  readonly pids: readonly number[]
  readonly detail: string
  stop(): Promise<void>
}

/** Wire-free overlay ranges of the peer tunnels (inside the lab's namespaces only). */
const OVPN_A = '10.253.0.1'
const OVPN_B = '10.253.0.2'
const WG_A = '10.254.0.1'
const WG_B = '10.254.0.2'

async function waitPing(netns: string, to: string, what: string, procs: readonly ChildProcess[], logs: () => string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now()
  while (Date.now() - t0 < timeoutMs) {
    if (procs.some((p) => p.exitCode !== null || p.signalCode !== null)) throw new LabCommandError(`${what} exited:\n${logs()}`)
    if (await pingOnce(netns, to, 1000)) return
  }
  throw new LabCommandError(`${what} did not pass traffic within ${timeoutMs / 1000} s:\n${logs()}`)
}

function tail(path: string, n = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n')
  } catch {
    return '(no log)'
  }
}

/** A throwaway CA and a server and client certificate (ECDSA P-256), valid one day. */
async function makeCerts(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const o = (args: string[]): Promise<unknown> => run('openssl', args, { timeoutMs: 30_000 })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await o(['req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-subj', '/CN=qel-bench-ca', '-days', '1'])
  for (const [who, usage] of [['server', 'serverAuth'], ['client', 'clientAuth']] as const) {
    await writeFile(join(dir, `${who}.ext`), `keyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=${usage}\n`)
    await o(['req', ...ec, '-keyout', join(dir, `${who}.key`), '-out', join(dir, `${who}.csr`), '-subj', `/CN=${who}`])
    await o(['x509', '-req', '-in', join(dir, `${who}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${who}.crt`), '-days', '1', '-extfile', join(dir, `${who}.ext`)])
  }
}

/** OpenVPN 2.6 between lab nodes `a` (client) and `b` (server) over link 0. */
export async function startOpenVpn(lab: Lab, a: string, b: string): Promise<PeerTunnel> {
  const dir = join(lab.dir, 'openvpn')
  await makeCerts(dir)
  const link = lab.link(0)
  const dev = `${LAB_PREFIX}${lab.runId}-ovpn`
  const common = ['--dev', dev, '--dev-type', 'tun', '--proto', 'udp', '--port', '1194', '--data-ciphers', 'AES-256-GCM', '--cipher', 'AES-256-GCM',
    '--disable-dco', '--fast-io', '--sndbuf', '4194304', '--rcvbuf', '4194304', '--txqueuelen', '1000', '--ca', join(dir, 'ca.crt'), '--dh', 'none', '--verb', '3', '--ping', '2', '--ping-exit', '60']
  const server = spawnIn(lab.node(b).netns, 'openvpn', [...common, '--local', link.addrB.ipv4, '--tls-server', '--cert', join(dir, 'server.crt'), '--key', join(dir, 'server.key'),
    '--ifconfig', OVPN_B, OVPN_A, '--log', join(dir, 'server.log')], { runId: lab.runId, stdio: 'ignore' })
  const client = spawnIn(lab.node(a).netns, 'openvpn', [...common, '--remote', link.addrB.ipv4, '--nobind', '--tls-client', '--remote-cert-tls', 'server',
    '--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key'), '--ifconfig', OVPN_A, OVPN_B, '--log', join(dir, 'client.log')], { runId: lab.runId, stdio: 'ignore' })
  const procs = [server, client]
  const stop = async (): Promise<void> => {
    for (const p of procs) await stopChild(p, 2000)
  }
  try {
    await waitPing(lab.node(a).netns, OVPN_B, 'OpenVPN', procs, () => `server:\n${tail(join(dir, 'server.log'))}\nclient:\n${tail(join(dir, 'client.log'))}`)
  } catch (err) {
    await stop()
    throw err
  }
  const version = (await run('openvpn', ['--version'], { allowFail: true })).stdout.split('\n')[0]?.split(' ').slice(0, 2).join(' ') ?? 'OpenVPN'
  return { name: 'openvpn', serverAddr: OVPN_B, pids: procs.map((p) => p.pid!).filter(Boolean), detail: `${version}, UDP, AES-256-GCM, TLS (ECDSA P-256), userspace data channel (--disable-dco), --fast-io, 4 MB socket buffers`, stop }
}

/** wireguard-go between lab nodes `a` and `b` over link 0. */
export async function startWireguardGo(lab: Lab, a: string, b: string): Promise<PeerTunnel> {
  const link = lab.link(0)
  const ifA = `${LAB_PREFIX}${lab.runId}-wga`
  const ifB = `${LAB_PREFIX}${lab.runId}-wgb`
  const keyA = (await run('wg', ['genkey'])).stdout.trim()
  const keyB = (await run('wg', ['genkey'])).stdout.trim()
  const pubA = (await run('wg', ['pubkey'], { input: keyA + '\n' })).stdout.trim()
  const pubB = (await run('wg', ['pubkey'], { input: keyB + '\n' })).stdout.trim()
  const dir = join(lab.dir, 'wireguard')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await writeFile(join(dir, 'a.key'), keyA + '\n', { mode: 0o600 })
  await writeFile(join(dir, 'b.key'), keyB + '\n', { mode: 0o600 })
  const procs: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    for (const p of procs) await stopChild(p, 2000)
  }
  try {
    for (const [node, dev] of [[a, ifA], [b, ifB]] as const) {
      const p = spawnIn(lab.node(node).netns, 'wireguard-go', ['-f', dev], { runId: lab.runId, stdio: 'ignore', env: { [WIREGUARD_GO_ENV]: '1' } })
      procs.push(p)
    }
    // wireguard-go needs a moment to create its TUN and UAPI socket.
    await waitFor(async () => (await runIn(lab.node(a).netns, 'wg', ['show', ifA], { allowFail: true })).code === 0 && (await runIn(lab.node(b).netns, 'wg', ['show', ifB], { allowFail: true })).code === 0, 10_000, 'wireguard-go did not create its interfaces')
    await runIn(lab.node(b).netns, 'wg', ['set', ifB, 'private-key', join(dir, 'b.key'), 'listen-port', '51820', 'peer', pubA, 'allowed-ips', `${WG_A}/32`])
    await runIn(lab.node(a).netns, 'wg', ['set', ifA, 'private-key', join(dir, 'a.key'), 'peer', pubB, 'allowed-ips', `${WG_B}/32`, 'endpoint', `${link.addrB.ipv4}:51820`])
    await ipBatch(lab.node(a).netns, [`addr add ${WG_A}/24 dev ${ifA}`, `link set ${ifA} mtu 1420 up`])
    await ipBatch(lab.node(b).netns, [`addr add ${WG_B}/24 dev ${ifB}`, `link set ${ifB} mtu 1420 up`])
    await waitPing(lab.node(a).netns, WG_B, 'wireguard-go', procs, () => '')
  } catch (err) {
    await stop()
    throw err
  }
  return { name: 'wireguard-go', serverAddr: WG_B, pids: procs.map((p) => p.pid!).filter(Boolean), detail: `wireguard-go ${await wgVersion()}, userspace TUN`, stop }
}

/** wireguard-go refuses to run where a kernel module could be used unless told otherwise. */
export const WIREGUARD_GO_ENV = 'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD'

async function wgVersion(): Promise<string> {
  const r = await run('wireguard-go', ['--version'], { allowFail: true })
  return /v[0-9.]+/.exec(r.stdout + r.stderr)?.[0] ?? ''
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now()
  while (Date.now() - t0 < timeoutMs) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new LabCommandError(what)
}
