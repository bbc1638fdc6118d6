/**
 * The NAT types of the lab's NAT world, as RFC 4787 names their behaviour,
 * and the nftables table that makes an ISP router namespace behave so. Pure:
 * text in, text out; `nat-world.ts` loads the tables and `probeNat` measures
 * them.
 *
 *   type             mapping                     filtering
 *   public           none (the host is public)   none
 *   full-cone        endpoint-independent        endpoint-independent   (1:1: snat out, dnat in)
 *   restricted-cone  endpoint-independent        address-dependent      (1:1 + a set of contacted addresses)
 *   port-restricted  endpoint-independent        address-and-port-dep.  (snat + only conntrack replies in)
 *   symmetric        address-and-port-dep.       address-and-port-dep.  (snat random + only replies in)
 *
 * Endpoint-independent mapping relies on conntrack keeping the source port
 * when it can: with one host behind each router it always can. `random`
 * draws the port from a keyed hash of the destination address and port, so
 * each destination gets its own mapping.
 */

import { LabCommandError } from './errors.js'

export type NatType = 'public' | 'full-cone' | 'restricted-cone' | 'port-restricted' | 'symmetric'

export const NAT_TYPES: readonly NatType[] = Object.freeze(['public', 'full-cone', 'restricted-cone', 'port-restricted', 'symmetric'])

/** How a NAT picks the outside address:port of a flow (RFC 4787 §4.1); 'none' = no translation. */
export type NatMapping = 'none' | 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent'

/** Which outside endpoints may send in to a mapping (RFC 4787 §5); 'none' = nothing filtered, nothing translated. */
export type NatFiltering = 'none' | 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent'

export interface NatBehaviour {
  readonly mapping: NatMapping
  readonly filtering: NatFiltering
}

/** What each type promises (the table above). */
export const NAT_BEHAVIOUR: Readonly<Record<NatType, NatBehaviour>> = Object.freeze({
  public: { mapping: 'none', filtering: 'none' },
  'full-cone': { mapping: 'endpoint-independent', filtering: 'endpoint-independent' },
  'restricted-cone': { mapping: 'endpoint-independent', filtering: 'address-dependent' },
  'port-restricted': { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' },
  symmetric: { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent' },
})

export function isNatType(s: unknown): s is NatType {
  return typeof s === 'string' && (NAT_TYPES as readonly string[]).includes(s)
}

/**
 * Seconds an idle UDP mapping lives: conntrack's UDP timeouts in the router
 * namespace and the restricted cone's set. RFC 4787 REQ-5 asks for at least
 * 2 minutes; conntrack's default for a flow seen one way only is 30 s.
 */
export const NAT_MAPPING_TIMEOUT_S = 120

/** `sysctl -w` arguments for an ISP router namespace (its own conntrack; the host's is never touched). */
export function natSysctls(): string[] {
  return [`net.netfilter.nf_conntrack_udp_timeout=${NAT_MAPPING_TIMEOUT_S}`, `net.netfilter.nf_conntrack_udp_timeout_stream=${NAT_MAPPING_TIMEOUT_S + 60}`]
}

export interface NatRouterPlan {
  /** The router's interface towards its one host. */
  readonly lan: string
  /** The router's interface towards the internet router. */
  readonly wan: string
  /** The router's one public address (on `wan`). */
  readonly publicAddr: string
  /** The host's private address (the target of the cone types' inbound 1:1 dnat). */
  readonly hostAddr: string
}

/** The nftables table (family ip) that makes a router behave as `type`; null for 'public' (plain routing). */
export function natTypeTable(table: string, type: NatType, r: NatRouterPlan): string | null {
  if (type === 'public') return null
  const cone = type === 'full-cone' || type === 'restricted-cone'
  const l4 = 'meta l4proto { tcp, udp }'
  const lines = [`table ip ${table} {`]
  if (type === 'restricted-cone') {
    // (host port, remote address) pairs the host has sent to; refreshed by every outbound packet.
    lines.push(
      `  set contacted {`,
      `    type inet_service . ipv4_addr`,
      `    flags dynamic, timeout`,
      `    timeout ${NAT_MAPPING_TIMEOUT_S}s`,
      `  }`,
    )
  }
  if (cone) {
    lines.push(
      `  chain prerouting {`,
      `    type nat hook prerouting priority dstnat; policy accept;`,
      `    iifname "${r.wan}" ip daddr ${r.publicAddr} ${l4} dnat to ${r.hostAddr}`,
      `  }`,
    )
  }
  lines.push(
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    oifname "${r.wan}" snat to ${r.publicAddr}${type === 'symmetric' ? ' random' : ''}`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
  )
  if (type === 'restricted-cone') {
    lines.push(
      `    iifname "${r.lan}" ${l4} update @contacted { th sport . ip daddr }`,
      `    iifname "${r.wan}" ct state established,related accept`,
      `    iifname "${r.wan}" ${l4} th dport . ip saddr @contacted accept`,
    )
  }
  if (type !== 'full-cone') lines.push(`    iifname "${r.wan}" ct state new counter drop`)
  lines.push(
    `  }`,
    // Unsolicited TCP/UDP to the router itself is dropped silently (no ICMP port unreachable), as a home router does; ping still answers.
    `  chain input {`,
    `    type filter hook input priority filter; policy accept;`,
    `    iifname "${r.wan}" ct state new ${l4} drop`,
    `  }`,
    `}`,
    '',
  )
  return lines.join('\n')
}

/** What a probe saw: `local` is the socket's own address:port, `seen` what each pub endpoint saw as its source. */
export interface NatObservation {
  readonly local: string
  /** Source seen by pub IP1:port1, IP1:port2 and IP2:port1 from one socket (null = no answer). */
  readonly seen: { readonly ip1p1: string | null; readonly ip1p2: string | null; readonly ip2p1: string | null }
  /** After sending only to IP1:port1 from a fresh socket: which of pub's three endpoints got through to it. */
  readonly arrived: { readonly ip1p1: boolean; readonly ip1p2: boolean; readonly ip2p1: boolean }
}

/**
 * RFC 4787/5780 classification of an observation. Throws when the probe
 * got no answer from an endpoint (the world is broken, not the NAT).
 */
export function classifyNat(o: NatObservation): NatBehaviour {
  const { ip1p1, ip1p2, ip2p1 } = o.seen
  if (ip1p1 === null || ip1p2 === null || ip2p1 === null) throw new LabCommandError(`the NAT probe got no answer from every endpoint: ${JSON.stringify(o.seen)}`)
  if (!o.arrived.ip1p1) throw new LabCommandError('the NAT probe got no answer to its filtering request')
  let mapping: NatMapping
  if (ip1p1 === o.local && ip1p2 === o.local && ip2p1 === o.local) mapping = 'none'
  else if (ip1p1 === ip1p2 && ip1p1 === ip2p1) mapping = 'endpoint-independent'
  else if (ip1p1 === ip1p2) mapping = 'address-dependent'
  else mapping = 'address-and-port-dependent'
  let filtering: NatFiltering
  if (o.arrived.ip1p2 && o.arrived.ip2p1) filtering = mapping === 'none' ? 'none' : 'endpoint-independent'
  else if (o.arrived.ip1p2) filtering = 'address-dependent'
  else filtering = 'address-and-port-dependent'
  return { mapping, filtering }
}
