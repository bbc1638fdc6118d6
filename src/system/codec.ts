/**
 * Records (`src/system/types.ts`) ⇄ rtnetlink message bodies of the
 * `netlink` package. Pure functions; interface names and indexes are
 * translated through the maps the caller passes in.
 */
import netlink from 'netlink'
import type { rt } from 'netlink'
import type { Address, Family, Link, Route, RouteScope, RouteType, Rule } from './types.js'
import { bytesToIp, ipToBytes, parseCidr } from '../net/ip.js'
import { InvalidRecordError } from './errors.js'
import { decodeRouteBody, type RouteBody } from './wire.js'

const AF_INET = 2
const AF_INET6 = 10
/** rtm_table value meaning "see RTA_TABLE" (tables above 255 do not fit the u8). */
const RT_TABLE_UNSPEC = 0

export function familyToAf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6
}

export function afToFamily(af: number | undefined): Family | null {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : null
}

type NameOf = (index: number) => string
type IndexOf = (name: string) => number

/** Name for an index that has no link (any more): `#7`. */
export function unknownDev(index: number): string {
  return `#${index}`
}

// ---- links ----

export function parseLink(msg: rt.LinkMessage): Link | null {
  const name = msg.attrs.ifname
  if (name === undefined || msg.data.index === undefined) return null
  return { name, index: msg.data.index, mtu: msg.attrs.mtu ?? 0, up: msg.data.flags?.up === true }
}

// ---- addresses ----

export function parseAddress(msg: rt.AddressMessage, nameOf: NameOf): Address | null {
  const family = afToFamily(msg.data.family)
  const raw = msg.attrs.local ?? msg.attrs.address
  if (family === null || raw === undefined || msg.data.index === undefined) return null
  const flags = msg.attrs.flags ?? msg.data.flags ?? {}
  return {
    family,
    dev: nameOf(msg.data.index),
    address: bytesToIp(raw),
    prefixLen: msg.data.prefixlen ?? 0,
    noPrefixRoute: flags.noprefixroute === true,
  }
}

export function formatAddress(a: Address, indexOf: IndexOf): { data: rt.Address; attrs: rt.AddressAttrs } {
  const bytes = ipToBytes(a.address)
  checkFamily(a.family, bytes, `address ${a.address}`)
  const flags: rt.AddressFlags = {}
  if (a.noPrefixRoute) flags.noprefixroute = true
  // No duplicate address detection on an overlay: the mesh assigns addresses.
  if (a.family === 6) flags.nodad = true
  return {
    data: { family: familyToAf(a.family), prefixlen: a.prefixLen, index: indexOf(a.dev), scope: 0 },
    attrs: { local: bytes, address: bytes, flags },
  }
}

// ---- routes ----

const ROUTE_TYPES: Record<string, RouteType> = {
  UNICAST: 'unicast',
  BLACKHOLE: 'blackhole',
  UNREACHABLE: 'unreachable',
  PROHIBIT: 'prohibit',
  THROW: 'throw',
}

function routeTypeName(type: unknown): RouteType | null {
  if (typeof type === 'string') return ROUTE_TYPES[type] ?? null
  if (typeof type === 'number') return ROUTE_TYPES[netlink.rt.RouteType[type] ?? ''] ?? null
  return null
}

function scopeName(scope: unknown): RouteScope {
  const n = typeof scope === 'number' ? scope : netlink.rt.RouteScope[scope as keyof typeof netlink.rt.RouteScope]
  return n === netlink.rt.RouteScope.LINK ? 'link' : n === netlink.rt.RouteScope.HOST ? 'host' : 'universe'
}

