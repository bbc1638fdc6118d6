/**
 * Candidates: the addresses a peer may be reached at (its local ones, its
 * reflexive ones as others see them, the one a punch came from), checked,
 * ranked and classified. Pure but for `os.networkInterfaces()`, which the
 * caller may replace.
 */
import { networkInterfaces } from 'node:os'
import type { Endpoint } from '../config/types.js'
import { parseEndpointText } from '../discovery/record.js'
import { isDialable, parseAddress, parseCidr, prefixContains, type Prefix } from '../net/index.js'
import type { InterfaceTable } from '../discovery/endpoints.js'

/** Most candidates one introduction carries (a record holds 16 endpoints). */
export const MAX_CANDIDATES = 8

/** The subnets of this machine's interfaces (but the overlay TUN and loopback): a candidate in one is on a shared LAN. */
export function lanPrefixes(tun: string, interfaces: InterfaceTable = networkInterfaces()): Prefix[] {
  const out: Prefix[] = []
  for (const [name, infos] of Object.entries(interfaces)) {
    if (name === tun || !infos) continue
    for (const info of infos) {
      if (info.internal || !info.cidr || isLinkLocalText(info.address)) continue
      try {
        out.push(parseCidr(info.cidr.replace(/%[^/]*/, '')))
      } catch {
        // not an address we can read: not a LAN of ours
      }
    }
  }
  return out
}

function isLinkLocalText(a: string): boolean {
  return /^fe[89ab]/i.test(a)
}

export type PathKind = 'lan' | 'direct'

/** Whether an address is on one of this machine's LANs. */
export function isLan(host: string, lans: readonly Prefix[]): boolean {
  const ip = parseAddress(host).value
  return ip !== undefined && lans.some((p) => prefixContains(p, ip))
}

/**
 * Candidate texts from a peer (host:port, IP literals only): the dialable ones,
 * deduplicated, at most MAX_CANDIDATES, ranked LAN first, then IPv6, then
 * IPv4 (the order the users asked for: a LAN path beats any other, and
 * IPv6 needs no NAT). `refused` counts those dropped as malformed or not
 * dialable (loopback, multicast, link-local, unspecified).
 */
export function checkCandidates(texts: readonly string[], lans: readonly Prefix[]): { candidates: Endpoint[]; refused: number } {
  const seen = new Set<string>()
  const out: Endpoint[] = []
  let refused = 0
  for (const t of texts) {
    const e = parseEndpointText(t)
    if (!e || isDialable(e.host) !== true) {
      refused++
      continue
    }
    const id = `${e.host}|${e.port}`
    if (seen.has(id)) continue
    seen.add(id)
    out.push(e)
  }
  return { candidates: rankEndpoints(out, lans).slice(0, MAX_CANDIDATES), refused }
}

export function rankEndpoints(eps: readonly Endpoint[], lans: readonly Prefix[]): Endpoint[] {
  const rank = (e: Endpoint) => (isLan(e.host, lans) ? 0 : e.host.includes(':') ? 1 : 2)
  return eps.map((e, i) => ({ e, i })).sort((a, b) => rank(a.e) - rank(b.e) || a.i - b.i).map((x) => x.e)
}

/** How this node's NAT maps its tunnel socket, from what peers reported seeing. */
export type MappingBehaviour = 'none' | 'endpoint-independent' | 'address-dependent' | 'unknown'

/**
 * From reflexive observations (each: the reporter's IP, and the address and
 * port it saw us at): `none` when the address seen is one of our own (no
 * NAT), `endpoint-independent` when reporters at two or more IPs saw the same
 * port on the same address (a cone: punching works from any side),
 * `address-dependent` when they saw different ports (symmetric: only a peer
 * that lets anyone in can be reached directly), else `unknown`.
 */
export function mappingBehaviour(obs: readonly { reporter: string; address: string; port: number }[], ownAddresses: readonly string[], ownPort: number): MappingBehaviour {
  if (obs.length === 0) return 'unknown'
  if (obs.every((o) => o.port === ownPort && ownAddresses.includes(o.address))) return 'none'
  const byAddress = new Map<string, { reporters: Set<string>; ports: Set<number> }>()
  for (const o of obs) {
    let x = byAddress.get(o.address)
    if (!x) byAddress.set(o.address, (x = { reporters: new Set(), ports: new Set() }))
    x.reporters.add(o.reporter)
    x.ports.add(o.port)
  }
  for (const x of byAddress.values()) {
    if (x.reporters.size < 2) continue
    return x.ports.size === 1 ? 'endpoint-independent' : 'address-dependent'
  }
  return 'unknown'
}
