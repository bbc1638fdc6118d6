/**
 * The daemon configs of the bonding lab, as rewrites of the configs the lab
 * generates (`nodeconfig.ts`; kebab-case, the shape of
 * `schemas/quicether.schema.json`). Pure.
 *
 * Bonded, the client gets
 *   interfaces:   one uplink per link: its client-side interface name and
 *                 `bandwidth: { up, down }` from the link's rates (bits/s)
 *   multipath:    { mode, target: gateway, traffic-classes: small packets and
 *                 DSCP EF → lowest-latency } (`weighted`: see `multipathFor`)
 *   peers:        the gateway with its address on every link as `endpoints`
 * and the gateway gets `multipath: { accept: true }` and the same classes.
 *
 * Alone on one uplink (the baseline bonding is judged against), the client's
 * gateway entry lists only that link's gateway address, and neither side
 * gets any multipath setting.
 */
import { LabSpecError } from './errors.js'
import { GATEWAY, type BondMode } from './bond-spec.js'

/** What the configs need to know about one uplink's link. */
export interface BondLinkInfo {
  /** The link's interface in the client namespace (the uplink's name in `interfaces`). */
  readonly ifname: string
  /** The gateway's IPv4 address on this link. */
  readonly gatewayAddr: string
  /** client → gateway and gateway → client rates, bits/s. */
  readonly up: number
  readonly down: number
}

type Raw = Record<string, unknown>

/** DSCP EF, the class pings of the interactive check carry (ping -Q 184). */
export const INTERACTIVE_DSCP = 'EF'
/** Packets up to this size are interactive (pings, DNS, game and voice packets; a TCP connection stays in the sequence from its SYN). */
export const INTERACTIVE_MAX_PACKET = 256

/**
 * `multipath.mode` (and `scheduler`) for a lab mode. The config has no
 * `weighted` mode (weighting is a scheduler of `aggregate`) unless the
 * schema's mode list gains one: `schemaModes` is that list.
 */
export function multipathFor(mode: BondMode, schemaModes: readonly string[]): Raw {
  if (schemaModes.includes(mode)) return { mode }
  if (mode === 'weighted') return { mode: 'aggregate', scheduler: 'weighted' }
  throw new LabSpecError(`multipath mode '${mode}' is not in the config schema (${schemaModes.join(', ')})`)
}

function withGatewayEndpoints(config: Raw, endpoints: readonly string[]): Raw['peers'] {
  const peers = Array.isArray(config['peers']) ? (config['peers'] as Raw[]) : []
  if (!peers.some((p) => p['name'] === GATEWAY)) throw new LabSpecError(`the generated client config has no peer '${GATEWAY}'`)
  return peers.map((p) => (p['name'] === GATEWAY ? { ...p, endpoints: [...endpoints] } : p))
}

function endpoint(addr: string, port: number): string {
  return `${addr}:${port}`
}

/** The client's config for QuicEther over uplink `index` alone. */
export function singleUplinkClient(config: Readonly<Raw>, links: readonly BondLinkInfo[], index: number, port: number): Raw {
  const l = links[index]
  if (!l) throw new LabSpecError(`no uplink ${index + 1}`)
  return { ...config, peers: withGatewayEndpoints(config, [endpoint(l.gatewayAddr, port)]) }
}

export interface BondedClientInit {
  readonly links: readonly BondLinkInfo[]
  readonly mode: BondMode
  readonly port: number
  /** `multipath.mode` values the config schema accepts. */
  readonly schemaModes: readonly string[]
}

/** The client's config for QuicEther bonded over every uplink. */
export function bondedClient(config: Readonly<Raw>, init: BondedClientInit): Raw {
  const { links, mode } = init
  const interfaces = links.map((l, i) => {
    const u: Raw = { name: l.ifname, bandwidth: { up: Math.round(l.up), down: Math.round(l.down) } }
    if (mode === 'failover') {
      // Uplink 1 is the primary, the others back it up in the order given.
      u['role'] = i === 0 ? 'primary' : 'backup'
      u['priority'] = i * 10
    }
    if (mode === 'weighted') u['weight'] = Math.min(1000, Math.max(1, Math.round(l.up / 1e6)))
    return u
  })
  const multipath: Raw = {
    ...multipathFor(mode, init.schemaModes),
    target: GATEWAY,
    'traffic-classes': interactiveClasses(),
  }
  return {
    ...config,
    peers: withGatewayEndpoints(
      config,
      links.map((l) => endpoint(l.gatewayAddr, init.port)),
    ),
    interfaces,
    multipath,
  }
}

/** The interactive classes both ends use: DSCP EF and small packets go on the lowest-latency path. */
export function interactiveClasses(): Raw[] {
  return [
    { name: 'interactive-ef', match: { dscp: [INTERACTIVE_DSCP] }, path: 'lowest-latency' },
    { name: 'interactive-small', match: { 'max-packet-size': INTERACTIVE_MAX_PACKET }, path: 'lowest-latency' },
  ]
}

/**
 * The gateway's config for a bonded run: it accepts the client's paths, and
 * steers its own interactive packets (the replies) like the client does:
 * each side classifies what it sends.
 */
export function bondedGateway(config: Readonly<Raw>): Raw {
  const mp = typeof config['multipath'] === 'object' && config['multipath'] !== null ? (config['multipath'] as Raw) : {}
  return { ...config, multipath: { ...mp, accept: true, 'traffic-classes': interactiveClasses() } }
}
