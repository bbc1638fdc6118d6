/**
 * What a gateway's own nftables table must hold, from its config and what the
 * mesh reported (pure): masquerade for the exits it offers and the LANs it
 * masquerades, DNAT for its public ingress ports.
 *
 * Ingress keeps the client's source address only toward a member that sends
 * its internet traffic through this gateway (its hello names this node as its
 * exit): only then do the target's replies to an internet address come back
 * here, where conntrack undoes the DNAT. Toward any other target the gateway
 * masquerades, so the target sees this gateway's overlay address and replies
 * through the tunnel it came by.
 */
import type { Config } from '../config/types.js'
import { parseAddress } from '../net/index.js'
import type { FirewallInputs, IngressRule } from './firewall.js'
import type { ConnectedPeer } from './routes.js'

export interface GatewayFacts {
  /** Connected peers and their hellos. */
  readonly peers: readonly ConnectedPeer[]
  /** A member's overlay addresses by name (its hello's when connected, else derived or certified); null: unknown. */
  readonly memberAddress: (name: string) => { readonly ipv4: string | null; readonly ipv6: string | null } | null
}

export function firewallInputs(config: Pick<Config, 'node' | 'tun' | 'subnets' | 'gateway'>, facts: GatewayFacts): FirewallInputs {
  const gateway = config.node.role === 'gateway'
  const exit = {
    ipv4: gateway && config.subnets.some((s) => s.exit && s.prefix === '0.0.0.0/0'),
    ipv6: gateway && config.subnets.some((s) => s.exit && s.prefix === '::/0'),
  }
  const masquerade = gateway ? config.subnets.filter((s) => s.masquerade && !s.prefix.endsWith('/0')).map((s) => s.prefix) : []
  const ingress: IngressRule[] = []
  if (gateway) {
    for (const g of config.gateway.ingress) {
      const listen = parseAddress(g.listen.host).value
      if (!listen) continue
      const family = listen.family
      const any = listen.text === '0.0.0.0' || listen.text === '::'
      let toAddress: string | null
      let usesUsAsExit = false
      if (g.to.kind === 'address') toAddress = g.to.address
      else {
        const name = g.to.peer
        const connected = facts.peers.find((p) => p.configName === name)
        const addrs = connected?.hello?.overlay ?? facts.memberAddress(name)
        toAddress = (family === 4 ? addrs?.ipv4 : addrs?.ipv6) ?? null
        usesUsAsExit = connected?.hello?.exit === config.node.name
      }
      if (toAddress === null || parseAddress(toAddress).value?.family !== family) continue
      ingress.push({ proto: g.proto, family, listenAddress: any ? null : listen.text, listenPort: g.listen.port, toAddress, toPort: g.to.port, masquerade: !usesUsAsExit })
    }
  }
  const hub = gateway && config.gateway.forwardFor.length > 0
  return { tun: config.tun.name, exit, masquerade, ingress, clampMss: exit.ipv4 || exit.ipv6 || masquerade.length > 0 || ingress.length > 0 || hub }
}
