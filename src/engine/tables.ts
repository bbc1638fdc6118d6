/**
 * The engine's tables as data: validation, the one normal form that
 * `setTables` takes and `readTables` gives back (so a deep-equal is a
 * verify), and the addon's record formats both ways (see native.ts).
 * Pure: no addon, no I/O.
 */
import ipaddr from 'ipaddr.js'
import { EngineArgumentError } from './errors.js'
import type { EngineTables, Route, TrafficClass, Uplink } from './types.js'

/** Route record: family, prefix length, address (16), key (32). */
const ROUTE_REC = 50
const UPLINK_REC = 26

const CLASS_REC = 8 + 2 + 1 + 16 + 4 * 32

/** Classes as the native records (see native.ts `setClasses`); throws EngineArgumentError. */
export function packClasses(classes: readonly TrafficClass[]): Buffer {
  if (!Array.isArray(classes) || classes.length > 16) throw new EngineArgumentError('at most 16 traffic classes')
  return Buffer.concat(
    classes.map((k, i) => {
      const rec = Buffer.alloc(CLASS_REC)
      let mask = 0n
      for (const d of k.dscp ?? []) mask |= 1n << BigInt(nonNegInt(`class ${i} dscp`, d, 0, 63))
      rec.writeBigUInt64BE(mask, 0)
      if (k.maxPacketSize !== undefined) {
        const m = nonNegInt(`class ${i} maxPacketSize`, k.maxPacketSize, 0, 65535)
        if (m < 1) throw new EngineArgumentError(`class ${i} maxPacketSize must be 1..65535`)
        rec.writeUInt16BE(m, 8)
      }
      const ports: readonly (readonly [number, number])[] = k.ports ?? []
      if (ports.length > 32) throw new EngineArgumentError(`class ${i}: at most 32 port ranges, got ${ports.length}`)
      rec[10] = ports.length
      if (k.uplink !== undefined) {
        if (typeof k.uplink !== 'string' || !/^[^\s/\0]{1,15}$/.test(k.uplink) || Buffer.byteLength(k.uplink) > 15) {
          throw new EngineArgumentError(`class ${i} uplink must be an interface name of 1..15 characters, got ${String(k.uplink)}`)
        }
        rec.write(k.uplink, 11, 'utf8')
      }
      ports.forEach(([lo, hi], j) => {
        const a = nonNegInt(`class ${i} port`, lo, 0, 65535)
        const b = nonNegInt(`class ${i} port`, hi, 0, 65535)
        if (a > b) throw new EngineArgumentError(`class ${i} port range ${a}-${b} is empty`)
        rec.writeUInt16BE(a, 27 + 4 * j)
        rec.writeUInt16BE(b, 29 + 4 * j)
      })
      return rec
    }),
  )
}

/** The uplinks as the addon's 26-byte records; throws EngineArgumentError on a bad entry. */
export function packUplinks(uplinks: readonly Uplink[]): Buffer {
  if (!Array.isArray(uplinks) || uplinks.length > 8) throw new EngineArgumentError('at most 8 uplinks')
  const seen = new Set<string>()
  return Buffer.concat(
    uplinks.map((u) => {
      if (typeof u?.name !== 'string' || !/^[^\s/\0]{1,15}$/.test(u.name) || Buffer.byteLength(u.name) > 15) {
        throw new EngineArgumentError(`uplink name must be an interface name of 1..15 characters, got ${String(u?.name)}`)
      }
      if (seen.has(u.name)) throw new EngineArgumentError(`uplink ${u.name} given twice`)
      seen.add(u.name)
      const w = u.weight ?? 1
      if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0 || w > 655) {
        throw new EngineArgumentError(`uplink ${u.name} weight must be a number in (0, 655], got ${String(u.weight)}`)
      }
      const weight = Math.max(1, Math.round(w * 100))
      const priority = nonNegInt(`uplink ${u.name} priority`, u.priority, 0, 65535)
      const role = u.role ?? 'primary'
      if (role !== 'primary' && role !== 'backup') throw new EngineArgumentError(`uplink ${u.name} role must be primary or backup`)
      const cost = nonNegInt(`uplink ${u.name} cost`, u.cost, 0, 255)
      const rate = nonNegInt(`uplink ${u.name} rateBps`, u.rateBps, 0, 2 ** 32 - 1)
      if (u.rateBps !== undefined && rate < 1) throw new EngineArgumentError(`uplink ${u.name} rateBps must be 1..${2 ** 32 - 1}`)
      const rec = Buffer.alloc(UPLINK_REC)
      rec.write(u.name, 0, 'utf8')
      rec.writeUInt16BE(weight, 16)
      rec.writeUInt16BE(priority, 18)
      rec[20] = role === 'backup' ? 1 : 0
      rec[21] = cost
      rec.writeUInt32BE(rate, 22)
      return rec
    }),
  )
}

