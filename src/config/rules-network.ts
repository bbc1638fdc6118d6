/** Rules for addresses and prefixes: overlay, this node's address, subnets, routes, gateway. */
import { DEFAULT_OVERLAY_IPV4, defaultOverlayIpv6 } from './defaults.js'
import type { Family, Prefix } from '../net/index.js'
import { findOverlaps, parseAddress, parsePrefix, prefixContains, prefixesOverlap } from '../net/index.js'
import { parseEndpoint } from './syntax.js'
import type { Path } from './positions.js'
import type { RuleContext } from './rules.js'
import { list, rec, str } from './rules.js'
import { checkPeerRef } from './rules-peers.js'
import { parseBitrate } from './units.js'

interface Placed {
  prefix: Prefix
  path: Path
}

export function checkNetwork(ctx: RuleContext): void {
  const overlays = checkOverlay(ctx)
  const subnets = checkSubnets(ctx)
  const routes = checkRoutes(ctx, subnets)

  // The overlay must not collide with anything routed through it. A default route (/0)
  // covers everything by design, so it is left out.
  for (const o of overlays) {
    for (const x of [...subnets, ...routes]) {
      if (x.prefix.prefixLen === 0 || !prefixesOverlap(o.prefix, x.prefix)) continue
      const what = x.path[0] === 'subnets' ? 'advertised subnet' : 'route to'
      ctx.report(x.path, 'overlay-overlap', `${what} ${x.prefix.cidr} overlaps the overlay range ${o.prefix.cidr} (network.overlay.${FAMILY_KEY[o.prefix.family]}); pick a different overlay range or subnet`)
    }
  }
  checkGateway(ctx)
  checkListeners(ctx)
}

function checkOverlay(ctx: RuleContext): Placed[] {
  const net = rec(ctx.raw.network)
  const overlay = rec(net?.overlay)
  const out: Placed[] = []
  const netName = str(net?.name)
  for (const family of [4, 6] as const) {
    const key = FAMILY_KEY[family]
    const path = ['network', 'overlay', key]
    // Absent: the default range, which is checked against subnets and routes all the same.
    const text = overlay?.[key] ?? (family === 4 ? DEFAULT_OVERLAY_IPV4 : netName !== undefined ? defaultOverlayIpv6(netName) : undefined)
    if (text === undefined) continue
    const p = parsePrefix(text)
    if (p.error !== undefined) ctx.report(path, p.code, p.error)
    else if (p.value.family !== family) ctx.report(path, 'bad-cidr', `network.overlay.${key} must be an IPv${family} prefix, not ${p.value.cidr}`)
    else out.push({ prefix: p.value, path })
  }
  const address = rec(net?.address)
  for (const family of [4, 6] as const) {
    const key = FAMILY_KEY[family]
    if (address?.[key] === undefined) continue
    const path = ['network', 'address', key]
    const a = parseAddress(address[key])
    if (a.error !== undefined) {
      ctx.report(path, a.code, a.error)
      continue
    }
    if (a.value.family !== family) {
      ctx.report(path, 'bad-ip', `network.address.${key} must be an IPv${family} address, not ${a.value.text}`)
      continue
    }
    const range = out.find((o) => o.prefix.family === family)?.prefix
    if (!range) continue
    if (!prefixContains(range, a.value)) {
      ctx.report(path, 'address-outside-overlay', `${a.value.text} is outside the overlay range ${range.cidr} (network.overlay.${key})`)
    } else if (family === 4 && range.prefixLen < 31 && (a.value.n === range.first || a.value.n === range.last)) {
      ctx.report(path, 'address-reserved', `${a.value.text} is the ${a.value.n === range.first ? 'network' : 'broadcast'} address of ${range.cidr}; pick a host address`)
    }
  }
  return out
}