/** `null` for kinds we never own (local, broadcast, multicast, multipath, cache clones). */
export function parseRoute(msg: rt.RouteMessage, nameOf: NameOf): Route | null {
  const family = afToFamily(msg.data.family)
  const type = routeTypeName(msg.data.type)
  if (family === null || type === null || msg.attrs.multipath !== undefined || msg.data.flags?.cloned) return null
  const dstLen = msg.data.dstLen ?? 0
  const dstAddr = msg.attrs.dst ? bytesToIp(msg.attrs.dst) : family === 4 ? '0.0.0.0' : '::'
  return {
    family,
    table: msg.attrs.table ?? msg.data.table ?? 0,
    dst: `${dstAddr}/${dstLen}`,
    type,
    dev: msg.attrs.oif !== undefined ? nameOf(msg.attrs.oif) : null,
    gateway: msg.attrs.gateway ? bytesToIp(msg.attrs.gateway) : null,
    metric: msg.attrs.priority ?? 0,
    protocol: protocolNumber(msg.data.protocol),
    scope: scopeName(msg.data.scope),
  }
}

const ROUTE_TYPE_BY_CODE = new Map<number, RouteType>([
  [netlink.rt.RouteType.UNICAST, 'unicast'],
  [netlink.rt.RouteType.BLACKHOLE, 'blackhole'],
  [netlink.rt.RouteType.UNREACHABLE, 'unreachable'],
  [netlink.rt.RouteType.PROHIBIT, 'prohibit'],
  [netlink.rt.RouteType.THROW, 'throw'],
])

/**
 * The fast twin of `parseRoute` for dumps: decodes the raw body directly.
 * Same result for every route (see test/system/codec.test.ts).
 */
export function parseRouteBody(body: Buffer, nameOf: NameOf): Route | null {
  const d = decodeRouteBody(body)
  if (d === null) return null
  const family = afToFamily(d.af)
  const type = ROUTE_TYPE_BY_CODE.get(d.type)
  if (family === null || type === undefined) return null
  const dstAddr = d.dst ? bytesToIp(d.dst) : family === 4 ? '0.0.0.0' : '::'
  return {
    family,
    table: d.table,
    dst: `${dstAddr}/${d.dstLen}`,
    type,
    dev: d.oif !== null ? nameOf(d.oif) : null,
    gateway: d.gateway ? bytesToIp(d.gateway) : null,
    metric: d.metric,
    protocol: d.protocol,
    scope: scopeName(d.scope),
  }
}

function protocolNumber(p: rt.Route['protocol']): number {
  if (typeof p === 'number') return p
  return p === undefined ? 0 : netlink.rt.RouteProtocol[p]
}

const ROUTE_TYPE_CODES: Record<RouteType, number> = {
  unicast: netlink.rt.RouteType.UNICAST,
  blackhole: netlink.rt.RouteType.BLACKHOLE,
  unreachable: netlink.rt.RouteType.UNREACHABLE,
  prohibit: netlink.rt.RouteType.PROHIBIT,
  throw: netlink.rt.RouteType.THROW,
}

const SCOPE_CODES: Record<RouteScope, number> = {
  universe: netlink.rt.RouteScope.UNIVERSE,
  link: netlink.rt.RouteScope.LINK,
  host: netlink.rt.RouteScope.HOST,
}

/**
 * The same body serves add, replace and delete. For delete, the protocol is
 * part of the match (the kernel skips routes of another protocol), so a
 * delete of our record never removes the user's route on the same prefix.
 */
