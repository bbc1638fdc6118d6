/**
 * The normalized, typed configuration of one QuicEther node.
 *
 * This is what every other module reads. The loader (`src/config/index.ts`)
 * builds it from kebab-case YAML: keys are camelCase, every default is filled
 * (no field is `undefined`; "absent" is spelled `null`), units are numbers
 * (bit rates in bits/s, durations in milliseconds, sizes in bytes), prefixes
 * are canonical CIDR strings (`10.0.0.0/16`, `fd12:3456:789a::/48`, host bits
 * cleared), and the whole object is deeply frozen. Nobody downstream picks a
 * default or parses a unit again.
 *
 * `schemas/quicether.schema.json` documents every field and its default.
 */

export type NodeRole = 'client' | 'gateway' | 'bootstrap'
export type MultipathMode = 'aggregate' | 'failover' | 'redundant'
export type SchedulerName = 'min-rtt' | 'weighted' | 'round-robin' | 'ecf'
export type UplinkRole = 'primary' | 'backup'
export type PolicyAction = 'allow' | 'deny'
export type PolicyProto = 'tcp' | 'udp' | 'icmp' | 'any'
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

/** A `host:port` pair. `host` is an IP literal (no brackets) or a DNS name. */
export interface Endpoint {
  readonly host: string
  readonly port: number
}

/** An inclusive port range; a single port has `from === to`. 1..65535. */
export interface PortRange {
  readonly from: number
  readonly to: number
}

export interface NodeConfig {
  /** This node's name in the mesh (peers refer to it by this name). */
  readonly name: string
  readonly role: NodeRole
  /** Absolute or as written; default `/var/lib/quicether`. */
  readonly stateDir: string
  /** Private key file (PKCS#8 PEM, mode 0600); default `<stateDir>/identity.key`. */
  readonly identity: string
  /** Serve this network's DHT and rendezvous (also true for `role: bootstrap`). */
  readonly bootstrapMode: boolean
}

export interface NetworkConfig {
  readonly name: string
  /** Overlay prefixes, canonical CIDR. ipv6 defaults to a ULA /48 derived from `name`. */
  readonly overlay: { readonly ipv4: string; readonly ipv6: string }
  /** This node's overlay addresses (plain IPs, no prefix length); `null` = derive from identity. */
  readonly address: { readonly ipv4: string | null; readonly ipv6: string | null }
  /** The network signing key's public key (base64); `null` = no certificates: only pinned peers. */
  readonly ca: string | null
  /** This node's certificate file; default `<stateDir>/node.crt`. */
  readonly certificate: string
  /** The members' shared secret (discovery salt and record key); default `<stateDir>/network.secret`. */
  readonly secret: string
  /** The newest signed revocation list seen; default `<stateDir>/revoked.json`. */
  readonly revocations: string
  /** On an admin node: the CA directory (signs joins, renews, spreads revocations); `null` elsewhere. */
  readonly caDir: string | null
}

export interface TunConfig {
  /** Starts with `qe`, at most 15 characters. */
  readonly name: string
  /** `'auto'` = path MTU discovery decides; otherwise 1280..9000. */
  readonly mtu: number | 'auto'
}

export interface ListenConfig {
  readonly address: string
  readonly port: number
}

export interface PeerConfig {
  readonly name: string
  /** Standard base64 of the raw 32-byte Ed25519 public key (44 chars). */
  readonly key: string
  readonly endpoints: readonly Endpoint[]
  readonly groups: readonly string[]
}

/** A `connect-to` entry: a configured peer by name, or an address to dial. */
export type ConnectTarget =
  | { readonly kind: 'peer'; readonly peer: string }
  | { readonly kind: 'endpoint'; readonly endpoint: Endpoint }

export interface DiscoveryConfig {
  readonly dht: boolean
  readonly bootstrap: readonly Endpoint[]
  readonly connectTo: readonly ConnectTarget[]
  readonly lan: boolean
  /** The IP this node announces as reachable from outside; `null` = learn it. */
  readonly publicAddress: string | null
  readonly advertiseAsBootstrap: boolean
  /** UDP port of the DHT, rendezvous and joins; default `listen.port + 1`. */
  readonly port: number
}

export interface UplinkConfig {
  /** Kernel interface name (e.g. `eth0`, `wlan0`, `wwan0`). */
  readonly name: string
  readonly weight: number
  /** bits/s; `null` = unknown (measured at run time). */
  readonly bandwidth: { readonly up: number | null; readonly down: number | null }
  readonly role: UplinkRole
  /** Lower is preferred (failover order). */
  readonly priority: number
  /** Relative cost (e.g. metered LTE); higher is avoided. */
  readonly cost: number
}

export interface TrafficClassConfig {
  readonly name: string
  readonly match: {
    readonly dscp: readonly number[]
    readonly ports: readonly PortRange[]
    /** bytes; `null` = any size. */
    readonly maxPacketSize: number | null
  }
  /** `'lowest-latency'` or the name of an uplink in `interfaces`. */
  readonly path: string
}

export interface MultipathConfig {
  readonly mode: MultipathMode
  readonly scheduler: SchedulerName
  /** Peer (by name) that this node bonds its uplinks toward; `null` = every peer. */
  readonly target: string | null
  /** Accept multipath connections from peers (the receiving side of a bond). */
  readonly accept: boolean
  /** Reorder buffer: `maxDelay` in ms, `maxBytes` in bytes. */
  readonly reorder: { readonly maxDelay: number; readonly maxBytes: number }
  readonly trafficClasses: readonly TrafficClassConfig[]
}