function checkSubnets(ctx: RuleContext): Placed[] {
  const placed: Placed[] = []
  list(ctx.raw.subnets).forEach((item, i) => {
    const obj = rec(item)
    const text = obj ? obj.prefix : item
    if (typeof text !== 'string') return
    const path: Path = obj ? ['subnets', i, 'prefix'] : ['subnets', i]
    const p = parsePrefix(text)
    if (p.error !== undefined) {
      ctx.report(path, p.code, p.error)
      return
    }
    const exit = obj?.exit === true
    if (obj?.masquerade === true && ctx.role !== 'gateway') {
      ctx.report(['subnets', i, 'masquerade'], 'masquerade-on-client', 'masquerade needs node.role: gateway (a client forwards nothing); it is not acted on here', { severity: 'warning', at: 'key' })
    }
    if (p.value.prefixLen === 0) {
      if (!exit) ctx.report(path, 'exit-not-marked', `${p.value.cidr} is a default route: advertising it makes this node an internet exit; if that is meant, write { prefix: ${p.value.cidr}, exit: true }`)
      else if (ctx.role !== 'gateway') ctx.report(path, 'exit-on-client', `an exit (${p.value.cidr}) needs node.role: gateway (it forwards and masquerades the mesh's internet traffic); peers refuse an exit offered by a ${ctx.role}`)
      return // an exit covers everything by design: no overlap checks
    }
    placed.push({ prefix: p.value, path })
  })
  for (const { item, other } of findOverlaps(placed)) {
    const same = item.prefix.cidr === other.prefix.cidr
    ctx.report(item.path, 'subnet-overlap', same ? `subnet ${item.prefix.cidr} is advertised twice (also at ${ctx.where(other.path)})` : `subnet ${item.prefix.cidr} overlaps ${other.prefix.cidr} (${ctx.where(other.path)})`)
  }
  return placed
}

function checkRoutes(ctx: RuleContext, subnets: readonly Placed[]): Placed[] {
  const placed: Placed[] = []
  const seen = new Map<string, number>()
  // Own subnets sorted by start, for "is this route inside a subnet we advertise" by binary search.
  const own = [...subnets].sort((a, b) => cmp(a.prefix, b.prefix))
  list(ctx.raw.routes).forEach((item, i) => {
    const r = rec(item)
    if (!r) return
    const via = str(r.via)
    if (via !== undefined) checkPeerRef(ctx, via, ['routes', i, 'via'], 'route via')
    if (typeof r.to !== 'string') return
    const path: Path = ['routes', i, 'to']
    const p = parsePrefix(r.to)
    if (p.error !== undefined) {
      ctx.report(path, p.code, p.error)
      return
    }
    placed.push({ prefix: p.value, path })
    const metric = typeof r.metric === 'number' ? r.metric : 100
    const id = `${p.value.cidr} ${metric}`
    const first = seen.get(id)
    if (first !== undefined) {
      ctx.report(path, 'route-duplicate', `a route to ${p.value.cidr} with metric ${metric} already exists (${ctx.where(['routes', first, 'to'])}); give one of them a different metric to make it a backup`)
    } else seen.set(id, i)
    if (p.value.prefixLen === 0) {
      // A default route through a peer makes it this node's exit (as exit-node does): policy routing keeps the tunnel's own UDP out.
      const exitNode = str(ctx.raw['exit-node'])
      if (exitNode !== undefined && via !== undefined && via !== exitNode) {
        ctx.report(['routes', i, 'via'], 'exit-conflict', `a route to ${p.value.cidr} via '${via}' makes '${via}' an exit, but exit-node is '${exitNode}'; keep one`)
      }
      return
    }
    const s = containing(own, p.value)
    if (s) {
      ctx.report(path, 'route-overlaps-subnet', `route to ${p.value.cidr} points into ${s.prefix.cidr}, which this node advertises itself (${ctx.where(s.path)})`)
    }
  })
  return placed
}

function cmp(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1
  return a.first < b.first ? -1 : a.first > b.first ? 1 : a.prefixLen - b.prefixLen
}

/** The subnet (sorted, non-overlapping) that contains `p`, if any: O(log n). */
function containing(sorted: readonly Placed[], p: Prefix): Placed | undefined {
  let lo = 0
  let hi = sorted.length - 1
  let best: Placed | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const s = sorted[mid]!
    if (s.prefix.family < p.family || (s.prefix.family === p.family && s.prefix.first <= p.first)) {
      if (s.prefix.family === p.family) best = s
      lo = mid + 1
    } else hi = mid - 1
  }
  return best && best.prefix.last >= p.last ? best : undefined
}

/** A member by name: a listed peer, or (with a network CA) any certified member's name. */
function checkMemberRef(ctx: RuleContext, name: string, path: (string | number)[], what: string): void {
  if (rec(rec(ctx.raw.network))?.ca !== undefined && !ctx.peers.has(name) && name !== ctx.nodeName) return
  checkPeerRef(ctx, name, path, what)
}

function checkExit(ctx: RuleContext): void {
  const exitNode = ctx.raw['exit-node']
  if (typeof exitNode === 'string') checkMemberRef(ctx, exitNode, ['exit-node'], 'exit-node')
  if (ctx.raw['exit-node-required'] === true && typeof exitNode !== 'string' && !list(ctx.raw.routes).some((r) => typeof rec(r)?.to === 'string' && String(rec(r)?.to).endsWith('/0'))) {
    ctx.report(['exit-node-required'], 'exit-required-without-exit', 'exit-node-required has no effect without exit-node (or a route to 0.0.0.0/0 or ::/0)', { severity: 'warning', at: 'key' })
  }
}

