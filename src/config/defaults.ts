/**
 * Defaults the schema cannot state as constants, and the constant ones normalize uses.
 * A test checks that every `default` in the schema equals what normalize fills in.
 */
import { createHash } from 'node:crypto'
import { posix } from 'node:path'
import { parsePrefix } from '../net/index.js'

export const DEFAULT_STATE_DIR = '/var/lib/quicether'
export const DEFAULT_OVERLAY_IPV4 = '100.88.0.0/16'
export const DEFAULT_PORT = 7443

/** The discovery port beside a tunnel port: the next one (the one below for 65535; ephemeral stays ephemeral). */
export function defaultDiscoveryPort(listenPort: number): number {
  if (listenPort === 0) return 0
  return listenPort === 65535 ? 65534 : listenPort + 1
}

/** `<state-dir>/identity.key`. */
export function defaultIdentity(stateDir: string): string {
  return posix.join(stateDir, 'identity.key')
}

/**
 * The IPv6 overlay range of a network: a unique-local /48 (RFC 4193) whose 40-bit
 * global ID is the start of SHA-256("quicether-ula:" + network name). Every node of
 * the mesh derives the same range from the same name; different meshes almost surely differ.
 */
export function defaultOverlayIpv6(networkName: string): string {
  const h = createHash('sha256').update(`quicether-ula:${networkName}`).digest()
  const hex = (i: number): string => h[i]!.toString(16).padStart(2, '0')
  const text = `fd${hex(0)}:${hex(1)}${hex(2)}:${hex(3)}${hex(4)}::/48`
  return parsePrefix(text).value!.cidr
}

/** DSCP names → code points (RFC 2474, 2597, 3246, 5865). */
export function dscpValue(v: number | string): number {
  if (typeof v === 'number') return v
  const s = v.toUpperCase()
  if (s === 'EF') return 46
  if (s === 'VA') return 44
  const cs = /^CS([0-7])$/.exec(s)
  if (cs) return Number(cs[1]) * 8
  const af = /^AF([1-4])([1-3])$/.exec(s)
  if (af) return Number(af[1]) * 8 + Number(af[2]) * 2
  throw new RangeError(`unknown DSCP name ${v}`)
}
