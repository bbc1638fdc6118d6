/**
 * A document that passed the schema and the rules → the frozen, fully defaulted `Config`.
 * Only called when there are no errors, so every value here parses; a failure is a bug.
 */
import { posix } from 'node:path'
import { defaultDiscoveryPort, defaultIdentity, defaultOverlayIpv6, dscpValue, DEFAULT_OVERLAY_IPV4, DEFAULT_PORT, DEFAULT_STATE_DIR } from './defaults.js'
import { parseAddress, parsePrefix } from '../net/index.js'
import { parseEndpoint, parsePortSpec } from './syntax.js'
import type { Parsed } from './syntax.js'
import { hostPrefix } from './rules-peers.js'
import type { Raw } from './rules.js'
import { list, rec } from './rules.js'
import type {
  AuditConfig, AuditDurability, Config, ConnectTarget, Endpoint, ForwardTarget, IngressConfig, LogLevel, MultipathMode, NodeRole, PolicyAction, PolicyDestination,
  PolicyProto, PolicySource, PortRange, SchedulerName, UplinkRole,
} from './types.js'
import type { UnitResult } from './units.js'
import { parseBitrate, parseDuration, parseSize } from './units.js'

function must<T>(r: Parsed<T>): T {
  if (r.error !== undefined) throw new Error(`normalize: ${r.error}`)
  return r.value
}
function unit(r: UnitResult): number {
  if (r.error !== undefined) throw new Error(`normalize: ${r.error}`)
  return r.value
}
const o = (v: unknown): Raw => rec(v) ?? {}
const s = <T extends string = string>(v: unknown, d: T): T => (typeof v === 'string' ? (v as T) : d)
const sOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null)
const b = (v: unknown, d: boolean): boolean => (typeof v === 'boolean' ? v : d)
const n = (v: unknown, d: number): number => (typeof v === 'number' ? v : d)
const strings = (v: unknown): string[] => list(v).filter((x): x is string => typeof x === 'string')
const endpoint = (v: unknown): Endpoint => must(parseEndpoint(v, DEFAULT_PORT))
const listenOrNull = (v: unknown): Endpoint | null => (v === undefined || v === null ? null : must(parseEndpoint(v)))
const cidr = (v: unknown): string => must(parsePrefix(v)).cidr
const ports = (v: unknown): PortRange[] => list(v).map((p) => must(parsePortSpec(p)))
const addressOrNull = (v: unknown): string | null => (v === undefined || v === null ? null : must(parseAddress(v)).text)