export function formatRoute(r: Route, indexOf: IndexOf): RouteBody {
  const dst = parseCidr(r.dst)
  if (dst.family !== r.family) throw new InvalidRecordError(`route ${r.dst} is not IPv${r.family}`)
  let gateway: Buffer | null = null
  if (r.gateway !== null) {
    gateway = ipToBytes(r.gateway)
    checkFamily(r.family, gateway, `gateway ${r.gateway}`)
  }
  if (!Number.isInteger(r.table) || r.table < 1 || r.table > 0xffffffff) throw new InvalidRecordError(`bad route table ${r.table}`)
  if (!Number.isInteger(r.protocol) || r.protocol < 0 || r.protocol > 255) throw new InvalidRecordError(`bad route protocol ${r.protocol}`)
  if (!Number.isInteger(r.metric) || r.metric < 0 || r.metric > 0xffffffff) throw new InvalidRecordError(`bad route metric ${r.metric}`)
  return {
    af: familyToAf(r.family),
    dstLen: dst.prefixLen,
    dst: dst.prefixLen > 0 ? ipToBytes(dst.network) : null,
    table: r.table,
    protocol: r.protocol,
    scope: SCOPE_CODES[r.scope],
    type: ROUTE_TYPE_CODES[r.type],
    oif: r.dev !== null ? indexOf(r.dev) : null,
    gateway,
    metric: r.metric,
  }
}

// ---- rules ----

export function parseRule(msg: rt.RuleMessage): Rule | null {
  const family = afToFamily(msg.data.family)
  if (family === null) return null
  const action = msg.data.action
  if (action !== undefined && action !== 'toTbl' && action !== netlink.rt.RuleAction.toTbl) return null
  const a = msg.attrs
  return {
    family,
    priority: a.priority ?? 0,
    table: a.table ?? msg.data.table ?? 0,
    src: a.src ? `${bytesToIp(a.src)}/${msg.data.srcLen ?? 0}` : null,
    dst: a.dst ? `${bytesToIp(a.dst)}/${msg.data.dstLen ?? 0}` : null,
    fwmark: a.fwmark ?? null,
    fwmask: a.fwmark !== undefined || a.fwmask !== undefined ? (a.fwmask ?? null) : null,
    iif: a.iifname ?? null,
    oif: a.oifname ?? null,
    invert: msg.data.flags?.invert === true,
    ...(a.suppressPrefixlen !== undefined && a.suppressPrefixlen.length === 4 && a.suppressPrefixlen.readInt32LE(0) >= 0 ? { suppressPrefixLen: a.suppressPrefixlen.readInt32LE(0) } : {}),
    protocol: a.protocol ?? 0,
  }
}

export function formatRule(r: Rule): { data: rt.Rule; attrs: rt.RuleAttrs } {
  const attrs: rt.RuleAttrs = { priority: r.priority, table: r.table, protocol: r.protocol }
  let srcLen = 0
  let dstLen = 0
  if (r.src !== null) {
    const src = parseCidr(r.src)
    if (src.family !== r.family) throw new InvalidRecordError(`rule from ${r.src} is not IPv${r.family}`)
    attrs.src = ipToBytes(src.network)
    srcLen = src.prefixLen
  }
  if (r.dst !== null) {
    const dst = parseCidr(r.dst)
    if (dst.family !== r.family) throw new InvalidRecordError(`rule to ${r.dst} is not IPv${r.family}`)
    attrs.dst = ipToBytes(dst.network)
    dstLen = dst.prefixLen
  }
  if (r.fwmark !== null) attrs.fwmark = r.fwmark
  if (r.fwmask !== null) attrs.fwmask = r.fwmask
  if (r.iif !== null) attrs.iifname = r.iif
  if (r.oif !== null) attrs.oifname = r.oif
  if (r.suppressPrefixLen != null) {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(r.suppressPrefixLen, 0)
    attrs.suppressPrefixlen = b
  }
  const flags: rt.RuleFlags = {}
  if (r.invert) flags.invert = true
  return {
    data: {
      family: familyToAf(r.family),
      dstLen,
      srcLen,
      tos: 0,
      table: r.table < 256 ? r.table : RT_TABLE_UNSPEC,
      action: netlink.rt.RuleAction.toTbl,
      flags,
    },
    attrs,
  }
}

function checkFamily(family: Family, bytes: Buffer, what: string): void {
  if (bytes.length !== (family === 4 ? 4 : 16)) throw new InvalidRecordError(`${what} is not IPv${family}`)
}
