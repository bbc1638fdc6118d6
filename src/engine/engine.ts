/**
 * The typed face of the native forwarding plane.
 *
 * Threading: the addon runs one worker thread per engine with its own epoll
 * loop over the TUN device, the UDP socket, a command eventfd and one timer.
 * Every method here only queues a command (a copy of its arguments) and
 * returns at once; effects happen on the worker moments later, in call order.
 * `stats()` is the one synchronous call: it waits microseconds for the worker
 * to copy its counters out. Events come back on the main thread, in order,
 * through one threadsafe function. Packets never enter JavaScript.
 *
 * Buffers: everything passed in is copied before the call returns, so the
 * caller may reuse it; every Buffer in an event is a fresh copy the listener
 * owns.
 */
import { EventEmitter } from 'node:events'
import ipaddr from 'ipaddr.js'
import { silentLogger, type Logger } from '../log.js'
import { EngineArgumentError, EngineStartError, EngineStateError } from './errors.js'
import { loadNative, type NativeAddon, type NativeEvent, type NativeHandle, type NativeStats } from './native.js'
import { nonNegInt, normalizeTables, packClasses, packRoute, packTables, packUplinks, peerKeyBytes, unpackTables } from './tables.js'
import type {
  BondMode,
  BondStats,
  CongestionControl,
  ConnectOptions,
  DialFailReason,
  EngineEvents,
  EngineInit,
  EngineStats,
  GlobalStats,
  EngineTables,
  Endpoint,
  ForwardingEngine,
  PeerDownReason,
  PeerRole,
  PathStats,
  PeerStats,
  Route,
  TrafficClass,
  Uplink,
} from './types.js'

export * from './types.js'
export * from './errors.js'
export { normalizeTables, packClasses, packRoute, packUplinks, peerKeyBytes } from './tables.js'

/** QUIC bytes around one tunnelled packet: short header with an 8-byte CID, 4-byte packet number, AEAD tag, DATAGRAM frame header. */
export const QUIC_DATAGRAM_OVERHEAD = 1 + 8 + 4 + 16 + 1 + 2

/**
 * The largest inner packet that fits one QUIC datagram on a path whose IP MTU
 * is `pathMtu`, for an underlay of the given family: the TUN MTU to use.
 * Mirrors QE_QUIC_DGRAM_OVERHEAD in native/qe.h. With `bonded`, leaves room
 * for the bonded path's header (BOND_OVERHEAD): bigger packets to a
 * bonded peer get an ICMP "too big".
 */
export function tunMtuFor(pathMtu: number, family: 4 | 6, opts?: { readonly bonded?: boolean }): number {
  if (!Number.isInteger(pathMtu) || pathMtu < 1280 || pathMtu > 65535) {
    throw new EngineArgumentError(`path MTU must be an integer in 1280..65535, got ${pathMtu}`)
  }
  if (family !== 4 && family !== 6) throw new EngineArgumentError(`family must be 4 or 6, got ${String(family)}`)
  return pathMtu - (family === 4 ? 20 : 40) - 8 - QUIC_DATAGRAM_OVERHEAD - (opts?.bonded === true ? BOND_OVERHEAD : 0)
}

const CC: Record<CongestionControl, number> = { reno: 0, cubic: 1, bbr: 2, bbr2: 3 }

/** Bytes a bonded path adds before each tunnelled packet (its sequence number and hold: native/engine_int.h QE_BOND_HDR). */
export const BOND_OVERHEAD = 6

const BOND_MODES: readonly BondMode[] = ['aggregate', 'failover', 'redundant', 'weighted']

export class Engine extends EventEmitter<EngineEvents> implements ForwardingEngine {
  readonly #init: EngineInit
  readonly #log: Logger
  #native: NativeAddon | undefined
  #handle: NativeHandle | undefined
  #info = { ifindex: 0, port: 0 }
  #stopping: Promise<void> | undefined
  #onStopped: (() => void) | undefined
  /** The last tables version handed to the addon (versions must grow). */
  #postedVersion = 0

