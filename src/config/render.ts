/**
 * The effective config back to kebab-case YAML (`quicether start --print-config`).
 * Every default is written out, except "off" values (`null`), which are left out because
 * absence is how the file says "off". Loading the output gives back an equal Config.
 */
import { Document, isScalar, isSeq, visit } from 'yaml'
import { formatEndpoint, formatPortRange } from './syntax.js'
import type { Config, ConnectTarget, ForwardTarget, PolicyDestination, PolicySource } from './types.js'
import { formatBitrate, formatDuration, formatSize } from './units.js'

type Out = Record<string, unknown>

/** Drop `undefined` values and empty mappings (after dropping), keep everything else. */
function compact(o: Out): Out | undefined {
  const out: Out = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return Object.keys(out).length > 0 ? out : undefined
}
const opt = <T, R>(v: T | null, f: (v: T) => R): R | undefined => (v === null ? undefined : f(v))

export function renderConfigYaml(config: Config): string {
  const c = config
  const doc = {
    node: {
      name: c.node.name,
      role: c.node.role,
      'state-dir': c.node.stateDir,
      identity: c.node.identity,
      'bootstrap-mode': c.node.bootstrapMode,
    },
    network: compact({
      name: c.network.name,
      overlay: { ipv4: c.network.overlay.ipv4, ipv6: c.network.overlay.ipv6 },
      address: compact({ ipv4: c.network.address.ipv4 ?? undefined, ipv6: c.network.address.ipv6 ?? undefined }),
      ca: c.network.ca ?? undefined,
      certificate: c.network.certificate,
      secret: c.network.secret,
      revocations: c.network.revocations,
      'ca-dir': c.network.caDir ?? undefined,
    }),
    tun: { name: c.tun.name, mtu: c.tun.mtu },
    listen: { address: c.listen.address, port: c.listen.port },
    peers: c.peers.map((p) => ({ name: p.name, key: p.key, endpoints: p.endpoints.map(formatEndpoint), groups: [...p.groups] })),
    discovery: compact({
      dht: c.discovery.dht,
      bootstrap: c.discovery.bootstrap.map(formatEndpoint),
      'connect-to': c.discovery.connectTo.map(connectTarget),
      lan: c.discovery.lan,
      'public-address': c.discovery.publicAddress ?? undefined,
      'advertise-as-bootstrap': c.discovery.advertiseAsBootstrap,
      port: c.discovery.port,
    }),
    interfaces: c.interfaces.map((u) => compact({
      name: u.name,
      weight: u.weight,
      bandwidth: compact({ up: opt(u.bandwidth.up, formatBitrate), down: opt(u.bandwidth.down, formatBitrate) }),
      role: u.role,
      priority: u.priority,
      cost: u.cost,
    })),
    multipath: compact({
      mode: c.multipath.mode,
      scheduler: c.multipath.scheduler,
      target: c.multipath.target ?? undefined,
      accept: c.multipath.accept,
      reorder: { 'max-delay': formatDuration(c.multipath.reorder.maxDelay), 'max-bytes': formatSize(c.multipath.reorder.maxBytes) },
      'traffic-classes': c.multipath.trafficClasses.map((tc) => ({
        name: tc.name,
        match: compact({
          dscp: tc.match.dscp.length > 0 ? [...tc.match.dscp] : undefined,
          ports: tc.match.ports.length > 0 ? tc.match.ports.map(formatPortRange) : undefined,
          'max-packet-size': tc.match.maxPacketSize ?? undefined,
        }) ?? {},
        path: tc.path,
      })),
    }),
    subnets: c.subnets.map((s) =>
      s.exit || s.masquerade || s.priority !== 100
        ? compact({ prefix: s.prefix, exit: s.exit || undefined, masquerade: s.masquerade || undefined, priority: s.priority !== 100 ? s.priority : undefined })
        : s.prefix,
    ),
    routes: c.routes.map((r) => ({ to: r.to, via: r.via, metric: r.metric })),
    'exit-node': c.exit.node,
    'exit-node-required': c.exit.required,
    gateway: compact({
      'forward-for': c.gateway.forwardFor.map(forwardTarget),
      ingress: c.gateway.ingress.length > 0
        ? c.gateway.ingress.map((g) => ({
          listen: formatEndpoint(g.listen),
          to: g.to.kind === 'peer' ? `${g.to.peer}:${g.to.port}` : formatEndpoint({ host: g.to.address, port: g.to.port }),
          proto: g.proto,
        }))
        : undefined,
      'advertise-bandwidth': opt(c.gateway.advertiseBandwidth, formatBitrate),
      relay: c.gateway.relay,
    }),
    policies: compact({
      // Written only when enforced: a written default is what turns enforcement on.
      default: c.policies.enforced ? c.policies.default : undefined,
      groups: Object.fromEntries(Object.entries(c.policies.groups).map(([g, m]) => [g, [...m]])),
      rules: c.policies.rules.map((r) => compact({
        name: r.name ?? undefined,
        from: policySource(r.from),
        to: policyDestination(r.to),
        proto: r.proto,
        ports: r.ports.length > 0 ? r.ports.map(formatPortRange) : undefined,
        action: r.action,
      })),
      tests: c.policies.tests.length > 0 ? c.policies.tests.map((x) => ({ from: x.from, to: x.to, expect: x.expect })) : undefined,
    }),
    audit: compact({
      path: c.audit.path ?? undefined,
      key: c.audit.key,
      durability: c.audit.durability,
      rotate: compact({ size: c.audit.rotate.sizeBytes === null ? 0 : formatSize(c.audit.rotate.sizeBytes), every: opt(c.audit.rotate.everyMs, formatDuration), keep: c.audit.rotate.keep }),
    }),
    metrics: compact({ listen: opt(c.metrics.listen, formatEndpoint) }),
    ui: compact({ listen: opt(c.ui.listen, formatEndpoint) }),
    logging: { level: c.logging.level, destination: c.logging.destination },
    auth: { 'require-2fa': c.auth.require2fa, session: formatDuration(c.auth.session) },
    control: { socket: c.control.socket },
  }
  const yaml = new Document(compact(doc as Out))
  // Short lists of plain values read best on one line: `ports: [22, 443]`.
  visit(yaml, {
    Seq(_, node) {
      if (node.items.length > 0 && node.items.length <= 8 && node.items.every((i) => isScalar(i))) node.flow = true
    },
  })
  // Empty lists and mappings are written `[]` / `{}` either way; keep top-level lists in block style.
  for (const item of (yaml.contents as { items?: unknown[] } | null)?.items ?? []) {
    const v = (item as { value?: unknown }).value
    if (isSeq(v) && v.items.length > 0 && !v.items.every((i) => isScalar(i))) v.flow = false
  }
  return yaml.toString({ lineWidth: 0, indentSeq: true, flowCollectionPadding: false })
}

function connectTarget(t: ConnectTarget): string {
  return t.kind === 'peer' ? t.peer : formatEndpoint(t.endpoint)
}
function forwardTarget(t: ForwardTarget): string {
  return t.kind === 'peer' ? t.peer : t.cidr
}
function policySource(s: PolicySource): string {
  return s.kind === 'any' ? 'any' : s.kind === 'group' ? `group:${s.group}` : s.kind === 'peer' ? `peer:${s.peer}` : s.cidr
}
function policyDestination(d: PolicyDestination): string {
  return d.kind === 'any' ? 'any' : d.cidr
}
