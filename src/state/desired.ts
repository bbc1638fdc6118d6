/**
 * `desiredFromConfig(config, runtime)`: the kernel slice a node should have.
 *
 * - the overlay TUN, up, at the configured MTU (or the engine's for `auto`);
 * - its overlay addresses with the overlay range's prefix length, added
 *   `noprefixroute` so that the only route to the range is our marked one;
 * - in table 5280, proto quicether, all `dev <tun>`: the overlay ranges,
 *   configured `routes`, and subnets peers advertised (learned at runtime);
 *   one route per prefix, at the lowest metric asked for (the kernel only
 *   needs to send the prefix into the TUN; the engine picks the peer);
 * - one rule per family that looks table 5280 up, at priority 5280;
 * - IP forwarding on for gateways; IPv4 address promotion on the TUN (so an
 *   address change never leaves it without an address).
 */
import type { Config } from '../config/types.js'
import type { Address, DesiredState, Family, RuntimeInputs, Route, Rule } from './types.js'
import { parseCidr } from '../net/ip.js'
import { ROUTE_PROTOCOL, ROUTE_TABLE, RULE_PRIORITY_MIN } from './marks.js'
import { kernelMetric, normalizeState } from './normalize.js'

/** Metric of the overlay range route: before anything else on that prefix. */
export const OVERLAY_ROUTE_METRIC = 0
/** Metric of routes learned from peers when they do not say (configured routes default to 100). */
export const LEARNED_ROUTE_METRIC = 200

export const FORWARDING_SYSCTLS: Readonly<Record<string, string>> = Object.freeze({
  'net.ipv4.ip_forward': '1',
  'net.ipv6.conf.all.forwarding': '1',
})

/** The slice of `Config` the kernel state depends on. */
export type KernelConfig = Pick<Config, 'tun' | 'routes' | 'subnets'> & {
  readonly node: Pick<Config['node'], 'role'>
  readonly network: Pick<Config['network'], 'name' | 'overlay' | 'address'>
}

function tunRoute(dev: string, cidr: string, metric: number): Route {
  const p = parseCidr(cidr)
  return {
    family: p.family,
    table: ROUTE_TABLE,
    dst: p.cidr,
    type: 'unicast',
    dev,
    gateway: null,
    metric: kernelMetric(p.family, metric),
    protocol: ROUTE_PROTOCOL,
    scope: p.family === 4 ? 'link' : 'universe',
  }
}

function lookupRule(family: Family): Rule {
  return {
    family,
    priority: RULE_PRIORITY_MIN,
    table: ROUTE_TABLE,
    src: null,
    dst: null,
    fwmark: null,
    fwmask: null,
    iif: null,
    oif: null,
    invert: false,
    protocol: ROUTE_PROTOCOL,
  }
}

export function desiredFromConfig(config: KernelConfig, runtime: RuntimeInputs): DesiredState {
  const dev = config.tun.name
  const mtu = config.tun.mtu === 'auto' ? runtime.tunMtu : config.tun.mtu

  const addresses: Address[] = []
  const overlays: Array<[Family, string, string | null]> = [
    [4, config.network.overlay.ipv4, runtime.overlayAddresses.ipv4],
    [6, config.network.overlay.ipv6, runtime.overlayAddresses.ipv6],
  ]
  // Lowest metric per (family, prefix): one kernel route per prefix.
  const best = new Map<string, Route>()
  const offer = (route: Route): void => {
    const k = `${route.family}|${route.dst}`
    const cur = best.get(k)
    if (cur === undefined || route.metric < cur.metric) best.set(k, route)
  }

  for (const [family, range, address] of overlays) {
    if (!range) continue
    const p = parseCidr(range)
    if (p.family !== family) continue
    if (address !== null) addresses.push({ family, dev, address, prefixLen: p.prefixLen, noPrefixRoute: true })
    offer(tunRoute(dev, p.cidr, OVERLAY_ROUTE_METRIC))
  }
  for (const r of config.routes) offer(tunRoute(dev, r.to, r.metric))

  // A subnet this node serves itself must not be routed into the tunnel.
  const own = new Set(config.subnets.map((s) => parseCidr(s.prefix).cidr))
  for (const l of runtime.learnedRoutes) {
    const p = parseCidr(l.prefix)
    if (own.has(p.cidr)) continue
    offer(tunRoute(dev, p.cidr, l.metric ?? LEARNED_ROUTE_METRIC))
  }

  const routes = [...best.values()]
  const families = new Set(routes.map((r) => r.family))
  const rules = ([4, 6] as const).filter((f) => families.has(f)).map(lookupRule)
  const sysctls: Record<string, string> = config.node.role === 'gateway' ? { ...FORWARDING_SYSCTLS } : {}
  // Deleting a primary IPv4 address would take its secondaries along (and, as
  // the last address, every IPv4 route through the link): promote instead.
  // (An interface name with a dot cannot be spelled as a dotted sysctl key.)
  if (addresses.some((a) => a.family === 4) && !dev.includes('.')) sysctls[`net.ipv4.conf.${dev}.promote_secondaries`] = '1'

  return normalizeState({ links: [{ name: dev, mtu, up: true }], addresses, routes, rules, sysctls })
}
