/** Rules for peers, discovery and policies: names, keys, endpoints, groups. */
import { parseAddress, parsePrefix, WIDTH } from '../net/index.js'
import { parseEndpoint, parsePortSpec, parsePublicKey } from './syntax.js'
import type { RuleContext } from './rules.js'
import { list, rec, str } from './rules.js'
import { closest } from './suggest.js'

/** ` (did you mean 'x'?)` among the known names, or ''. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const near = closest(name, [...known])
  return near ? `; did you mean '${near}'?` : ''
}

/** Report `name` at `path` unless it names a configured peer (or, when `selfOk`, this node). */
export function checkPeerRef(ctx: RuleContext, name: string, path: (string | number)[], what: string, selfOk = false): void {
  if (ctx.peers.has(name)) return
  if (name === ctx.nodeName) {
    if (!selfOk) ctx.report(path, 'peer-is-self', `${what} '${name}' is this node itself`)
    return
  }
  ctx.report(path, 'unknown-peer', `${what} '${name}' is not a peer listed in peers${didYouMean(name, ctx.peers.keys())}`)
}

export function checkPeers(ctx: RuleContext): void {
  const { raw } = ctx
  const byName = new Map<string, number>()
  const byKey = new Map<string, number>()
  list(raw.peers).forEach((item, i) => {
    const p = rec(item)
    if (!p) return
    const name = str(p.name)
    if (name !== undefined) {
      const first = byName.get(name)
      if (first !== undefined) {
        ctx.report(['peers', i, 'name'], 'duplicate-peer-name', `peer '${name}' is listed twice (first at ${ctx.where(['peers', first, 'name'])})`)
      } else byName.set(name, i)
      if (name === ctx.nodeName) ctx.report(['peers', i, 'name'], 'peer-is-self', `peer '${name}' has this node's own name (node.name)`)
    }
    if (p.key !== undefined) {
      const k = parsePublicKey(p.key)
      if (k.error !== undefined) ctx.report(['peers', i, 'key'], k.code, k.error)
      else {
        const first = byKey.get(k.value)
        if (first !== undefined) {
          const other = str(rec(list(raw.peers)[first])?.name) ?? `peers[${first}]`
          ctx.report(['peers', i, 'key'], 'duplicate-peer-key', `this key is already the key of peer '${other}' (${ctx.where(['peers', first, 'key'])}); each node has its own key`)
        } else byKey.set(k.value, i)
      }
    }
    list(p.endpoints).forEach((e, j) => {
      const r = parseEndpoint(e, 7443)
      if (r.error !== undefined) ctx.report(['peers', i, 'endpoints', j], r.code, r.error)
    })
  })

  const d = rec(raw.discovery)
  if (d) {
    list(d.bootstrap).forEach((e, j) => {
      const r = parseEndpoint(e, 7443)
      if (r.error !== undefined) ctx.report(['discovery', 'bootstrap', j], r.code, r.error)
    })
    list(d['connect-to']).forEach((e, j) => {
      if (typeof e !== 'string' || ctx.peers.has(e)) return
      // A bare word (no dot, no colon) is meant as a peer name; anything else is an address.
      if (/^[A-Za-z0-9_-]+$/.test(e) && !/^[0-9]+$/.test(e)) {
        checkPeerRef(ctx, e, ['discovery', 'connect-to', j], 'connect-to')
        return
      }
      const r = parseEndpoint(e, 7443)
      if (r.error !== undefined) ctx.report(['discovery', 'connect-to', j], r.code, r.error)
    })
    if (d['public-address'] !== undefined) {
      const a = parseAddress(d['public-address'])
      if (a.error !== undefined) ctx.report(['discovery', 'public-address'], a.code, a.error)
    }
    const bootstrapMode = rec(raw.node)?.['bootstrap-mode'] === true || rec(raw.node)?.role === 'bootstrap'
    const hasCa = typeof rec(raw.network)?.ca === 'string'
    for (const k of ['dht', 'lan'] as const) {
      if (d[k] === true && !hasCa && !(k === 'dht' && bootstrapMode)) {
        ctx.report(['discovery', k], 'discovery-without-ca', `discovery.${k} finds members by their certificates, and this config names no network.ca (run 'quicether ca init', or join with 'quicether join')`)
      }
    }
    const listenPort = rec(raw.listen)?.port ?? 7443
    if (d.port !== undefined && d.port === listenPort && d.port !== 0) {
      ctx.report(['discovery', 'port'], 'discovery-port-clash', `discovery.port ${String(d.port)} is listen.port: the DHT needs its own UDP port (the tunnel port belongs to the forwarding plane)`)
    }
    if (d.dht === true && list(d.bootstrap).length === 0 && !bootstrapMode) {
      ctx.report(['discovery', 'dht'], 'dht-without-bootstrap', 'the DHT is on but discovery.bootstrap lists no bootstrap nodes, so it cannot find anyone', { severity: 'warning' })
    }
    if (d['advertise-as-bootstrap'] === true && d['public-address'] === undefined) {
      ctx.report(['discovery', 'advertise-as-bootstrap'], 'bootstrap-without-public-address', 'advertised as a bootstrap node without discovery.public-address: peers learn this node\'s address only once they reach it', { severity: 'warning' })
    }
  }

  checkPolicies(ctx)
}

