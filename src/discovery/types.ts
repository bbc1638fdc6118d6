/**
 * The public face of discovery: what the daemon and status see.
 *
 * Discovery hands the daemon facts (the verified members and the revocation
 * list: a `Membership`); the daemon turns them into desired state and the
 * reconciler sets the engine's allowed keys and routes. Discovery never sets
 * a table and never dials: the mesh dials what the membership names.
 */
import type { RecordRefusal } from './record.js'
import type { RecordSource } from './members.js'

export interface DiscoveredMemberStatus {
  readonly name: string
  readonly key: string
  readonly via: RecordSource
  readonly endpoints: readonly string[]
  /** Endpoints seen on a shared LAN segment. */
  readonly lan: readonly string[]
  readonly certificateExpires: number
  readonly since: number
}

export interface DiscoveryStatus {
  /** Members are found (network.ca, the secret and a valid certificate are all there). */
  readonly enabled: boolean
  /** Why member discovery is off or degraded (missing secret, bad certificate, …); null when all is well. */
  readonly problem: string | null
  readonly certificate: { readonly name: string; readonly notAfter: number; readonly groups: readonly string[] } | null
  readonly members: readonly DiscoveredMemberStatus[]
  readonly revocations: { readonly seq: number; readonly revoked: number } | null
  readonly refusals: Readonly<Record<RecordRefusal | 'revocations', number>>
  readonly dht: { readonly port: number; readonly bootstrap: readonly string[]; readonly rendezvous: boolean; readonly stats: Readonly<Record<string, number>> } | null
  readonly lan: Readonly<Record<string, number>> | null
  readonly join: Readonly<Record<string, number>> | null
}
