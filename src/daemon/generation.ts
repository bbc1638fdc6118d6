/**
 * A generation: one validated config and everything derived from it that the
 * subsystems share (identity, overlay addresses, TUN MTU). Built whole before
 * it replaces the running one; a build that fails leaves the old one running.
 */
import type { Config } from '../config/index.js'
import { deriveOverlayAddresses, loadIdentity, publicKeyBase64, type Identity } from '../mesh/identity.js'
import { tunMtuOf } from '../state/mtu.js'

export interface Generation {
  readonly config: Config
  readonly identity: Identity
  readonly selfKey: string
  readonly self: { readonly ipv4: string; readonly ipv6: string }
  readonly tunMtu: number
}

export async function prepareGeneration(config: Config): Promise<Generation> {
  const identity = await loadIdentity(config.node.identity)
  const selfKey = publicKeyBase64(identity)
  const derived = deriveOverlayAddresses(identity.publicKey, config.network.overlay.ipv4, config.network.overlay.ipv6)
  const self = { ipv4: config.network.address.ipv4 ?? derived.ipv4, ipv6: config.network.address.ipv6 ?? derived.ipv6 }
  return { config, identity, selfKey, self, tunMtu: tunMtuOf(config) }
}

/**
 * Identity, listen socket, TUN name or TUN MTU changed: the engine is built
 * again (tunnels are rebuilt in-process; no process restart).
 */
export function needsEngineRestart(prev: Generation, next: Generation): boolean {
  return (
    next.selfKey !== prev.selfKey ||
    next.config.listen.address !== prev.config.listen.address ||
    next.config.listen.port !== prev.config.listen.port ||
    next.config.tun.name !== prev.config.tun.name
  )
}
