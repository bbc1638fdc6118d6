/**
 * A scripted forwarding engine for daemon tests: the daemon's `createEngine`
 * seam. Tables behave like the native engine's (applied a moment later, read
 * back as applied); dials and control messages are recorded; tests play the
 * network by emitting the engine's events.
 */
import { EventEmitter } from 'node:events'
import type { EngineEvents, EngineInit, EngineStats, EngineTables } from '../../src/engine/types.js'
import type { HostedEngine } from '../../src/daemon/engine-host.js'
import type { FakeAdapter } from '../reconcile/fake-adapter.js'
import { FakeTables } from '../reconcile/fake-engine.js'

export class FakeEngine extends EventEmitter<EngineEvents> implements HostedEngine {
  readonly tables = new FakeTables()
  readonly dials: string[] = []
  readonly sent: { peer: string; msg: Uint8Array }[] = []
  readonly listenPort = 7443
  started = false
  stopped = false

  constructor(
    readonly init: EngineInit,
    private readonly kernel: FakeAdapter,
  ) {
    super()
  }

  /** Make start() fail (a listen port in use, say). */
  failStart: Error | null = null

  async start(): Promise<void> {
    if (this.failStart) throw this.failStart
    // The native engine creates its TUN; the fake kernel gets the link.
    if (!this.kernel.links.has(this.init.tun.name)) this.kernel.addLink(this.init.tun.name, this.init.tun.mtu)
    this.started = true
  }

  async stop(): Promise<void> {
    this.kernel.links.delete(this.init.tun.name)
    this.stopped = true
  }

  setTables(t: EngineTables): void {
    this.tables.setTables({
      ...t,
      uplinks: t.uplinks.map((u) => ({ name: u.name, weight: u.weight ?? 1, role: u.role ?? 'primary', priority: u.priority ?? 0, cost: u.cost ?? 0, ...(u.rateBps !== undefined ? { rateBps: u.rateBps } : {}) })),
      classes: t.classes.map((k) => ({ dscp: [...(k.dscp ?? [])], ports: (k.ports ?? []).map((r): [number, number] => [r[0], r[1]]), ...(k.uplink ? { uplink: k.uplink } : {}), ...(k.maxPacketSize ? { maxPacketSize: k.maxPacketSize } : {}) })),
    })
  }

  readTables(): EngineTables | null {
    return this.tables.readTables()
  }

  connect(ep: { address: string; port: number }): void {
    this.dials.push(`${ep.address}:${ep.port}`)
  }

  readonly raw: { to: string; data: Uint8Array }[] = []
  sendRaw(ep: { address: string; port: number }, data: Uint8Array): void {
    this.raw.push({ to: `${ep.address}:${ep.port}`, data })
  }

  forgetBonded(): void {}
  disconnect(): void {}

  sendControl(peer: string, msg: Uint8Array): void {
    this.sent.push({ peer, msg })
  }

  stats(): EngineStats {
    const z = 0
    return {
      global: {
        garbage: z, refused: z, handshakeFailed: z, halfOpenDropped: z, noRoute: z, noPeer: z, spoofed: z, tooBig: z, malformed: z,
        bondRefused: z, rawRx: z, rawDropped: z, rawTx: z,
        tunRx: z, tunTx: z, tunTxErrors: z, udpRx: z, udpTx: z, udpTxDropped: z, resetsSent: z, icmpSent: z, duplicates: z, connections: z,
        tablesVersion: this.tables.applied?.version ?? 0,
      },
      peers: [],
    }
  }
}
