/**
 * Which connected peers have gone silent: up in the engine, but nothing heard
 * from them for longer than a live peer is ever quiet. QUIC's idle timeout
 * (4 s) ends such a connection in the end; routing does not wait that long
 * where another peer can take over (a second gateway for a subnet, the local
 * default route instead of a dead exit).
 *
 * While this node has packets in flight to a peer, a live peer answers within
 * about a probe timeout; three of them (3 × (RTT + 4 × RTT variance), at
 * least 250 ms) without a packet means it is gone. With nothing in flight a
 * live peer may be quiet for up to the keep-alive interval (then a PING goes
 * out, which is in flight), so the limit is the keep-alive interval more. The
 * limit follows each peer's measured RTT, not a constant fitted to a lab.
 * Polled from the engine's stats every 200 ms; `onChange` runs when the set
 * of silent peers changes.
 */
import type { PeerStats } from '../engine/types.js'

export interface PeerLiveness {
  readonly stale: boolean
  readonly rttMs: number
}

export interface LivenessInit {
  /** The engine's peers now (`null` while no engine runs). */
  readonly stats: () => readonly PeerStats[] | null
  /** The engine's keep-alive interval, ms. */
  readonly keepaliveMs: number
  readonly onChange: () => void
  readonly intervalMs?: number
}

/** The engine's default keep-alive interval (EngineInit.keepaliveMs). */
export const ENGINE_KEEPALIVE_MS = 1000
const MIN_MARGIN_MS = 250

/** How long `p` may be quiet and still be alive, ms. */
export function silenceLimitMs(p: Pick<PeerStats, 'rttMs' | 'rttVarMs' | 'bytesInFlight'>, keepaliveMs: number): number {
  const probes = Math.max(MIN_MARGIN_MS, 3 * (p.rttMs + 4 * p.rttVarMs))
  return p.bytesInFlight > 0 ? probes : keepaliveMs + probes
}

export class Liveness {
  readonly #init: LivenessInit
  #timer: NodeJS.Timeout | null = null
  #now = new Map<string, PeerLiveness>()
  #staleSig = ''

  constructor(init: LivenessInit) {
    this.#init = init
  }

  start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => this.poll(), this.#init.intervalMs ?? 200)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }

  /** The last poll's view of a peer; undefined when it is not up. */
  of(key: string): PeerLiveness | undefined {
    return this.#now.get(key)
  }

  /** Reads the engine once; calls onChange when a peer turned silent or was heard again. */
  poll(): void {
    let peers: readonly PeerStats[] | null
    try {
      peers = this.#init.stats()
    } catch {
      peers = null
    }
    const next = new Map<string, PeerLiveness>()
    for (const p of peers ?? []) {
      if (!p.up) continue
      next.set(p.peer, { stale: p.silentMs > silenceLimitMs(p, this.#init.keepaliveMs), rttMs: p.rttMs })
    }
    this.#now = next
    const sig = [...next].filter(([, v]) => v.stale).map(([k]) => k).sort().join(',')
    if (sig !== this.#staleSig) {
      this.#staleSig = sig
      this.#init.onChange()
    }
  }
}
