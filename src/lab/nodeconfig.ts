/**
 * The quicether config the lab writes for each daemon node (kebab-case YAML,
 * the shape of `schemas/quicether.schema.json`): its own state directory,
 * identity and control socket under the run's temp dir; overlay address n
 * for the n-th node; every other daemon node as a peer with its key and its
 * addresses on the links the two share; and `connect-to` for the peers this
 * node dials — the `a` end of a link dials the `b` end (with NAT, a is the
 * inside, which must dial out). A node's `config:` from the scenario is
 * merged over the result.
 */
import { join } from 'node:path'
import ipaddr from 'ipaddr.js'
import { LabSpecError } from './errors.js'
import { linkAddressing, needsRouter } from './link.js'
import type { LabNetwork } from './scenario.js'
import type { TopologySpec } from './types.js'

/** Host `n` of a CIDR range (n ≥ 1). */
export function nthHost(cidr: string, n: number): string {
  const [addr, prefix] = ipaddr.parseCIDR(cidr)
  const bytes = addr.toByteArray()
  const bits = bytes.length * 8
  if (BigInt(n) >= 1n << BigInt(bits - prefix)) throw new LabSpecError(`overlay range ${cidr} has no host ${n}`)
  let v = 0n
  for (const b of bytes) v = (v << 8n) | BigInt(b)
  v = ((v >> BigInt(bits - prefix)) << BigInt(bits - prefix)) + BigInt(n)
  const out: number[] = []
  for (let i = bytes.length - 1; i >= 0; i--) out.push(Number((v >> BigInt(i * 8)) & 0xffn))
  return ipaddr.fromByteArray(out).toString()
}

/** The overlay addresses the lab gives each node (daemon or not, by position in the file). */
export function overlayAddresses(topology: TopologySpec, net: LabNetwork): Map<string, { ipv4: string; ipv6: string }> {
  const out = new Map<string, { ipv4: string; ipv6: string }>()
  topology.nodes.forEach((n, i) => out.set(n.name, { ipv4: nthHost(net.ipv4, i + 1), ipv6: nthHost(net.ipv6, i + 1) }))
  return out
}

/** What one node can use to reach a peer: the peer's addresses on the links they share, and whether it dials. */
export function peerEndpoints(topology: TopologySpec, self: string, peer: string, port: number): { endpoints: string[]; dial: boolean } {
  const endpoints: string[] = []
  let dial = false
  topology.links.forEach((l, index) => {
    const ad = linkAddressing(index, needsRouter(l))
    if (l.a === self && l.b === peer) {
      endpoints.push(`${ad.b.ipv4}:${port}`)
      dial = true
    } else if (l.b === self && l.a === peer && l.nat === 'none') {
      endpoints.push(`${ad.a.ipv4}:${port}`)
    }
  })
  return { endpoints, dial }
}

/** Each lab daemon serves metrics and its web UI on its own namespace's loopback (`quicether lab ui` forwards them). */
export const LAB_METRICS_PORT = 9586
export const LAB_UI_PORT = 9587

export interface NodeConfigInit {
  readonly topology: TopologySpec
  readonly network: LabNetwork
  /** Public keys (base64) of the daemon nodes. */
  readonly keys: ReadonlyMap<string, string>
  /** The run's temp dir; node files go in <dir>/<node>/. */
  readonly dir: string
}

/** The generated config of daemon node `name`, with the scenario's `config:` merged over it. */
export function nodeConfig(init: NodeConfigInit, name: string): Record<string, unknown> {
  const { topology, network, keys, dir } = init
  const spec = topology.nodes.find((n) => n.name === name)
  if (!spec) throw new LabSpecError(`no node '${name}'`)
  const home = join(dir, name)
  const addr = overlayAddresses(topology, network).get(name)!
  const peers: Record<string, unknown>[] = []
  const connectTo: string[] = []
  for (const other of topology.nodes) {
    if (other.name === name || !other.daemon) continue
    const key = keys.get(other.name)
    if (!key) throw new LabSpecError(`no key for node '${other.name}'`)
    const { endpoints, dial } = peerEndpoints(topology, name, other.name, network.port)
    peers.push({ name: other.name, key, endpoints })
    if (dial) connectTo.push(other.name)
  }
  const generated: Record<string, unknown> = {
    node: { name, 'state-dir': home, identity: join(home, 'identity.key') },
    network: { name: network.name, overlay: { ipv4: network.ipv4, ipv6: network.ipv6 }, address: addr },
    tun: { name: 'qe0' },
    listen: { address: '::', port: network.port },
    peers,
    discovery: { dht: false, lan: false, 'connect-to': connectTo },
    logging: { level: network.logLevel },
    control: { socket: join(home, 'control.sock') },
    metrics: { listen: `127.0.0.1:${LAB_METRICS_PORT}` },
    ui: { listen: `127.0.0.1:${LAB_UI_PORT}` },
  }
  return spec.config ? mergeConfig(generated, spec.config) : generated
}

/** Objects merge key by key (recursively); arrays and values from `over` replace. */
export function mergeConfig(base: Readonly<Record<string, unknown>>, over: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeConfig(b, v) : v
  }
  return out
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