function checkPolicies(ctx: RuleContext): void {
  const pol = rec(ctx.raw.policies)
  if (!pol) return
  const groups = rec(pol.groups) ?? {}
  for (const [g, members] of Object.entries(groups)) {
    list(members).forEach((m, j) => {
      if (typeof m === 'string') checkPeerRef(ctx, m, ['policies', 'groups', g, j], `group '${g}' member`, true)
    })
  }
  list(pol.rules).forEach((item, i) => {
    const r = rec(item)
    if (!r) return
    const from = str(r.from)
    if (from !== undefined && from !== 'any') {
      if (from.startsWith('group:')) {
        const g = from.slice(6)
        if (!ctx.groups.has(g)) ctx.report(['policies', 'rules', i, 'from'], 'unknown-group', `group '${g}' is not defined in policies.groups or any peer's groups${didYouMean(g, ctx.groups)}`)
      } else if (from.startsWith('peer:')) {
        checkPeerRef(ctx, from.slice(5), ['policies', 'rules', i, 'from'], 'policy source peer', true)
      } else {
        const p = parsePrefix(from.includes('/') ? from : hostPrefix(from))
        if (p.error !== undefined) ctx.report(['policies', 'rules', i, 'from'], p.code, from.includes('/') ? p.error : `'${from}' is not "any", "group:NAME", "peer:NAME", an IP address or a prefix`)
      }
    }
    const to = str(r.to)
    if (to !== undefined && to !== 'any') {
      const p = parsePrefix(to.includes('/') ? to : hostPrefix(to))
      if (p.error !== undefined) ctx.report(['policies', 'rules', i, 'to'], p.code, to.includes('/') ? p.error : `'${to}' is not "any", an IP address or a prefix`)
    }
    const ports = list(r.ports)
    ports.forEach((port, j) => {
      const pr = parsePortSpec(port)
      if (pr.error !== undefined) ctx.report(['policies', 'rules', i, 'ports', j], pr.code, pr.error)
    })
    if (ports.length > 0 && r.proto === 'icmp') {
      ctx.report(['policies', 'rules', i, 'ports'], 'ports-need-proto', 'ports do not apply to icmp; use proto: tcp, udp or any (tcp and udp)')
    }
  })
}

/** An IP written alone in a rule means that one host. */
export function hostPrefix(ip: string): string {
  const a = parseAddress(ip)
  return a.value ? `${a.value.text}/${WIDTH[a.value.family]}` : ip
}
