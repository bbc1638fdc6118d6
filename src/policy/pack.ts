/**
 * A compiled policy in the forwarding plane's packed form (native
 * engine_cmd.c build_acl): one packed rule per rule and destination port
 * range, in order, so first-match order is kept. A rule that can never match
 * (a group with no known member) is left out. `origins` maps each packed
 * rule back to its rule in `policies.rules`, for hit counters.
 */
import { parseCidr, ipToBytes } from '../net/ip.js'
import type { PolicyTable } from './policy.js'

export interface PackedPolicy {
  /** Hex of the packed table; '' when the policy is not enforced. */
  readonly acl: string
  /** Packed rule index → index in `policies.rules`. */
  readonly origins: readonly number[]
}

const PROTO = { any: 0, tcp: 6, udp: 17, icmp: 1 } as const

function prefix(cidr: string): Buffer {
  const p = parseCidr(cidr)
  const b = Buffer.alloc(18)
  b[0] = p.family
  b[1] = p.prefixLen
  Buffer.from(ipToBytes(p.network)).copy(b, 2)
  return b
}

export function packPolicy(table: PolicyTable): PackedPolicy {
  if (!table.enforced) return { acl: '', origins: [] }
  const parts: Buffer[] = []
  const origins: number[] = []
  for (const r of table.rules) {
    if (r.src !== null && r.src.length === 0) continue
    if (r.dst !== null && r.dst.length === 0) continue
    const ranges = r.ports.length > 0 ? r.ports : [{ lo: 0, hi: 65535 }]
    for (const range of ranges) {
      const src = r.src ?? []
      const dst = r.dst ?? []
      const head = Buffer.alloc(12)
      head[0] = r.action === 'allow' ? 1 : 0
      head[1] = PROTO[r.proto]
      head.writeUInt16BE(range.lo, 2)
      head.writeUInt16BE(range.hi, 4)
      head.writeInt16BE(-1, 6)
      head.writeUInt16BE(src.length, 8)
      head.writeUInt16BE(dst.length, 10)
      parts.push(head, ...src.map(prefix), ...dst.map(prefix))
      origins.push(r.index)
    }
  }
  const head = Buffer.alloc(8)
  head[0] = table.default === 'allow' ? 1 : 0
  head.writeUInt32BE(origins.length, 4)
  return { acl: Buffer.concat([head, ...parts]).toString('hex'), origins }
}