export interface SubnetConfig {
  /** Canonical CIDR. */
  readonly prefix: string
  /** Marks a default route (`0.0.0.0/0`, `::/0`) as an intended exit. */
  readonly exit: boolean
  /** Masquerade what the mesh sends into this prefix (LAN hosts need no return route). */
  readonly masquerade: boolean
  /** Preference among gateways advertising the same prefix: lower wins. Default 100. */
  readonly priority: number
}

export interface RouteConfig {
  /** Canonical CIDR. */
  readonly to: string
  /** Peer name. */
  readonly via: string
  readonly metric: number
}

export type ForwardTarget =
  | { readonly kind: 'peer'; readonly peer: string }
  | { readonly kind: 'cidr'; readonly cidr: string }

/** A public port forwarded to a node in the mesh (`gateway.ingress`). */
export interface IngressConfig {
  /** Address to accept on (`0.0.0.0` / `::` = every address of the family) and port. */
  readonly listen: Endpoint
  /** `peer`: a member by name (its overlay address); `address`: an IP in the mesh. */
  readonly to: { readonly kind: 'peer'; readonly peer: string; readonly port: number } | { readonly kind: 'address'; readonly address: string; readonly port: number }
  readonly proto: 'tcp' | 'udp'
}

export interface GatewayConfig {
  readonly forwardFor: readonly ForwardTarget[]
  readonly ingress: readonly IngressConfig[]
  /** bits/s; `null` = not advertised. */
  readonly advertiseBandwidth: number | null
  /** Relay traffic for peers that cannot reach each other directly. */
  readonly relay: boolean
}

/** Source of a policy rule. */
export type PolicySource =
  | { readonly kind: 'any' }
  | { readonly kind: 'group'; readonly group: string }
  | { readonly kind: 'peer'; readonly peer: string }
  | { readonly kind: 'cidr'; readonly cidr: string }

/** Destination of a policy rule; a single IP becomes a /32 or /128. */
export type PolicyDestination = { readonly kind: 'any' } | { readonly kind: 'cidr'; readonly cidr: string }

export interface PolicyRuleConfig {
  /** Optional label for logs and the audit trail; `null` when absent. */
  readonly name: string | null
  readonly from: PolicySource
  readonly to: PolicyDestination
  readonly proto: PolicyProto
  /** Empty = every port. Only meaningful for tcp/udp. */
  readonly ports: readonly PortRange[]
  readonly action: PolicyAction
}

export interface PolicyTestConfig {
  /** `peer:NAME` or an IP address, as written. */
  readonly from: string
  /** `ADDRESS[:PORT][/proto]`, as written. */
  readonly to: string
  readonly expect: PolicyAction
}

export interface PoliciesConfig {
  /** `policies.rules` or `policies.default` is written: the policy is enforced (else every member's traffic is admitted). */
  readonly enforced: boolean
  readonly default: PolicyAction
  /** Group name → peer names (this node's own name may appear too). */
  readonly groups: Readonly<Record<string, readonly string[]>>
  /** In order; the first match decides. */
  readonly rules: readonly PolicyRuleConfig[]
  readonly tests: readonly PolicyTestConfig[]
}

export interface Config {
  readonly node: NodeConfig
  readonly network: NetworkConfig
  readonly tun: TunConfig
  readonly listen: ListenConfig
  readonly peers: readonly PeerConfig[]
  readonly discovery: DiscoveryConfig
  readonly interfaces: readonly UplinkConfig[]
  readonly multipath: MultipathConfig
  readonly subnets: readonly SubnetConfig[]
  readonly routes: readonly RouteConfig[]
  /** `exit-node`: the peer this node sends its internet traffic through; `required`: block, not fall back, when it is down. */
  readonly exit: { readonly node: string | null; readonly required: boolean }
  readonly gateway: GatewayConfig
  readonly policies: PoliciesConfig
  /** Append-only, hash-chained audit log; `path: null` = off. */
  readonly audit: AuditConfig
  /** Prometheus endpoint; `listen: null` = off. */
  readonly metrics: { readonly listen: Endpoint | null }
  /** Web UI; `listen: null` = off. */
  readonly ui: { readonly listen: Endpoint | null }
  /** `destination`: `'stderr'`, `'stdout'` or a file path. */
  readonly logging: { readonly level: LogLevel; readonly destination: string }
  /**
   * Second factor for clients (src/auth/). `session`: how long a login lasts, ms
   * (`auth.session`, default 12 h); it takes effect with `require2fa`.
   */
  readonly auth: { readonly require2fa: boolean; readonly session: number }
  readonly control: { readonly socket: string }
}

export type AuditDurability = 'fsync' | 'batch' | 'none'

export interface AuditConfig {
  /** The log file; `null` = no audit log. */
  readonly path: string | null
  /** The HMAC key file (0600; created when missing); default `<stateDir>/audit.key`. */
  readonly key: string
  /** When lines reach the disk; default `fsync` (each line). */
  readonly durability: AuditDurability
  readonly rotate: {
    /** Rotate before the file would pass this many bytes; `null` = never by size (written 0). Default 10 MiB. */
    readonly sizeBytes: number | null
    /** Rotate once the file's first line is this old (ms); `null` = never by time (the default). */
    readonly everyMs: number | null
    /** Rotated files kept; default 10. */
    readonly keep: number
  }
}