  /** Wires only: nothing is opened until start(). */
  constructor(init: EngineInit) {
    super()
    this.#init = init
    this.#log = init.log ?? silentLogger
  }

  /** Creates the TUN device, binds the socket, loads the identity and starts the worker. */
  async start(): Promise<void> {
    if (this.#handle) throw new EngineStateError('the engine is already started')
    const i = this.#init
    if (!i.tun || typeof i.tun.name !== 'string' || i.tun.name.length === 0 || i.tun.name.length > 15) {
      throw new EngineArgumentError(`TUN name must be 1..15 characters, got ${String(i.tun?.name)}`)
    }
    const mtu = nonNegInt('tun.mtu', i.tun.mtu, 0, 65535)
    if (mtu < 576) throw new EngineArgumentError(`tun.mtu must be at least 576, got ${mtu}`)
    if (!Buffer.isBuffer(i.identity?.publicKey) || i.identity.publicKey.length !== 32) {
      throw new EngineArgumentError('identity.publicKey must be the raw 32-byte Ed25519 key')
    }
    const pathMtu = nonNegInt('pathMtu', i.pathMtu, 1500, 65535)
    if (pathMtu < 1280) throw new EngineArgumentError(`pathMtu must be at least 1280, got ${pathMtu}`)
    const idle = nonNegInt('idleTimeoutMs', i.idleTimeoutMs, 4000)
    if (idle < 100) throw new EngineArgumentError(`idleTimeoutMs must be at least 100, got ${idle}`)
    const cc = i.congestion ?? 'bbr2'
    if (!(cc in CC)) throw new EngineArgumentError(`unknown congestion controller: ${String(cc)}`)
    const reorderDelay = nonNegInt('reorder.maxDelayMs', i.reorder?.maxDelayMs, 300, 10_000)
    if (reorderDelay < 1) throw new EngineArgumentError('reorder.maxDelayMs must be at least 1')
    const reorderBytes = nonNegInt('reorder.maxBytes', i.reorder?.maxBytes, 4 * 1024 * 1024, 256 * 1024 * 1024)
    if (reorderBytes < 65536) throw new EngineArgumentError(`reorder.maxBytes must be at least 65536, got ${reorderBytes}`)
    const native = loadNative()
    let h: NativeHandle
    try {
      h = native.open(
        {
          tunName: i.tun.name,
          tunMtu: mtu,
          tunOffload: i.tun.offload === false ? 0 : 1,
          privateKeyPem: i.identity.privateKeyPem,
          publicKey: i.identity.publicKey,
          listenAddress: i.listen.address,
          listenPort: nonNegInt('listen.port', i.listen.port, 0, 65535),
          listenDevice: i.listen.device ?? '',
          fwmark: nonNegInt('fwmark', i.fwmark, 0, 0xffffffff),
          keepaliveMs: nonNegInt('keepaliveMs', i.keepaliveMs, 1000),
          idleTimeoutMs: idle,
          pathMtu,
          ccAlgo: CC[cc],
          reorderMaxDelayMs: reorderDelay,
          reorderMaxBytes: reorderBytes,
        },
        (ev) => this.#onNative(ev),
      )
    } catch (err) {
      const e = err as Error & { code?: string }
      throw new EngineStartError(`cannot start the engine: ${e.message}`, { cause: err, nativeCode: e.code ?? 'QE_ENGINE' })
    }
    try {
      native.start(h)
    } catch (err) {
      native.close(h)
      throw new EngineStartError(`cannot start the engine worker: ${(err as Error).message}`, { cause: err })
    }
    this.#native = native
    this.#handle = h
    this.#info = native.info(h)
    this.#log.info({ tun: i.tun.name, ifindex: this.#info.ifindex, port: this.#info.port }, 'engine started')
  }

  /**
   * Closes every connection (peers see CONNECTION_CLOSE, 'peer-down'
   * {reason: 'stopped'} is emitted for each), joins the worker, removes the
   * TUN device and closes the socket. Idempotent.
   */
  stop(): Promise<void> {
    if (!this.#handle) return Promise.resolve()
    if (this.#stopping) return this.#stopping
    const native = this.#native as NativeAddon
    const h = this.#handle
    this.#stopping = new Promise<void>((resolve) => {
      this.#onStopped = resolve
      if (!native.stop(h)) resolve()
    }).then(() => {
      native.close(h)
      this.#handle = undefined
      this.#native = undefined
      this.#stopping = undefined
      this.#log.info('engine stopped')
    })
    return this.#stopping
  }

  /** Interface index of the TUN device (0 before start). */
  get tunIfindex(): number {
    return this.#info.ifindex
  }

  /** The bound UDP port (the real one when listen.port was 0). */
  get listenPort(): number {
    return this.#info.port
  }

  /**
   * Replaces every table at once (see EngineTables). Everything is validated
   * and put in normal form before anything is sent: a bad entry, or a
   * version not above the last one given, throws EngineArgumentError and
   * changes nothing. Then ONE command swaps them all on the worker, in call
   * order with the other commands; readTables() right after sees it.
   */
  setTables(tables: EngineTables): void {
    const t = normalizeTables(tables)
    if (t.version <= this.#postedVersion) {
      throw new EngineArgumentError(`tables version must grow: ${t.version} after ${this.#postedVersion}`)
    }
    const packed = packTables(t)
    this.#call((n, h) => n.setTables(h, packed))
    this.#postedVersion = t.version
    this.#log.debug({ version: t.version, peers: t.allowedPeers.length, routes: t.routes.length, uplinks: t.uplinks.length }, 'engine tables set')
  }

  /**
   * The tables the worker enforces now, read back from native memory (not
   * from what was passed in), in the normal form of normalizeTables; null
   * before the first setTables. Synchronous (microseconds, like stats()).
   * Commands run in call order, so this already includes every setTables
   * made before it: no polling is needed. The one-table setters below change
   * what it returns but not the version.
   */
  readTables(): EngineTables | null {
    const raw = this.#call((n, h) => n.readTables(h))
    return raw === null ? null : unpackTables(raw)
  }

  /**
   * Replaces the set of peer keys allowed to connect (both directions).
   * Connections to keys no longer in the set are closed ('not-allowed').
   */
  setAllowedPeers(keys: readonly string[]): void {
    const buf = Buffer.concat(keys.map(peerKeyBytes))
    this.#call((n, h) => n.setAllowed(h, buf))
  }

  /**
   * Replaces the uplinks (live, at most 8): each gets its own UDP socket
   * (ephemeral port, SO_BINDTODEVICE). Bonded peers gain a path on a new
   * uplink within ~50 ms and lose the paths of a removed one at once. An
   * uplink whose socket cannot be opened (no such device) is skipped with an
   * 'error' event (reason 'uplink-failed'). An empty list turns bonding off.
   */
  setUplinks(uplinks: readonly Uplink[]): void {
    const buf = packUplinks(uplinks)
    this.#call((n, h) => n.setUplinks(h, buf))
  }

  /**
   * Replaces the traffic classes (live; see TrafficClass). An empty list
   * sends every packet through the bonding scheduler.
   */
  setClasses(classes: readonly TrafficClass[]): void {
    const buf = packClasses(classes)
    this.#call((n, h) => n.setClasses(h, buf))
  }

  /**
   * Dials an endpoint. No-op if a connection to that address already exists.
   * With `options.bond`, dials one path per uplink instead and keeps them
   * dialled (see ConnectOptions); the peer comes up with its first path.
   */
  connect(endpoint: Endpoint, options?: ConnectOptions): void {
    if (typeof endpoint?.address !== 'string' || ipaddr.isValid(endpoint.address) === false) {
      throw new EngineArgumentError(`not an IP address: ${String(endpoint?.address)}`)
    }
    const port = nonNegInt('port', endpoint.port, 0, 65535)
    if (port === 0) throw new EngineArgumentError('port must be 1..65535')
    if (options?.bond !== undefined) {
      const mode = BOND_MODES.indexOf(options.bond)
      if (mode < 0) throw new EngineArgumentError(`unknown bond mode: ${String(options.bond)}`)
      this.#call((n, h) => n.connectBonded(h, endpoint.address, port, mode))
      return
    }
    if (options?.relayed === true) {
      this.#call((n, h) => n.connectRelayed(h, endpoint.address, port))
      return
    }
    this.#call((n, h) => n.connect(h, endpoint.address, port))
  }

  /**
   * Sends one datagram from the tunnel's own UDP socket (so it opens the same
   * NAT mapping the tunnel uses): 5..512 bytes starting "\0QEP".
   */
  sendRaw(endpoint: Endpoint, data: Uint8Array): void {
    if (typeof endpoint?.address !== 'string' || ipaddr.isValid(endpoint.address) === false) {
      throw new EngineArgumentError(`not an IP address: ${String(endpoint?.address)}`)
    }
    const port = nonNegInt('port', endpoint.port, 0, 65535)
    if (port === 0) throw new EngineArgumentError('port must be 1..65535')
    if (!(data instanceof Uint8Array) || data.length < 5 || data.length > 512 || data[0] !== 0 || data[1] !== 0x51 || data[2] !== 0x45 || data[3] !== 0x50) {
      throw new EngineArgumentError('a raw datagram is 5..512 bytes starting "\\0QEP"')
    }
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    this.#call((n, h) => n.sendRaw(h, endpoint.address, port, buf))
  }

  /**
   * Undoes `connect(endpoint, { bond })`: the endpoint is no longer dialled,
   * and the paths dialled to it close ('path-down'); the peer stays up on
   * its other paths.
   */
  forgetBonded(endpoint: Endpoint): void {
    if (typeof endpoint?.address !== 'string' || ipaddr.isValid(endpoint.address) === false) {
      throw new EngineArgumentError(`not an IP address: ${String(endpoint?.address)}`)
    }
    const port = nonNegInt('port', endpoint.port, 0, 65535)
    if (port === 0) throw new EngineArgumentError('port must be 1..65535')
    this.#call((n, h) => n.forgetBonded(h, endpoint.address, port))
  }

  /** Closes the connection to a peer ('peer-down' {reason: 'disconnected'}). */
  disconnect(peer: string): void {
    const key = peerKeyBytes(peer)
    this.#call((n, h) => n.disconnect(h, key))
  }

  /**
   * Replaces the forwarding table atomically: longest-prefix match of the
   * destination picks the peer. The same table checks sources: a packet from
   * a peer is accepted only if its source address routes back to that peer,
   * so a peer's own overlay addresses must be in it.
   */
  setRoutes(routes: readonly Route[]): void {
    const buf = Buffer.concat(routes.map(packRoute))
    this.#call((n, h) => n.setRoutes(h, buf))
  }

  /**
   * Queues one control message (at most 1 MiB) on the peer's control stream;
   * delivered whole and in order. Dropped if the peer is not up.
   */
  sendControl(peer: string, msg: Uint8Array): void {
    const key = peerKeyBytes(peer)
    if (!(msg instanceof Uint8Array) || msg.length > 1024 * 1024) {
      throw new EngineArgumentError('a control message is a Uint8Array of at most 1 MiB')
    }
    const data = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength)
    this.#call((n, h) => n.sendControl(h, key, data))
  }