/** Parses a base64 peer key into its raw 32 bytes, or throws EngineArgumentError. */
export function peerKeyBytes(key: string): Buffer {
  const raw = typeof key === 'string' ? Buffer.from(key, 'base64') : Buffer.alloc(0)
  if (raw.length !== 32 || raw.toString('base64') !== key) {
    throw new EngineArgumentError(`not a peer key (base64 of 32 bytes): ${String(key).slice(0, 60)}`)
  }
  return raw
}

/** One route as the addon's 50-byte record: family, prefix length, address (16), key (32). */
export function packRoute(route: Route): Buffer {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number]
  try {
    parsed = ipaddr.parseCIDR(route.prefix)
  } catch (err) {
    throw new EngineArgumentError(`not a CIDR prefix: ${route.prefix}`, { cause: err })
  }
  const [addr, bits] = parsed
  const rec = Buffer.alloc(50)
  rec[0] = addr.kind() === 'ipv4' ? 4 : 6
  rec[1] = bits
  Buffer.from(addr.toByteArray()).copy(rec, 2)
  peerKeyBytes(route.peer).copy(rec, 18)
  return rec
}

/** `v` (or `dflt` when absent) as an integer in 0..max, or EngineArgumentError. */
export function nonNegInt(name: string, v: number | undefined, dflt: number, max = 2 ** 31): number {
  const x = v ?? dflt
  if (!Number.isInteger(x) || x < 0 || x > max) throw new EngineArgumentError(`${name} must be an integer in 0..${max}, got ${String(v)}`)
  return x
}

/** What the addon's setTables takes and readTables gives (see native.ts). */
export interface NativeTables {
  version: number
  allowed: Buffer
  routes: Buffer
  uplinks: Buffer
  classes: Buffer
  acceptBonded: boolean
  reorderMaxDelayMs: number
  reorderMaxBytes: number
  acl?: Buffer
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

function normalRoute(r: Route): Route {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number]
  try {
    parsed = ipaddr.parseCIDR(r?.prefix)
  } catch (err) {
    throw new EngineArgumentError(`not a CIDR prefix: ${String(r?.prefix)}`, { cause: err })
  }
  peerKeyBytes(r.peer)
  return { prefix: `${parsed[0].toString()}/${parsed[1]}`, peer: r.peer }
}

function normalUplink(u: Uplink): Uplink {
  packUplinks([u]) // validates
  return {
    name: u.name,
    weight: Math.max(1, Math.round((u.weight ?? 1) * 100)) / 100,
    role: u.role ?? 'primary',
    priority: u.priority ?? 0,
    cost: u.cost ?? 0,
    ...(u.rateBps !== undefined ? { rateBps: u.rateBps } : {}),
  }
}

function normalClass(k: TrafficClass): TrafficClass {
  packClasses([k]) // validates
  const dscp = [...new Set(k.dscp ?? [])].sort((a, b) => a - b)
  const ports = (k.ports ?? []).map(([lo, hi]): readonly [number, number] => [lo, hi])
  return { dscp, ports, ...(k.maxPacketSize !== undefined ? { maxPacketSize: k.maxPacketSize } : {}), ...(k.uplink !== undefined ? { uplink: k.uplink } : {}) }
}

/**
 * Validates every table (EngineArgumentError naming the first bad entry)
 * and returns the normal form: allowed keys sorted and unique, routes with
 * canonical prefixes sorted by prefix then peer and unique, uplinks and
 * classes in the order given (it matters: path index, first match) with
 * every default filled in, uplink weights in hundredths.
 */
