/**
 * Counters a bonding measurement reads inside the lab's namespaces, before
 * and after each transfer:
 *
 *   interfaces  `ip -n NS -j -s link show`: bytes and packets per interface
 *               (the same numbers as /sys/class/net/IF/statistics). On the
 *               client they say which uplinks carried the traffic; on a
 *               link's router, packets in from the client minus packets out
 *               to the gateway are what the link dropped (random loss and
 *               queue overflow).
 *   TCP, MPTCP  /proc/net/snmp and /proc/net/netstat of the namespace: TCP
 *               connections reset or failed, MPTCP subflows joined.
 *
 * Parsers are pure; readers shell out with `ip netns exec`.
 */
import { LabCommandError } from './errors.js'
import { run, runIn } from './exec.js'

export interface IfCounters {
  readonly rxBytes: number
  readonly txBytes: number
  readonly rxPackets: number
  readonly txPackets: number
}

const ZERO: IfCounters = Object.freeze({ rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 })

/** Parses `ip -j -s link show` output into counters by interface name. */
export function parseLinkStats(json: string): Map<string, IfCounters> {
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch {
    throw new LabCommandError(`ip -j -s link did not print JSON: ${json.slice(0, 120)}`)
  }
  const out = new Map<string, IfCounters>()
  if (!Array.isArray(doc)) return out
  for (const l of doc as { ifname?: string; stats64?: { rx?: { bytes?: number; packets?: number }; tx?: { bytes?: number; packets?: number } } }[]) {
    if (typeof l.ifname !== 'string') continue
    const s = l.stats64
    out.set(l.ifname, { rxBytes: s?.rx?.bytes ?? 0, txBytes: s?.tx?.bytes ?? 0, rxPackets: s?.rx?.packets ?? 0, txPackets: s?.tx?.packets ?? 0 })
  }
  return out
}

/** Counters of every interface in `netns`. */
export async function readIfCounters(netns: string): Promise<Map<string, IfCounters>> {
  const r = await run('ip', ['-n', netns, '-j', '-s', 'link', 'show'])
  return parseLinkStats(r.stdout)
}

/** `after - before` for one interface (a missing interface counts as zero). */
export function ifDelta(before: ReadonlyMap<string, IfCounters>, after: ReadonlyMap<string, IfCounters>, ifname: string): IfCounters {
  const a = after.get(ifname) ?? ZERO
  const b = before.get(ifname) ?? ZERO
  return { rxBytes: a.rxBytes - b.rxBytes, txBytes: a.txBytes - b.txBytes, rxPackets: a.rxPackets - b.rxPackets, txPackets: a.txPackets - b.txPackets }
}

/**
 * Parses the text of /proc/net/snmp and /proc/net/netstat (header line, then
 * value line, per group) into `Group.Name` → value: `Tcp.EstabResets`,
 * `TcpExt.TCPAbortOnTimeout`, `MPTcpExt.MPJoinSynAckRx`.
 */
export function parseProcNet(text: string): Map<string, number> {
  const out = new Map<string, number>()
  const lines = text.split('\n')
  for (let i = 0; i + 1 < lines.length; i++) {
    const head = /^(\w+):\s+(.*)$/.exec(lines[i]!)
    const vals = /^(\w+):\s+(.*)$/.exec(lines[i + 1]!)
    if (!head || !vals || head[1] !== vals[1] || !/^[A-Za-z]/.test(head[2]!)) continue
    const names = head[2]!.trim().split(/\s+/)
    const values = vals[2]!.trim().split(/\s+/)
    names.forEach((n, j) => {
      const v = Number(values[j])
      if (Number.isFinite(v)) out.set(`${head[1]}.${n}`, v)
    })
    i++
  }
  return out
}

/** The namespace's TCP and MPTCP counters. */
export async function readProcNet(netns: string): Promise<Map<string, number>> {
  const r = await runIn(netns, 'cat', ['/proc/net/snmp', '/proc/net/netstat'])
  return parseProcNet(r.stdout)
}

/** `after - before` of one counter (missing counts as zero). */
export function counterDelta(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>, name: string): number {
  return (after.get(name) ?? 0) - (before.get(name) ?? 0)
}

/**
 * TCP connections that were reset or failed between two readings: resets
 * of established connections, failed connection attempts, and connections
 * given up after retransmission timeouts. (Under MPTCP these count
 * subflows, which the connection survives; see `mptcp.ts`.)
 */
export function tcpFailures(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): number {
  return TCP_FAILURES.reduce((s, n) => s + counterDelta(before, after, n), 0)
}

const TCP_FAILURES = ['Tcp.EstabResets', 'Tcp.AttemptFails', 'TcpExt.TCPAbortOnTimeout'] as const

/**
 * Which of tcpFailures' counters moved, as `node counter` → delta (only those that did): says whether a
 * reset was a connection reset, a failed connect or a timeout, and on which end.
 */
export function tcpFailureDetail(byNode: readonly { node: string; before: ReadonlyMap<string, number>; after: ReadonlyMap<string, number> }[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const { node, before, after } of byNode) {
    for (const n of TCP_FAILURES) {
      const d = counterDelta(before, after, n)
      if (d !== 0) out[`${node} ${n}`] = d
    }
  }
  return out
}

/**
 * When to read the client's TCP counters for resets, ms after the client
 * starts: shortly before the transfer ends, because iperf3 ends its data
 * connections with resets (one per stream), which are no failure.
 */
export function resetReadingMs(seconds: number): number {
  return Math.max(0, seconds * 1000 - 500)
}

/**
 * Whether a reading of the TCP counters begun at `readAtMs` (wall clock)
 * says nothing of iperf3's own closing resets: it began at least 100 ms
 * before the first transfer's end (each end: its measured start plus its
 * length). On a loaded machine the reading can run late (its timer and the
 * `cat` it spawns wait for a core); a reading past an end would count that
 * transfer's closing resets as failures, so it is not used.
 */
export function readingBeforeEnd(readAtMs: number, endsMs: readonly number[]): boolean {
  return endsMs.length > 0 && readAtMs < Math.min(...endsMs) - 100
}
