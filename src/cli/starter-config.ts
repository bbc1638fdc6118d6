/**
 * The commented starter config `quicether init` writes. Plain text rather
 * than a rendered object, because the comments are the point: a newcomer
 * reads this file to learn what can be said. `init` loads the result before
 * writing it, so a template that stops validating fails loudly.
 */
import { stringify } from 'yaml'
import type { NodeRole } from '../config/index.js'

export interface StarterOptions {
  name: string
  role: NodeRole
  network: string
  bootstrapMode: boolean
  enterprise: boolean
  stateDir: string
  /** What goes after `$schema=` on the first line. */
  schemaRef: string
  publicKey: string
}

/** A YAML scalar, quoted only when it has to be (`"123"`, `"true"`, paths with `: `). */
/** `text` with `# comment` aligned in one column, so the file reads like a table. */
function c(text: string, comment: string): string {
  return `${text.padEnd(33)} # ${comment}`
}

function y(value: string): string {
  return stringify(value, { lineWidth: 0 }).trimEnd()
}

export function renderStarterConfig(o: StarterOptions): string {
  const bootstrap = o.role === 'bootstrap'
  const gateway = o.role === 'gateway'
  const out: string[] = []
  const add = (...lines: string[]): void => {
    out.push(...lines)
  }

  add(
    `# yaml-language-server: $schema=${o.schemaRef}`,
    `#`,
    `# QuicEther config of node ${o.name}, written by 'quicether init'.`,
    `# Check it with 'quicether validate FILE'; 'quicether schema' documents every key.`,
    `# Keys are kebab-case. Bit rates: 25Mbps, 1Gbps. Durations: 500ms, 2s. Sizes: 4MiB.`,
    ``,
    `node:`,
    `  name: ${y(o.name)}`,
    c(`  role: ${o.role}`, 'client | gateway | bootstrap'),
    `  state-dir: ${y(o.stateDir)}`,
    `  # identity: <state-dir>/identity.key  (Ed25519, mode 0600; public key ${o.publicKey})`,
    c(`  bootstrap-mode: ${o.bootstrapMode || bootstrap}`, 'serve as a DHT bootstrap node for this network'),
    ``,
    `network:`,
    `  # Every node of one mesh uses the same network name.`,
    `  name: ${y(o.network)}`,
    `  overlay:`,
    `    # Overlay address ranges: pick ones that clash with no LAN the mesh routes.`,
    `    ipv4: 100.88.0.0/16`,
    c(`    # ipv6: fd12:3456:789a::/48`, 'default: a unique-local /48 derived from the network name'),
    `  # This node's overlay addresses are derived from its public key unless set here:`,
    `  # address: { ipv4: 100.88.0.10, ipv6: "fd12:3456:789a::10" }`,
    ``,
    `listen:`,
    c(`  address: "::"`, 'every address, IPv4 and IPv6'),
    c(`  port: 7443`, 'UDP'),
    ``,
    `# Zero trust: only the keys listed here may connect to this node.`,
    `peers: []`,
    `#  - name: office-gw`,
    `#    key: <the public key that 'quicether init' printed on office-gw>`,
    `#    endpoints: [gw.example.com:7443]`,
    ``,
    `discovery:`,
    c(`  lan: true`, 'find peers on the local network segment'),
    c(`  dht: ${bootstrap}`, 'a private DHT seeded by the bootstrap nodes below'),
    `  # bootstrap: [bootstrap.example.com:7443]`,
    c(`  # connect-to: [office-gw]`, 'peers (by name) or host:port to dial at start'),
  )
  if (bootstrap) {
    add(
      `  advertise-as-bootstrap: true`,
      c(`  # public-address: 203.0.113.10`, 'the public IP peers reach this node at'),
    )
  } else {
    add(c(`  # public-address: 203.0.113.10`, 'set on a node with a fixed public IP'))
  }
  add(
    ``,
    `# Uplinks to bond. Empty: the interface of the default route.`,
    `interfaces: []`,
    `#  - name: eth0`,
    `#    bandwidth: { up: 20Mbps, down: 100Mbps }`,
    `#  - name: wwan0`,
    c(`#    role: backup`, 'used only when every primary uplink is down'),
    c(`#    cost: 10`, 'metered: avoided when others suffice'),
    ``,
    `multipath:`,
    c(`  mode: failover`, 'aggregate | failover | redundant'),
    c(`  scheduler: min-rtt`, 'min-rtt | weighted | round-robin | ecf (aggregate mode)'),
    c(`  accept: ${gateway}`, 'accept bonded connections from peers (receiving side)'),
    c(`  # target: home-nas`, 'bond toward this peer only'),
    ``,
  )
  if (gateway) {
    add(
      `# Prefixes behind this gateway, advertised to the mesh.`,
      `subnets: []`,
      `#  - 192.168.1.0/24`,
      c(`#  - { prefix: 0.0.0.0/0, exit: true }`, 'an exit node for internet traffic'),
      ``,
      `gateway:`,
      c(`  relay: false`, 'relay for peers that cannot reach each other directly'),
      c(`  # forward-for: [home-server]`, 'peers (by name) or prefixes this gateway forwards for'),
      `  # advertise-bandwidth: 1Gbps`,
      ``,
    )
  } else {
    add(
      `# Prefixes this node advertises (LANs behind it); a gateway's business.`,
      `subnets: []`,
      ``,
      `# Static routes through the mesh.`,
      `routes: []`,
      `#  - { to: 10.0.0.0/16, via: office-gw }`,
      ``,
    )
  }
  if (o.enterprise) {
    add(
      `# Zero trust: traffic no rule allows is dropped. Rules are checked in order.`,
      `policies:`,
      `  default: deny`,
      `  groups:`,
      `    admins: [${y(o.name)}]`,
      `    # staff: [alice-laptop, bob-laptop]`,
      `  rules:`,
      `    - name: admins-anywhere`,
      `      from: group:admins`,
      `      to: any`,
      `      action: allow`,
      `    - name: ping`,
      `      from: any`,
      `      to: any`,
      `      proto: icmp`,
      `      action: allow`,
      `    # - name: staff-intranet`,
      `    #   from: group:staff`,
      `    #   to: 10.0.0.0/16`,
      `    #   proto: tcp`,
      `    #   ports: [443, 8000-8100]`,
      `    #   action: allow`,
      ``,
      `# Append-only, hash-chained audit log.`,
      `audit:`,
      `  path: /var/log/quicether/audit.log`,
      ``,
      `auth:`,
      `  require-2fa: true`,
      ``,
    )
  } else {
    add(
      `# Who may reach what through this node. 'deny' is zero trust: then add rules, e.g.`,
      `#   rules: [{ from: group:staff, to: 10.0.0.0/16, proto: tcp, ports: [443], action: allow }]`,
      `policies:`,
      `  default: allow`,
      ``,
    )
  }
  add(
    `logging:`,
    c(`  level: warn`, 'trace | debug | info | warn | error | fatal | silent'),
    c(`  destination: stderr`, 'stderr | stdout | a file path'),
    ``,
    c(`# metrics: { listen: 127.0.0.1:9586 }`, 'Prometheus /metrics'),
    c(`# ui: { listen: 127.0.0.1:9587 }`, 'web UI'),
  )
  return out.join('\n') + '\n'
}