  /** A snapshot of the counters (copied out of the worker). */
  stats(): EngineStats {
    const raw = this.#call((n, h) => n.stats(h))
    return convertStats(raw)
  }

  #call<T>(fn: (n: NativeAddon, h: NativeHandle) => T): T {
    if (!this.#handle || !this.#native || this.#stopping) throw new EngineStateError()
    try {
      return fn(this.#native, this.#handle)
    } catch (err) {
      const e = err as Error & { code?: string }
      if (e.code === 'QE_ENGINE_INVALID') throw new EngineArgumentError(e.message, { cause: err })
      if (e.code === 'QE_ENGINE_STATE') throw new EngineStateError(e.message, { cause: err })
      throw err
    }
  }

  #onNative(ev: NativeEvent): void {
    const peer = ev.key ? ev.key.toString('base64') : undefined
    const remote: Endpoint = { address: ev.address ?? '', port: ev.port ?? 0 }
    const role: PeerRole = ev.role ?? 'client'
    switch (ev.type) {
      case 'peer-up':
        this.#log.info({ peer, remote, role }, 'peer up')
        this.emit('peer-up', { peer: peer as string, remote, role })
        break
      case 'peer-down':
        this.#log.info({ peer, remote, reason: ev.reason }, 'peer down')
        this.emit('peer-down', { peer: peer as string, remote, role, reason: ev.reason as PeerDownReason })
        break
      case 'dial-failed':
        this.#log.info({ remote, peer, reason: ev.reason }, 'dial failed')
        this.emit('dial-failed', { remote, reason: ev.reason as DialFailReason, ...(peer ? { peer } : {}) })
        break
      case 'control':
        this.emit('control', { peer: peer as string, data: ev.data as Buffer })
        break
      case 'raw':
        this.emit('raw', { remote, data: ev.data as Buffer })
        break
      case 'path-up':
      case 'path-down': {
        const pe = {
          peer: peer as string,
          uplink: ev.uplink ?? '',
          index: ev.index ?? 0,
          remote,
          ...(ev.type === 'path-down' ? { reason: ev.reason === 'dead' ? ('dead' as const) : ('closed' as const) } : {}),
        }
        this.#log.info(pe, ev.type)
        this.emit(ev.type, pe)
        break
      }
      case 'refused':
        // Logged by whoever listens (the daemon: one line, with what it does about it).
        this.emit('refused', { peer: peer as string, remote })
        break
      case 'error': {
        const err = new EngineStateError(`engine: ${ev.reason ?? 'error'}`)
        if (this.listenerCount('error') > 0) this.emit('error', err)
        else this.#log.warn({ reason: ev.reason }, 'engine error')
        break
      }
      case 'stopped':
        this.#onStopped?.()
        this.#onStopped = undefined
        break
    }
  }
}

