/**
 * The whole desired state of a node: the kernel slice and the engine slice,
 * from one pure function of the config and the facts the mesh reported.
 * The reconciler is the only writer of both (`src/reconcile/node.ts`).
 */
import type { Config } from '../config/types.js'
import { desiredFromConfig } from './desired.js'
import { engineFromConfig, type EngineState } from './engine.js'
import { compilePolicy, type PolicyMember, type PolicyTable } from '../policy/policy.js'
import { packPolicy } from '../policy/pack.js'
import { parseCidr, prefixContains } from '../net/ip.js'
import { computeMeshRoutes, type ConnectedPeer, type MeshRoutes } from './routes.js'
import type { KernelState } from './types.js'
import { firewallFromInputs, type FirewallState } from './firewall.js'
import { firewallInputs } from './gateway.js'

export interface NodeState {
  readonly kernel: KernelState
  /** The node's nftables table (masquerade, ingress); `empty` on most nodes. */
  readonly firewall: FirewallState
  readonly engine: EngineState
}

/** Facts next to the config: who this node is, and what the mesh learned. */
export interface NodeFacts {
  readonly selfKey: string
  /** This node's overlay addresses (configured or derived from its key). */
  readonly self: { readonly ipv4: string; readonly ipv6: string }
  readonly tunMtu: number
  /** Connected peers and their last hello. */
  readonly peers: readonly ConnectedPeer[]
  /** A member's overlay addresses by name (for ingress targets that are not connected); absent: connected peers only. */
  readonly memberAddress?: (name: string) => { readonly ipv4: string | null; readonly ipv6: string | null } | null
}

/** The desired node state and the routes it came from (with the claims refused, for logs and status). */
export function desiredNode(
  config: Config,
  facts: NodeFacts,
  previous: MeshRoutes | null = null,
): { state: NodeState; routes: MeshRoutes; policy: { table: PolicyTable; origins: readonly number[] } | null } {
  const routes = computeMeshRoutes(config, facts.self, facts.peers, previous)
  const kernel = desiredFromConfig(config, {
    overlayAddresses: facts.self,
    learnedRoutes: routes.learned.map((l) => ({ prefix: l.prefix, peer: l.peer })),
    tunMtu: facts.tunMtu,
    exit: { ipv4: routes.exit?.ipv4.mode ?? 'off', ipv6: routes.exit?.ipv6.mode ?? 'off' },
  })
  const policy = config.policies.enforced ? compilePolicy(config, policyMembers(config, facts.self, routes.fib)) : null
  const packed = policy ? packPolicy(policy) : null
  const engine = engineFromConfig(config, { selfKey: facts.selfKey, fib: routes.fib, acl: packed?.acl ?? '' })
  const firewall = firewallFromInputs(firewallInputs(config, { peers: facts.peers, memberAddress: facts.memberAddress ?? (() => null) }))
  return { state: { kernel, firewall, engine }, routes, policy: policy && packed ? { table: policy, origins: packed.origins } : null }
}

/**
 * The policy's members: this node by its own addresses, each peer by the
 * overlay host routes the forwarding table holds for its key (exactly what
 * the engine's anti-spoofing lets it source; a peer not connected sources
 * nothing).
 */
export function policyMembers(config: Config, self: { readonly ipv4: string; readonly ipv6: string }, fib: readonly { readonly prefix: string; readonly peer: string }[]): PolicyMember[] {
  const v4 = parseCidr(config.network.overlay.ipv4)
  const v6 = parseCidr(config.network.overlay.ipv6)
  const hosts = new Map<string, string[]>()
  for (const e of fib) {
    const p = parseCidr(e.prefix)
    const host = p.prefixLen === (p.family === 4 ? 32 : 128)
    const inside = prefixContains(p.family === 4 ? v4 : v6, { family: p.family, text: p.network, n: p.first })
    if (host && inside) hosts.set(e.peer, [...(hosts.get(e.peer) ?? []), p.network])
  }
  return [
    { name: config.node.name, addresses: [self.ipv4, self.ipv6], groups: [] },
    ...config.peers.map((p) => ({ name: p.name, addresses: hosts.get(p.key) ?? [], groups: p.groups })),
  ]
}

