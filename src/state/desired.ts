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
 * - an exit (`exit-node`, or a route to `/0`), per family while it is in use:
 *   `default dev <tun>` in table 5281 (`unreachable default` while a required
 *   exit is down), a rule at 5281 that looks up `main` ignoring its default
 *   route (`suppress_prefixlength 0`: the LAN, link-local and every more
 *   specific route the machine has stay local), and a rule at 5282 that sends
 *   everything not carrying the tunnel's socket mark to table 5281 (the
 *   tunnel's own UDP, on every uplink, keeps the machine's default route);
 * - IP forwarding on for gateways (and, on a hub, no ICMP redirects: members
 *   behind one TUN must keep sending through the hub); IPv4 address
 *   promotion on the TUN (so an address change never leaves it without an
 *   address).
 */
import type { Config } from '../config/types.js'
import type { Address, DesiredState, ExitMode, Family, RuntimeInputs, Route, Rule } from './types.js'
import { parseCidr } from '../net/ip.js'
import { EXIT_TABLE, ROUTE_PROTOCOL, ROUTE_TABLE, RULE_PRIORITY_EXIT, RULE_PRIORITY_MAIN_SUPPRESS, RULE_PRIORITY_MIN, SOCKET_MARK } from './marks.js'
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
  readonly gateway?: Pick<Config['gateway'], 'forwardFor'>
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

function lookupRule(family: Family, priority = RULE_PRIORITY_MIN, table = ROUTE_TABLE): Rule {
  return {
    family,
    priority,
    table,
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

/** The kernel objects of one family's exit (none when `off`). */
function exitObjects(dev: string, family: Family, mode: ExitMode): { routes: Route[]; rules: Rule[] } {
  if (mode === 'off') return { routes: [], rules: [] }
  const dst = family === 4 ? '0.0.0.0/0' : '::/0'
  const route: Route = {
    family,
    table: EXIT_TABLE,
    dst,
    type: mode === 'tunnel' ? 'unicast' : 'unreachable',
    dev: mode === 'tunnel' ? dev : null,
    gateway: null,
    metric: kernelMetric(family, 0),
    protocol: ROUTE_PROTOCOL,
    scope: mode === 'tunnel' && family === 4 ? 'link' : 'universe',
  }
  const main: Rule = { ...lookupRule(family, RULE_PRIORITY_MAIN_SUPPRESS, 254), suppressPrefixLen: 0 }
  const exit: Rule = { ...lookupRule(family, RULE_PRIORITY_EXIT, EXIT_TABLE), fwmark: SOCKET_MARK, fwmask: 0xffffffff, invert: true }
  return { routes: [route], rules: [main, exit] }
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
  // A route to /0 is an exit: its own table and rules, below.
  for (const r of config.routes) if (!r.to.endsWith('/0')) offer(tunRoute(dev, r.to, r.metric))

  // A subnet this node serves itself must not be routed into the tunnel.
  const own = new Set(config.subnets.map((s) => parseCidr(s.prefix).cidr))
  for (const l of runtime.learnedRoutes) {
    const p = parseCidr(l.prefix)
    if (own.has(p.cidr)) continue
    offer(tunRoute(dev, p.cidr, l.metric ?? LEARNED_ROUTE_METRIC))
  }

  const routes = [...best.values()]
  const families = new Set(routes.map((r) => r.family))
  const rules = ([4, 6] as const).filter((f) => families.has(f)).map((f) => lookupRule(f))
  for (const [family, mode] of [[4, runtime.exit?.ipv4 ?? 'off'], [6, runtime.exit?.ipv6 ?? 'off']] as const) {
    const x = exitObjects(dev, family, mode)
    routes.push(...x.routes)
    rules.push(...x.rules)
  }
  const sysctls: Record<string, string> = config.node.role === 'gateway' ? { ...FORWARDING_SYSCTLS } : {}
  if (config.node.role === 'gateway' && (config.gateway?.forwardFor.length ?? 0) > 0 && !dev.includes('.')) {
    // The kernel ORs `all` and the device: both off, or members get redirects to each other they cannot use.
    sysctls['net.ipv4.conf.all.send_redirects'] = '0'
    sysctls[`net.ipv4.conf.${dev}.send_redirects`] = '0'
  }
  // Deleting a primary IPv4 address would take its secondaries along (and, as
  // the last address, every IPv4 route through the link): promote instead.
  // (An interface name with a dot cannot be spelled as a dotted sysctl key.)
  if (addresses.some((a) => a.family === 4) && !dev.includes('.')) sysctls[`net.ipv4.conf.${dev}.promote_secondaries`] = '1'

  return normalizeState({ links: [{ name: dev, mtu, up: true }], addresses, routes, rules, sysctls })
}