function ms(ns: unknown): number {
  const x = Number(ns)
  return x >= 2 ** 62 || !Number.isFinite(x) ? 0 : x / 1e6
}

function bondStats(p: NativeStats['peers'][number]): { paths?: PathStats[]; bond?: BondStats } {
  const raw = p.paths
  if (!Array.isArray(raw)) return {}
  const n = (k: string): number => Number(p[k] ?? 0)
  const paths: PathStats[] = raw.map((x) => ({
    uplink: String(x.uplink ?? ''),
    index: Number(x.index ?? 0),
    remote: { address: String(x.address ?? ''), port: Number(x.port ?? 0) },
    alive: x.alive === true,
    rttMs: ms(x.rttNs),
    rttMinMs: ms(x.rttMinNs),
    cwnd: Number(x.cwnd ?? 0),
    deliveryRate: Number(x.deliveryRate ?? 0),
    bytesOut: Number(x.bytesOut ?? 0),
    bytesIn: Number(x.bytesIn ?? 0),
    packetsOut: Number(x.packetsOut ?? 0),
    packetsIn: Number(x.packetsIn ?? 0),
    datagramsLost: Number(x.lost ?? 0),
    bytesInFlight: Number(x.bytesInFlight ?? 0),
    queued: Number(x.queued ?? 0),
    dropped: Number(x.dropped ?? 0),
    ...(typeof x.queueOutNs === 'number' ? { queueOutMs: x.queueOutNs / 1e6, queueBackMs: Number(x.queueBackNs ?? 0) / 1e6 } : {}),
  }))
  const mode = BOND_MODES.find((m) => m === p.bondMode) ?? 'aggregate'
  return { paths, bond: { mode, reordered: n('reordered'), late: n('late'), dropped: n('bondDropped'), resent: n('resent'), lostResent: n('lostResent'), moved: n('moved'), classedOut: n('classedOut'), classedIn: n('classedIn'), acksOut: n('acksOut') } }
}

