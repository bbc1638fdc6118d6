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
    `# Keys marked "not acted on yet" are validated but change nothing in this version;`,
    `# 'quicether validate' warns about them (QE_NOT_IMPLEMENTED).`,
    ``,
    `node:`,
    `  name: ${y(o.name)}`,
    c(`  role: ${o.role}`, 'client | gateway (forwards for its subnets) | bootstrap (serves the DHT)'),
    `  state-dir: ${y(o.stateDir)}`,
    `  # identity: <state-dir>/identity.key  (Ed25519, mode 0600; public key ${o.publicKey})`,
    o.bootstrapMode || bootstrap
      ? c(`  bootstrap-mode: true`, 'serve the DHT and rendezvous others seed from')
      : c(`  # bootstrap-mode: true`, 'serve the DHT and rendezvous others seed from'),
    ``,
    `network:`,
    `  # Every node of one mesh uses the same network name.`,
    `  name: ${y(o.network)}`,
    `  overlay:`,
    `    # Overlay address ranges: pick ones that clash with no LAN the mesh routes.`,
    `    ipv4: 100.88.0.0/16`,
    c(`    # ipv6: fd12:3456:789a::/48`, 'default: a unique-local /48 derived from the network name'),
    `  # This node's overlay addresses are derived from its public key unless set here:`,
    `  # With a network CA ('quicether ca init', or 'quicether join'), certified members are`,
    `  # admitted and found without being listed in peers:`,
    `  # ca: <the CA key 'quicether ca init' printed>   (certificate: <state-dir>/node.crt, secret: <state-dir>/network.secret)`,
    `  # address: { ipv4: 100.88.0.10, ipv6: "fd12:3456:789a::10" }`,
    ``,
    `listen:`,
    c(`  address: "::"`, 'every address, IPv4 and IPv6'),
    c(`  port: 7443`, 'UDP'),
    ``,
    `# Only the keys listed here (and, with network.ca, certified members) may connect to this node.`,
    `peers: []`,
    `#  - name: office-gw`,
    `#    key: <the public key that 'quicether init' printed on office-gw>`,
    `#    endpoints: [gw.example.com:7443]`,
    ``,
    `discovery:`,
    c(`  connect-to: []`, 'peers (by name) or host:port to dial at start, e.g. [office-gw]'),
    `  # With network.ca: find members through the private DHT, the LAN and each other.`,
    c(`  # lan: true`, 'find members on the local network segment'),
    c(`  # dht: true`, 'a private DHT seeded only by the bootstrap nodes below'),
    c(`  # bootstrap: [bootstrap.example.com:7444]`, 'their discovery port: listen port + 1'),
    c(`  # public-address: 203.0.113.10`, 'the public IP to announce'),
  )
  if (bootstrap) add(c(`  # advertise-as-bootstrap: true`, 'announce this node as a bootstrap node'))
  add(
    ``,
    `# Uplinks to bond. Empty: the interface of the default route.`,
    `interfaces: []`,
    `#  - name: eth0`,
    c(`#    weight: 2`, 'share under the weighted scheduler'),
    `#  - name: wwan0`,
    c(`#    role: backup`, 'failover: used only when every primary uplink is down'),
    ``,
    `multipath:`,
    c(`  mode: failover`, 'aggregate (every live uplink) | failover | redundant (each packet on the two best live paths)'),
    c(`  scheduler: min-rtt`, 'aggregate mode: min-rtt (one delivery delay for the bond, then earliest expected delivery; ecf names the same) | weighted (by weight)'),
    c(`  accept: ${gateway}`, 'accept bonded connections from peers (receiving side)'),
    c(`  # target: home-nas`, 'bond toward this peer only'),
    ``,
  )
  if (gateway) {
    add(
      `# Prefixes behind this gateway, advertised to the mesh (IP forwarding is switched on).`,
      `subnets: []`,
      `#  - 192.168.1.0/24`,
      ``,
      `# Relay for members that cannot reach each other directly (strict NATs on both sides):`,
      `# their QUIC packets pass through here, still end-to-end encrypted. Needs a public address.`,
      `# gateway: { relay: true, advertise-bandwidth: 100Mbps }`,
      `# An internet exit: subnets: [{ prefix: 0.0.0.0/0, exit: true }] (peers use it with exit-node).`,
      `# A hub for members without a tunnel of their own: gateway: { forward-for: [name, ...] }.`,
      `# A public port to a member: gateway: { ingress: [{ listen: "0.0.0.0:32400", to: "name:32400" }] }.`,
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
      `# Zero trust: the forwarding plane drops every flow no rule allows, both ways (replies of an`,
      `# allowed flow pass). Rules are checked in order; the first match decides. Groups come from here,`,
      `# from peers[].groups and from members' certificates. 'quicether policy explain --from peer:NAME`,
      `# --to 10.0.0.5:443/tcp' names the rule that decides a flow; tests below are checked at every load.`,
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
      `# Append-only, hash-chained audit log ('quicether audit verify' checks it).`,
      `audit:`,
      `  path: /var/log/quicether/audit.log`,
      ``,
      `# A second factor for client peers: their traffic passes only while they hold a session`,
      `# ('quicether 2fa enrol --peer NAME' here, 'quicether login' on the client; TOTP).`,
      `auth:`,
      `  require-2fa: true`,
      `  session: 12h`,
      ``,
    )
  } else {
    add(
      `# Who may reach what through this node. Without policies.rules or policies.default every`,
      `# admitted peer (pinned in peers, or certified by network.ca) may reach it. Zero trust:`,
      `# policies:`,
      `#   default: deny`,
      `#   rules: [{ from: group:staff, to: 10.0.0.0/16, proto: tcp, ports: [443], action: allow }]`,
      ``,
    )
  }
  add(
    `logging:`,
    c(`  level: warn`, 'trace | debug | info | warn | error | fatal | silent'),
    c(`  destination: stderr`, 'stderr | stdout | a file path'),
    ``,
    `# Prometheus /metrics (no auth: keep it local), and the read-only web UI ('quicether ui --url').`,
    `# metrics: { listen: 127.0.0.1:9586 }`,
    `# ui: { listen: 127.0.0.1:9587 }`,
  )
  return out.join('\n') + '\n'
}