function checkIngress(ctx: RuleContext): void {
  const seen = new Map<string, Path>()
  list(rec(ctx.raw.gateway)?.ingress).forEach((item, i) => {
    const r = rec(item)
    if (!r) return
    const base: Path = ['gateway', 'ingress', i]
    const listen = parseEndpoint(r.listen)
    if (listen.error !== undefined) ctx.report([...base, 'listen'], listen.code, listen.error)
    else if (parseAddress(listen.value.host).error !== undefined) ctx.report([...base, 'listen'], 'bad-ip', `ingress listens on an address of this node, not a name: write 0.0.0.0:${listen.value.port} (every IPv4 address), [::]:${listen.value.port} or one of its addresses`)
    else {
      const proto = typeof r.proto === 'string' ? r.proto : 'tcp'
      const id = `${proto} ${listen.value.host} ${listen.value.port}`
      const first = seen.get(id)
      if (first !== undefined) ctx.report([...base, 'listen'], 'ingress-duplicate', `${proto} ${String(r.listen)} is forwarded twice (also at ${ctx.where(first)})`)
      else seen.set(id, [...base, 'listen'])
    }
    const to = parseEndpoint(r.to)
    if (to.error !== undefined) ctx.report([...base, 'to'], to.code, to.error)
    else {
      const ip = parseAddress(to.value.host)
      if (ip.error !== undefined) checkMemberRef(ctx, to.value.host, [...base, 'to'] as (string | number)[], 'ingress to')
      else if (listen.value && parseAddress(listen.value.host).value && parseAddress(listen.value.host).value?.family !== ip.value.family) {
        ctx.report([...base, 'to'], 'ingress-family', `ingress from ${String(r.listen)} to ${String(r.to)} mixes IPv4 and IPv6; NAT keeps the family`)
      }
    }
  })
  if (ctx.role !== 'gateway' && list(rec(ctx.raw.gateway)?.ingress).length > 0) {
    ctx.report(['gateway', 'ingress'], 'ingress-on-client', 'gateway.ingress needs node.role: gateway (IP forwarding); it is not acted on here', { severity: 'warning', at: 'key' })
  }
}

function checkGateway(ctx: RuleContext): void {
  checkExit(ctx)
  checkIngress(ctx)
  const gw = rec(ctx.raw.gateway)
  const forwardFor = list(gw?.['forward-for'])
  forwardFor.forEach((f, i) => {
    if (typeof f !== 'string') return
    const path = ['gateway', 'forward-for', i]
    if (f.includes('/')) {
      const p = parsePrefix(f)
      if (p.error !== undefined) ctx.report(path, p.code, p.error)
    } else {
      checkPeerRef(ctx, f, path, 'forward-for')
    }
  })
  if (gw?.['advertise-bandwidth'] !== undefined) {
    const b = parseBitrate(gw['advertise-bandwidth'])
    if (b.error !== undefined) ctx.report(['gateway', 'advertise-bandwidth'], 'bad-unit', b.error)
  }
  if (ctx.role === 'client') {
    const set = [
      forwardFor.length > 0 && 'gateway.forward-for',
      gw?.relay === true && 'gateway.relay',
      gw?.['advertise-bandwidth'] !== undefined && 'gateway.advertise-bandwidth',
    ].filter((x): x is string => typeof x === 'string')
    if (set.length > 0) {
      ctx.report(['gateway'], 'gateway-settings-on-client', `${set.join(', ')} ${set.length > 1 ? 'have' : 'has'} no effect on a client; set node.role: gateway`, { severity: 'warning', at: 'key' })
    }
  }
}

function checkListeners(ctx: RuleContext): void {
  const seen = new Map<string, Path>()
  for (const section of ['metrics', 'ui'] as const) {
    const listen = rec(ctx.raw[section])?.listen
    if (listen === undefined) continue
    const path = [section, 'listen']
    const e = parseEndpoint(listen)
    if (e.error !== undefined) {
      ctx.report(path, e.code, e.error)
      continue
    }
    const id = `${e.value.host}:${e.value.port}`
    const other = seen.get(id)
    if (other) ctx.report(path, 'bad-value', `${section}.listen uses the same address as ${other.join('.')} (${ctx.where(other)})`)
    else seen.set(id, path)
  }
}

/** The config's key for each family (`network.overlay.ipv4`). */
const FAMILY_KEY: Record<Family, 'ipv4' | 'ipv6'> = { 4: 'ipv4', 6: 'ipv6' }