function convertStats(raw: NativeStats): EngineStats {
  const peers: PeerStats[] = raw.peers.map((p) => {
    const n = (k: string): number => Number(p[k] ?? 0)
    return {
      peer: (p.key as Buffer).toString('base64'),
      up: p.up === true,
      ...(p.up === true
        ? { role: p.role as PeerRole, remote: { address: String(p.address), port: n('port') }, relayed: p.relayed === true }
        : {}),
      rttMs: ms(p.rttSmoothedNs),
      rttMinMs: ms(p.rttMinNs),
      rttVarMs: ms(p.rttVarNs),
      silentMs: ms(p.silentNs),
      cwnd: n('cwnd'),
      bytesInFlight: n('bytesInFlight'),
      deliveryRate: n('deliveryRate'),
      maxDatagram: n('maxDatagram'),
      bytesIn: n('bytesIn'),
      bytesOut: n('bytesOut'),
      packetsIn: n('packetsIn'),
      packetsOut: n('packetsOut'),
      datagramsLost: n('datagramsLost'),
      datagramsAcked: n('datagramsAcked'),
      drops: { congestion: n('dropCongestion'), tooBig: n('dropTooBig'), spoofed: n('dropSpoofed'), notUp: n('dropNotUp') },
      ...bondStats(p),
    }
  })
  const g = raw.global
  const n = (k: string): number => Number(g[k] ?? 0)
  return {
    global: {
      garbage: n('garbage'),
      refused: n('refused'),
      handshakeFailed: n('handshakeFailed'),
      halfOpenDropped: n('halfOpenDropped'),
      noRoute: n('noRoute'),
      noPeer: n('noPeer'),
      spoofed: n('spoofed'),
      tooBig: n('tooBig'),
      malformed: n('malformed'),
      tunRx: n('tunRx'),
      tunTx: n('tunTx'),
      tunTxErrors: n('tunTxErrors'),
      udpRx: n('udpRx'),
      udpTx: n('udpTx'),
      udpTxDropped: n('udpTxDropped'),
      resetsSent: n('resetsSent'),
      icmpSent: n('icmpSent'),
      duplicates: n('duplicates'),
      connections: n('connections'),
      tablesVersion: n('tablesVersion'),
      bondRefused: n('bondRefused'),
      rawRx: n('rawRx'),
      rawDropped: n('rawDropped'),
      rawTx: n('rawTx'),
      ...policyStats(g as unknown as Record<string, unknown>),
    },
    peers,
  }
}

/** The policy's counters, when the engine enforces one (policyHits: per packed rule, the default last). */
function policyStats(g: Record<string, unknown>): Pick<GlobalStats, 'policy'> | Record<string, never> {
  const hits = g.policyHits
  if (!Array.isArray(hits) || hits.length === 0) return {}
  const d = (g.policyDrops ?? {}) as Record<string, unknown>
  const num = (x: unknown): number => Number(x ?? 0)
  return {
    policy: {
      passed: num(g.policyPassed),
      flows: num(g.policyFlows),
      drops: { rule: num(d.rule), default: num(d.default), noFlow: num(d.noFlow), fragment: num(d.fragment), malformed: num(d.malformed), tableFull: num(d.tableFull) },
      hits: hits.map(num),
    },
  }
}