export function normalizeTables(t: EngineTables): EngineTables {
  if (typeof t !== 'object' || t === null) throw new EngineArgumentError('tables must be an object')
  if (!Number.isSafeInteger(t.version) || t.version < 1) throw new EngineArgumentError(`tables version must be a positive integer, got ${String(t.version)}`)
  if (!Array.isArray(t.allowedPeers) || !Array.isArray(t.routes) || !Array.isArray(t.uplinks) || !Array.isArray(t.classes)) {
    throw new EngineArgumentError('allowedPeers, routes, uplinks and classes must be arrays')
  }
  if (typeof t.acceptBonded !== 'boolean') throw new EngineArgumentError('acceptBonded must be a boolean')
  const maxDelayMs = nonNegInt('reorder.maxDelayMs', t.reorder?.maxDelayMs, -1, 10_000)
  if (maxDelayMs < 1) throw new EngineArgumentError('reorder.maxDelayMs must be 1..10000')
  const maxBytes = nonNegInt('reorder.maxBytes', t.reorder?.maxBytes, -1, 256 * 1024 * 1024)
  if (maxBytes < 65536) throw new EngineArgumentError(`reorder.maxBytes must be at least 65536, got ${maxBytes}`)
  for (const k of t.allowedPeers) peerKeyBytes(k)
  const routes = new Map<string, Route>()
  for (const r of t.routes.map(normalRoute)) routes.set(`${r.prefix} ${r.peer}`, r)
  if (t.uplinks.length > 8) throw new EngineArgumentError('at most 8 uplinks')
  packUplinks(t.uplinks) // duplicates
  if (t.classes.length > 16) throw new EngineArgumentError('at most 16 traffic classes')
  return {
    version: t.version,
    allowedPeers: [...new Set(t.allowedPeers)].sort(byString),
    routes: [...routes.keys()].sort(byString).map((k) => routes.get(k) as Route),
    uplinks: t.uplinks.map(normalUplink),
    classes: t.classes.map(normalClass),
    acceptBonded: t.acceptBonded,
    reorder: { maxDelayMs, maxBytes },
    ...(t.acl ? { acl: normalAcl(t.acl) } : {}),
  }
}

function normalAcl(hex: string): string {
  if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(hex) || hex.length < 16) throw new EngineArgumentError('acl must be the packed policy in hex')
  return hex.toLowerCase()
}

/** Tables already in normal form, as the addon's records. */
export function packTables(t: EngineTables): NativeTables {
  return {
    version: t.version,
    allowed: Buffer.concat(t.allowedPeers.map(peerKeyBytes)),
    routes: Buffer.concat(t.routes.map(packRoute)),
    uplinks: packUplinks(t.uplinks),
    classes: packClasses(t.classes),
    acceptBonded: t.acceptBonded,
    reorderMaxDelayMs: t.reorder.maxDelayMs,
    reorderMaxBytes: t.reorder.maxBytes,
    acl: Buffer.from(t.acl ?? '', 'hex'),
  }
}

const cstr = (b: Buffer): string => b.toString('utf8').replace(/\0.*$/s, '')

/** The addon's readTables answer, in normal form. */
export function unpackTables(n: NativeTables): EngineTables {
  const recs = (buf: Buffer, size: number): Buffer[] => Array.from({ length: Math.floor(buf.length / size) }, (_, i) => buf.subarray(i * size, (i + 1) * size))
  const allowedPeers = recs(n.allowed, 32).map((k) => k.toString('base64'))
  const routes = recs(n.routes, ROUTE_REC).map((r): Route => {
    const addr = r[0] === 4 ? ipaddr.fromByteArray([...r.subarray(2, 6)]) : ipaddr.fromByteArray([...r.subarray(2, 18)])
    return { prefix: `${addr.toString()}/${r[1] as number}`, peer: r.subarray(18, 50).toString('base64') }
  })
  const uplinks = recs(n.uplinks, UPLINK_REC).map((r): Uplink => {
    const rate = r.readUInt32BE(22)
    return {
      name: cstr(r.subarray(0, 16)),
      weight: r.readUInt16BE(16) / 100,
      role: r[20] === 1 ? 'backup' : 'primary',
      priority: r.readUInt16BE(18),
      cost: r[21] as number,
      ...(rate > 0 ? { rateBps: rate } : {}),
    }
  })
  const classes = recs(n.classes, CLASS_REC).map((r): TrafficClass => {
    const mask = r.readBigUInt64BE(0)
    const dscp = Array.from({ length: 64 }, (_, d) => d).filter((d) => ((mask >> BigInt(d)) & 1n) === 1n)
    const ports = Array.from({ length: r[10] as number }, (_, j): readonly [number, number] => [r.readUInt16BE(27 + 4 * j), r.readUInt16BE(29 + 4 * j)])
    const max = r.readUInt16BE(8)
    const uplink = cstr(r.subarray(11, 27))
    return { dscp, ports, ...(max > 0 ? { maxPacketSize: max } : {}), ...(uplink ? { uplink } : {}) }
  })
  return normalizeTables({
    version: n.version,
    allowedPeers,
    routes,
    uplinks,
    classes,
    acceptBonded: n.acceptBonded,
    reorder: { maxDelayMs: n.reorderMaxDelayMs, maxBytes: n.reorderMaxBytes },
    ...(n.acl && n.acl.length > 0 ? { acl: n.acl.toString('hex') } : {}),
  })
}
