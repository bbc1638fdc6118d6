/**
 * Membership: which keys this node admits, from its config and from what
 * discovery verified. Pure.
 *
 * - `peers:` pins keys: a listed key is admitted with or without a
 *   certificate, under the config's name, and its hellos are not limited by
 *   a certificate (the operator vouched for it).
 * - A member with a valid certificate of the network (discovery checked the
 *   CA, the network, the validity and the revocation list) is admitted under
 *   its certificate's name; what its hello may claim is limited to the
 *   overlay addresses and subnets its certificate names.
 * - A revoked key is cut off, pinned or not: revocation is the CA's word,
 *   and the reason the list exists.
 * - A certificate whose name is a pinned peer's name (another key) is not
 *   admitted: names are how routes, connect-to and policies refer to peers.
 */
import type { Config, Endpoint, PeerConfig } from '../config/types.js'

/** A member admitted by certificate, as desired state sees it. */
export interface CertifiedMember {
  readonly key: string
  readonly name: string
  readonly groups: readonly string[]
  readonly ipv4: string | null
  readonly ipv6: string | null
  /** Canonical CIDRs the certificate lets it advertise. */
  readonly subnets: readonly string[]
  /** Where its tunnel listens (from its record), preferred first. */
  readonly endpoints: readonly Endpoint[]
}

export interface Membership {
  readonly members: readonly CertifiedMember[]
  /** Keys on the newest verified revocation list. */
  readonly revoked: readonly string[]
}

export const NO_MEMBERSHIP: Membership = Object.freeze({ members: Object.freeze([]), revoked: Object.freeze([]) })

/** What a certificate lets a member claim in its hellos. */
export interface PeerLimits {
  readonly overlay: readonly string[]
  readonly subnets: readonly string[]
}

export interface EffectivePeers {
  /** Pinned peers (revoked ones cut) then certified members, each key once. */
  readonly peers: readonly PeerConfig[]
  /** Per certified (not pinned) member key: what its hellos may claim. */
  readonly limits: ReadonlyMap<string, PeerLimits>
  /** Certified members not admitted because a pinned peer has their name. */
  readonly nameClashes: readonly { readonly key: string; readonly name: string }[]
  /** Pinned peers cut off because their key is revoked. */
  readonly revokedPinned: readonly string[]
}

export function effectivePeers(config: Pick<Config, 'peers'>, membership: Membership, selfKey: string): EffectivePeers {
  const revoked = new Set(membership.revoked)
  const peers: PeerConfig[] = []
  const revokedPinned: string[] = []
  const pinned = new Map<string, PeerConfig>()
  for (const p of config.peers) {
    if (revoked.has(p.key)) {
      revokedPinned.push(p.name)
      continue
    }
    pinned.set(p.key, p)
  }
  const certified = new Map(membership.members.filter((m) => !revoked.has(m.key) && m.key !== selfKey).map((m) => [m.key, m]))
  for (const p of pinned.values()) {
    const m = certified.get(p.key)
    // Pinned and certified: the config's name and endpoints first, then what its record says.
    peers.push(m ? { ...p, endpoints: mergeEndpoints(p.endpoints, m.endpoints) } : p)
  }
  const takenNames = new Set(config.peers.map((p) => p.name))
  const limits = new Map<string, PeerLimits>()
  const nameClashes: { key: string; name: string }[] = []
  for (const m of [...certified.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    if (pinned.has(m.key)) continue
    if (takenNames.has(m.name)) {
      nameClashes.push({ key: m.key, name: m.name })
      continue
    }
    takenNames.add(m.name)
    peers.push({ name: m.name, key: m.key, endpoints: [...m.endpoints], groups: [...m.groups] })
    limits.set(m.key, { overlay: [m.ipv4, m.ipv6].filter((a): a is string => a !== null), subnets: [...m.subnets] })
  }
  return { peers, limits, nameClashes, revokedPinned }
}

/** The config as the rest of the node sees it: `peers` are the effective peers (a new frozen object; the file's config is untouched). */
export function withPeers<C extends Config>(config: C, peers: readonly PeerConfig[]): C {
  return Object.freeze({ ...config, peers: Object.freeze([...peers]) })
}

function mergeEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): Endpoint[] {
  const out = [...a]
  for (const e of b) if (!out.some((x) => x.host === e.host && x.port === e.port)) out.push(e)
  return out
}
