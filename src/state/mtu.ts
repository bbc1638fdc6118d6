/**
 * The TUN MTU a node runs, from its config alone, so that `quicether plan`
 * (with or without a daemon) plans exactly what `quicether start` sets.
 */
import type { Config } from '../config/types.js'
import { tunMtuFor } from '../engine/engine.js'

/** The underlay path MTU assumed when the config says `tun.mtu: auto`. */
export const DEFAULT_PATH_MTU = 1500

/**
 * `tun.mtu`, or for `auto` the largest inner packet that fits one QUIC
 * datagram on a 1500-byte IPv6 path; a node that bonds (it has uplinks, or it
 * accepts bonded peers) leaves room for the bond's sequence number.
 */
export function tunMtuOf(config: Pick<Config, 'tun' | 'interfaces' | 'multipath'>): number {
  if (config.tun.mtu !== 'auto') return config.tun.mtu
  const bonded = config.interfaces.length > 0 || config.multipath.accept
  return tunMtuFor(DEFAULT_PATH_MTU, 6, { bonded })
}