export function normalize(raw: Raw): Config {
  const node = o(raw.node)
  const net = o(raw.network)
  const stateDir = s(node['state-dir'], DEFAULT_STATE_DIR)
  const networkName = s(net.name, '')
  const peerNames = new Set(list(raw.peers).map((p) => o(p).name))
  const mp = o(raw.multipath)
  const disc = o(raw.discovery)
  const gw = o(raw.gateway)
  const pol = o(raw.policies)

  const config: Config = {
    node: {
      name: s(node.name, ''),
      role: s<NodeRole>(node.role, 'client'),
      stateDir,
      identity: s(node.identity, defaultIdentity(stateDir)),
      bootstrapMode: b(node['bootstrap-mode'], false) || node.role === 'bootstrap',
    },
    network: {
      name: networkName,
      overlay: {
        ipv4: cidr(o(net.overlay).ipv4 ?? DEFAULT_OVERLAY_IPV4),
        ipv6: cidr(o(net.overlay).ipv6 ?? defaultOverlayIpv6(networkName)),
      },
      address: { ipv4: addressOrNull(o(net.address).ipv4), ipv6: addressOrNull(o(net.address).ipv6) },
      ca: typeof net.ca === 'string' ? net.ca : null,
      certificate: s(net.certificate, posix.join(stateDir, 'node.crt')),
      secret: s(net.secret, posix.join(stateDir, 'network.secret')),
      revocations: s(net.revocations, posix.join(stateDir, 'revoked.json')),
      caDir: typeof net['ca-dir'] === 'string' ? net['ca-dir'] : null,
    },
    tun: { name: s(o(raw.tun).name, 'qe0'), mtu: typeof o(raw.tun).mtu === 'number' ? (o(raw.tun).mtu as number) : 'auto' },
    listen: { address: must(parseAddress(o(raw.listen).address ?? '::')).text, port: n(o(raw.listen).port, DEFAULT_PORT) },
    peers: list(raw.peers).map((p) => ({
      name: s(o(p).name, ''),
      key: s(o(p).key, ''),
      endpoints: list(o(p).endpoints).map(endpoint),
      groups: strings(o(p).groups),
    })),
    discovery: {
      dht: b(disc.dht, false),
      bootstrap: list(disc.bootstrap).map(endpoint),
      connectTo: strings(disc['connect-to']).map((t): ConnectTarget =>
        peerNames.has(t) || /^[A-Za-z0-9_-]+$/.test(t) && !/^[0-9]+$/.test(t) ? { kind: 'peer', peer: t } : { kind: 'endpoint', endpoint: endpoint(t) },
      ),
      lan: b(disc.lan, false),
      publicAddress: addressOrNull(disc['public-address']),
      advertiseAsBootstrap: b(disc['advertise-as-bootstrap'], false),
      port: n(disc.port, defaultDiscoveryPort(n(o(raw.listen).port, DEFAULT_PORT))),
    },
    interfaces: list(raw.interfaces).map((u) => {
      const bw = o(o(u).bandwidth)
      return {
        name: s(o(u).name, ''),
        weight: n(o(u).weight, 1),
        bandwidth: {
          up: bw.up === undefined ? null : unit(parseBitrate(bw.up)),
          down: bw.down === undefined ? null : unit(parseBitrate(bw.down)),
        },
        role: s<UplinkRole>(o(u).role, 'primary'),
        priority: n(o(u).priority, 100),
        cost: n(o(u).cost, 0),
      }
    }),
    multipath: {
      mode: s<MultipathMode>(mp.mode, 'failover'),
      scheduler: s<SchedulerName>(mp.scheduler, 'min-rtt'),
      target: sOrNull(mp.target),
      accept: b(mp.accept, false),
      reorder: {
        maxDelay: unit(parseDuration(o(mp.reorder)['max-delay'] ?? '150ms')),
        maxBytes: unit(parseSize(o(mp.reorder)['max-bytes'] ?? '4MiB')),
      },
      trafficClasses: list(mp['traffic-classes']).map((c) => {
        const m = o(o(c).match)
        return {
          name: s(o(c).name, ''),
          match: {
            dscp: list(m.dscp).map((d) => dscpValue(d as number | string)),
            ports: ports(m.ports),
            maxPacketSize: typeof m['max-packet-size'] === 'number' ? m['max-packet-size'] : null,
          },
          path: s(o(c).path, 'lowest-latency'),
        }
      }),
    },
    subnets: list(raw.subnets).map((x) =>
      typeof x === 'string'
        ? { prefix: cidr(x), exit: false, masquerade: false, priority: 100 }
        : { prefix: cidr(o(x).prefix), exit: b(o(x).exit, false), masquerade: b(o(x).masquerade, false), priority: n(o(x).priority, 100) },
    ),
    routes: list(raw.routes).map((r) => ({ to: cidr(o(r).to), via: s(o(r).via, ''), metric: n(o(r).metric, 100) })),
    exit: { node: sOrNull(raw['exit-node']), required: b(raw['exit-node-required'], false) },
    gateway: {
      ingress: list(gw.ingress).map(ingress),
      forwardFor: strings(gw['forward-for']).map((f): ForwardTarget => (f.includes('/') ? { kind: 'cidr', cidr: cidr(f) } : { kind: 'peer', peer: f })),
      advertiseBandwidth: gw['advertise-bandwidth'] === undefined ? null : unit(parseBitrate(gw['advertise-bandwidth'])),
      relay: b(gw.relay, false),
    },
    policies: {
      enforced: pol.default !== undefined || list(pol.rules).length > 0,
      default: s<PolicyAction>(pol.default, 'deny'),
      groups: Object.fromEntries(Object.entries(o(pol.groups)).map(([g, members]) => [g, strings(members)])),
      rules: list(pol.rules).map((r) => ({
        name: sOrNull(o(r).name),
        from: source(s(o(r).from, 'any')),
        to: destination(s(o(r).to, 'any')),
        proto: s<PolicyProto>(o(r).proto, 'any'),
        ports: ports(o(r).ports),
        action: s<PolicyAction>(o(r).action, 'deny'),
      })),
      tests: list(pol.tests).map((x) => ({ from: s(o(x).from, ''), to: s(o(x).to, ''), expect: s<PolicyAction>(o(x).expect, 'allow') })),
    },
    audit: audit(o(raw.audit), stateDir),
    metrics: { listen: listenOrNull(o(raw.metrics).listen) },
    ui: { listen: listenOrNull(o(raw.ui).listen) },
    logging: { level: s<LogLevel>(o(raw.logging).level, 'warn'), destination: s(o(raw.logging).destination, 'stderr') },
    auth: { require2fa: b(o(raw.auth)['require-2fa'], false), session: unit(parseDuration(o(raw.auth).session ?? '12h')) },
    control: { socket: s(o(raw.control).socket, '/run/quicether/control.sock') },
  }
  return deepFreeze(config)
}

function audit(r: Raw, stateDir: string): AuditConfig {
  const rot = o(r.rotate)
  const size = unit(parseSize(rot.size ?? '10MiB'))
  return {
    path: sOrNull(r.path),
    key: s(r.key, posix.join(stateDir, 'audit.key')),
    durability: s<AuditDurability>(r.durability, 'fsync'),
    rotate: { sizeBytes: size > 0 ? size : null, everyMs: rot.every === undefined ? null : unit(parseDuration(rot.every)) || null, keep: n(rot.keep, 10) },
  }
}

function ingress(v: unknown): IngressConfig {
  const r = o(v)
  const to = must(parseEndpoint(r.to))
  const ip = parseAddress(to.host).value
  return {
    listen: must(parseEndpoint(r.listen)),
    to: ip ? { kind: 'address', address: ip.text, port: to.port } : { kind: 'peer', peer: to.host, port: to.port },
    proto: s<'tcp' | 'udp'>(r.proto, 'tcp'),
  }
}

function source(v: string): PolicySource {
  if (v === 'any') return { kind: 'any' }
  if (v.startsWith('group:')) return { kind: 'group', group: v.slice(6) }
  if (v.startsWith('peer:')) return { kind: 'peer', peer: v.slice(5) }
  return { kind: 'cidr', cidr: cidr(v.includes('/') ? v : hostPrefix(v)) }
}

function destination(v: string): PolicyDestination {
  if (v === 'any') return { kind: 'any' }
  return { kind: 'cidr', cidr: cidr(v.includes('/') ? v : hostPrefix(v)) }
}

export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}
