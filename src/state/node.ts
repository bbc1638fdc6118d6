/**
 * The whole desired state of a node: the kernel slice and the engine slice,
 * from one pure function of the config and the facts the mesh reported.
 * The reconciler is the only writer of both (`src/reconcile/node.ts`).
 */
import type { Config } from '../config/types.js'
import { desiredFromConfig } from './desired.js'
import { engineFromConfig, type EngineState } from './engine.js'
import { computeMeshRoutes, type ConnectedPeer, type MeshRoutes } from './routes.js'
import type { KernelState } from './types.js'

export interface NodeState {
  readonly kernel: KernelState
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
}

/** The desired node state and the routes it came from (with the claims refused, for logs and status). */
export function desiredNode(config: Config, facts: NodeFacts, previous: MeshRoutes | null = null): { state: NodeState; routes: MeshRoutes } {
  const routes = computeMeshRoutes(config, facts.self, facts.peers, previous)
  const kernel = desiredFromConfig(config, {
    overlayAddresses: facts.self,
    learnedRoutes: routes.learned.map((l) => ({ prefix: l.prefix, peer: l.peer })),
    tunMtu: facts.tunMtu,
    exit: { ipv4: routes.exit?.ipv4.mode ?? 'off', ipv6: routes.exit?.ipv6.mode ?? 'off' },
  })
  const engine = engineFromConfig(config, { selfKey: facts.selfKey, fib: routes.fib })
  return { state: { kernel, engine }, routes }
}
