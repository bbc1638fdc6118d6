/**
 * Hand-framed rtnetlink bodies for the hot path (route add/replace/delete):
 * one pooled buffer per message instead of a dozen small ones. Everything
 * else is formatted by the `netlink` package (`codec.ts`). Netlink uses the
 * host's byte order.
 */
import { endianness } from 'node:os'

const LE = endianness() === 'LE'

export function writeU16(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt16LE(v, off)
  else buf.writeUInt16BE(v, off)
}

export function writeU32(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt32LE(v >>> 0, off)
  else buf.writeUInt32BE(v >>> 0, off)
}

/** Route attributes (`linux/rtnetlink.h`). */
const RTA_DST = 1
const RTA_OIF = 4
const RTA_GATEWAY = 5
const RTA_PRIORITY = 6
const RTA_TABLE = 15

const RTMSG_LEN = 12

export interface RouteBody {
  readonly af: number
  readonly dstLen: number
  /** Network address bytes; omitted when `dstLen` is 0. */
  readonly dst: Uint8Array | null
  readonly table: number
  readonly protocol: number
  readonly scope: number
  readonly type: number
  readonly oif: number | null
  readonly gateway: Uint8Array | null
  readonly metric: number
}

function attrLen(payload: number): number {
  return (4 + payload + 3) & ~3
}

/** `struct rtmsg` followed by its attributes. */
export function encodeRouteBody(r: RouteBody): Buffer {
  const dst = r.dstLen > 0 && r.dst !== null ? r.dst : null
  let size = RTMSG_LEN + attrLen(4) /* table */ + attrLen(4) /* priority */
  if (dst) size += attrLen(dst.length)
  if (r.oif !== null) size += attrLen(4)
  if (r.gateway) size += attrLen(r.gateway.length)
  // allocUnsafe takes small buffers from Node's pool (one ArrayBuffer per 8 KiB, not per route).
  const buf = Buffer.allocUnsafe(size).fill(0)
  buf[0] = r.af
  buf[1] = r.dstLen
  buf[2] = 0 // src_len
  buf[3] = 0 // tos
  buf[4] = r.table < 256 ? r.table : 0 // RT_TABLE_UNSPEC: see RTA_TABLE
  buf[5] = r.protocol
  buf[6] = r.scope
  buf[7] = r.type
  writeU32(buf, 8, 0) // flags
  let off = RTMSG_LEN
  const u32 = (type: number, v: number): void => {
    writeU16(buf, off, 8)
    writeU16(buf, off + 2, type)
    writeU32(buf, off + 4, v)
    off += 8
  }
  const bytes = (type: number, v: Uint8Array): void => {
    writeU16(buf, off, 4 + v.length)
    writeU16(buf, off + 2, type)
    buf.set(v, off + 4)
    off += attrLen(v.length)
  }
  u32(RTA_TABLE, r.table)
  u32(RTA_PRIORITY, r.metric)
  if (dst) bytes(RTA_DST, dst)
  if (r.oif !== null) u32(RTA_OIF, r.oif)
  if (r.gateway) bytes(RTA_GATEWAY, r.gateway)
  return buf
}

/** Joins the buffers a `netlink` formatter produced into one body. */
export function joinBody(bufs: readonly Uint8Array[]): Buffer {
  return Buffer.concat(bufs)
}

/** `rtm_flags` bit of a cached (cloned) route: never ours. */
const RTM_F_CLONED = 0x200
const RTA_MULTIPATH = 9

export interface DecodedRoute {
  readonly af: number
  readonly dstLen: number
  readonly dst: Buffer | null
  readonly table: number
  readonly protocol: number
  readonly scope: number
  readonly type: number
  readonly oif: number | null
  readonly gateway: Buffer | null
  readonly metric: number
}

function readU16(buf: Buffer, off: number): number {
  return LE ? buf.readUInt16LE(off) : buf.readUInt16BE(off)
}

function readU32(buf: Buffer, off: number): number {
  return LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off)
}

/**
 * Decodes a route message body (the inverse of `encodeRouteBody`), reading
 * only the attributes a record needs. A dump of 10,000 routes decodes here
 * several times faster than through the generic parser; the codec tests
 * check both agree. `null` for multipath and cloned routes (never ours).
 */
export function decodeRouteBody(body: Buffer): DecodedRoute | null {
  if (body.length < RTMSG_LEN) return null
  if ((readU32(body, 8) & RTM_F_CLONED) !== 0) return null
  let table = body[4] ?? 0
  let dst: Buffer | null = null
  let oif: number | null = null
  let gateway: Buffer | null = null
  let metric = 0
  let off = RTMSG_LEN
  while (off + 4 <= body.length) {
    const len = readU16(body, off)
    const type = readU16(body, off + 2) & 0x3fff
    if (len < 4 || off + len > body.length) break
    const p = off + 4
    switch (type) {
      case RTA_TABLE:
        if (len >= 8) table = readU32(body, p)
        break
      case RTA_PRIORITY:
        if (len >= 8) metric = readU32(body, p)
        break
      case RTA_DST:
        dst = body.subarray(p, off + len)
        break
      case RTA_OIF:
        if (len >= 8) oif = readU32(body, p)
        break
      case RTA_GATEWAY:
        gateway = body.subarray(p, off + len)
        break
      case RTA_MULTIPATH:
        return null
    }
    off += (len + 3) & ~3
  }
  return { af: body[0] ?? 0, dstLen: body[1] ?? 0, dst, table, protocol: body[5] ?? 0, scope: body[6] ?? 0, type: body[7] ?? 0, oif, gateway, metric }
}
