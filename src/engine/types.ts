/**
 * The contract of the forwarding plane (the native engine), as the rest of
 * QuicEther sees it. Only `engine.ts` talks to the addon.
 *
 * Keys: a peer is named everywhere by the standard base64 of its raw 32-byte
 * Ed25519 public key (44 characters).
 */
import type { Logger } from '../log.js'

export interface Endpoint {
  readonly address: string
  readonly port: number
}

export type CongestionControl = 'reno' | 'cubic' | 'bbr' | 'bbr2'

export interface EngineInit {
  /** The overlay TUN device: created at start, gone after stop. */
  readonly tun: {
    readonly name: string
    /** Use `tunMtuFor(pathMtu, family)` so tunnelled packets fit one datagram. */
    readonly mtu: number
    /**
     * TCP segmentation/receive offload on the TUN (IFF_VNET_HDR; default
     * true): the kernel hands over 64 KiB TCP super-packets and takes
     * coalesced ones back, far fewer syscalls per byte.
     */
    readonly offload?: boolean
  }
  /** This node's identity: PKCS#8 PEM Ed25519 private key and its raw 32-byte public key. */
  readonly identity: { readonly privateKeyPem: string; readonly publicKey: Buffer }
  /** Where the UDP socket binds. `::` is dual-stack; port 0 picks one (see `listenPort`). */
  readonly listen: { readonly address: string; readonly port: number; readonly device?: string }
  /**
   * SO_MARK on every UDP socket the tunnel sends from (the listening socket
   * and each uplink's): policy routing keys on it to keep the tunnel's own
   * packets out of the tunnel when the overlay carries a default route
   * (exits). 0 (the default): unmarked.
   */
  readonly fwmark?: number
  /** PING after this much quiet, ms (default 1000). */
  readonly keepaliveMs?: number
  /** A peer silent this long is down, ms (default 4000: noticed within 5 s). */
  readonly idleTimeoutMs?: number
  /** MTU of the underlay path, bytes (default 1500): bounds the UDP payload sent. */
  readonly pathMtu?: number
  /** QUIC congestion controller (default 'bbr2': the fastest measured on a veth pair). */
  readonly congestion?: CongestionControl
  /**
   * Bonded peers' receive reorder buffer (config `multipath.reorder`): a gap
   * is waited for about the RTT spread between paths + 10 ms, at most
   * `maxDelayMs` (default 300, 1..10000); at most `maxBytes` held (default
   * 4 MiB, 64 KiB..256 MiB), beyond which the oldest gap is given up.
   */
  readonly reorder?: { readonly maxDelayMs?: number; readonly maxBytes?: number }
  readonly log?: Logger
}

export type PeerRole = 'client' | 'server'

/**
 * Multipath bonding (issue 5). Bonding is inactive unless the engine is given
 * uplinks (`setUplinks`) AND a peer is dialled with `connect(endpoint, { bond })`:
 * every other peer keeps the single-connection behaviour and wire format.
 */
export type UplinkRole = 'primary' | 'backup'

/** One uplink: a kernel interface the engine sends through (SO_BINDTODEVICE). */
export interface Uplink {
  /** Kernel interface name (1..15 characters); the engine opens its own UDP socket (ephemeral port) bound to it. */
  readonly name: string
  /** Relative share for `weighted` mode: a number in (0, 655], default 1, resolution 0.01. */
  readonly weight?: number
  /** `failover`: primaries are used first (default 'primary'). */
  readonly role?: UplinkRole
  /** `failover`: among uplinks of the same role, the LOWER number is preferred (default 0, 0..65535). */
  readonly priority?: number
  /**
   * Bytes/s this uplink sends (config interfaces[].bandwidth.up), 1..2^32-1:
   * seeds its paths' delivery-rate estimate (and so their bulk cap) until a
   * window measures it; absent: unknown.
   */
  readonly rateBps?: number
  /**
   * 0..255 (default 0). `aggregate` mode: a path on a costlier uplink takes
   * bulk only when every cheaper live path has no window room or is dead
   * (metered LTE); traffic classes ignore it. The accepting side learns it
   * from the path's hello, so it applies both ways.
   */
  readonly cost?: number
}

/**
 * How a bonded peer's packets are spread over its paths (both directions: the
 * dialling side tells the accepting side its mode, weights and roles).
 * - aggregate: each packet on the path expected to deliver it first
 *   (smoothed RTT + queued bytes / delivery rate, among paths with window room).
 * - failover: the best primary, then backups by priority; back to the primary when it is alive again.
 * - redundant: each packet on the two best alive paths (duplicates dropped at the receiver).
 * - weighted: smooth weighted round-robin by the uplinks' weights.
 */
export type BondMode = 'aggregate' | 'failover' | 'redundant' | 'weighted'

/**
 * A traffic class (bonded peers in aggregate and weighted modes): packets
 * matching every given criterion skip the scheduler and go, outside the
 * sequence (the receiver delivers them on arrival, no reorder wait), ahead of
 * queued bulk packets, on one path: the named uplink's while it is alive,
 * else the lowest-latency live one. First match wins; at most 16 classes.
 */
export interface TrafficClass {
  /** DSCP values 0..63; empty or absent: any. */
  readonly dscp?: readonly number[]
  /** TCP/UDP port ranges (source or destination), inclusive; at most 32; empty or absent: any. */
  readonly ports?: readonly (readonly [number, number])[]
  /** Inner packets of at most this many bytes (1..65535); absent: any size. */
  readonly maxPacketSize?: number
  /** An uplink's name; absent: the lowest-latency path. */
  readonly uplink?: string
}

export interface ConnectOptions {
  /**
   * Bond this peer: dial one QUIC connection (a path) from every uplink to the
   * endpoint, kept dialled (re-dialled within ~2 s when one closes; an uplink added
   * by `setUplinks` later joins). Without uplinks this dials nothing: bonding is off.
   */
  readonly bond?: BondMode
  /**
   * The endpoint is a relay's port for this peer (issue 14): the connection
   * says so in its first control bytes, a direct connection to the same peer
   * replaces it whenever one comes up, and it never replaces a direct one.
   */
  readonly relayed?: boolean
}

/** Why a peer went down. */
export type PeerDownReason =
  | 'idle-timeout' // nothing heard for idleTimeoutMs
  | 'closed-by-peer' // the peer closed the connection
  | 'replaced' // a newer (or the winning crossed) connection to the same peer took over
  | 'disconnected' // disconnect() was called
  | 'not-allowed' // the peer's key left the allowed set
  | 'refused-by-peer' // the peer no longer allows our key
  | 'stopped' // this engine stopped
  | 'error' // a protocol error on the connection
  | 'bonding-refused' // a bonded path to a node whose tables say acceptBonded: false (either side)

/** Why a dial (connect()) never produced a peer. */
export type DialFailReason = 'handshake-failed' | 'refused' | 'refused-by-peer' | 'idle-timeout' | 'error' | 'stopped'

export interface PeerUpEvent {
  readonly peer: string
  readonly remote: Endpoint
  readonly role: PeerRole
}

export interface PeerDownEvent {
  readonly peer: string
  readonly remote: Endpoint
  readonly role: PeerRole
  readonly reason: PeerDownReason
}

export interface DialFailedEvent {
  readonly remote: Endpoint
  /** The key the other side presented, when the handshake got that far. */
  readonly peer?: string
  readonly reason: DialFailReason
}

/** One control message from a peer, whole. `data` is a fresh copy the listener may keep. */
export interface ControlEvent {
  readonly peer: string
  readonly data: Buffer
}

/** A handshake refused because the key is not allowed: at most one per key per minute. */
export interface RefusedEvent {
  readonly peer: string
  readonly remote: Endpoint
}

/** A path of a bonded peer came up / went down (dead = silent > ~600 ms, or its connection closed). */
export interface PathEvent {
  readonly peer: string
  /** Our uplink's name (dialling side); '' on the accepting side. */
  readonly uplink: string
  /** The dialler's path index (its uplink's index in setUplinks order). */
  readonly index: number
  readonly remote: Endpoint
  /** path-down: 'dead' (silent, still probed: it may come back) or 'closed'. */
  readonly reason?: 'dead' | 'closed'
}

/** A datagram of ours that is no QUIC, and where it came from. Unauthenticated: check it. */
export interface RawEvent {
  readonly remote: Endpoint
  readonly data: Buffer
}

export interface EngineEvents {
  'path-up': [PathEvent]
  'path-down': [PathEvent]
  'peer-up': [PeerUpEvent]
  'peer-down': [PeerDownEvent]
  'dial-failed': [DialFailedEvent]
  control: [ControlEvent]
  /** A datagram starting "\0QEP" on the tunnel socket (a punch, a relay's answer); at most 200/s. */
  raw: [RawEvent]
  refused: [RefusedEvent]
  error: [Error]
}

/** A forwarding entry: destination prefix (CIDR, IPv4 or IPv6) → peer key. */
export interface Route {
  readonly prefix: string
  readonly peer: string
}

/** One path of a bonded peer. */
export interface PathStats {
  readonly uplink: string
  readonly index: number
  readonly remote: Endpoint
  readonly alive: boolean
  /** Smoothed round trip (includes the queue at the bottleneck), and the lowest seen. */
  readonly rttMs: number
  readonly rttMinMs: number
  readonly cwnd: number
  /** Bytes per second this path delivered lately (its own measure from acknowledged datagrams). */
  readonly deliveryRate: number
  /** Tunnelled (inner) traffic on this path. */
  readonly bytesOut: number
  readonly bytesIn: number
  readonly packetsOut: number
  readonly packetsIn: number
  readonly datagramsLost: number
  /** QUIC bytes sent and not yet acknowledged or lost. */
  readonly bytesInFlight: number
  /** Packets waiting in this path's queue now. */
  readonly queued: number
  /** Packets dropped from this path's queue (full, or early drop under a standing queue). */
  readonly dropped: number
  /**
   * The queue our packets wait in on the way out, as the peer measures it (from the timestamps on
   * the path's control stream), and the one our ACKs wait in on the way back (the round trip
   * less the lowest and the first): absent while the peer has echoed nothing lately (a peer of an
   * older version, or an idle path).
   */
  readonly queueOutMs?: number
  readonly queueBackMs?: number
}

/** Receive-side reordering of a bonded peer, and failover re-sends. */
export interface BondStats {
  readonly mode: BondMode
  /** Arrived ahead of a gap and were held back. */
  readonly reordered: number
  /** Arrived after their gap had been given up (delivered anyway). */
  readonly late: number
  /** Duplicates (redundant mode, re-sends) and overflow. */
  readonly dropped: number
  /** Sent again on another path because theirs died before an ACK. */
  readonly resent: number
  /** Declared lost by the QUIC stack of their path, and sent again. */
  readonly lostResent: number
  /** Moved, unsent, from the queue of a path its QUIC stack throttled. */
  readonly moved: number
  /** Sent in a traffic class (outside the sequence). */
  readonly classedOut: number
  /** Received outside the sequence: the far end's traffic classes and its TCP flows' pure ACKs. */
  readonly classedIn: number
  /** TCP pure ACKs sent outside the sequence (delivered on arrival, not held behind the bond's other packets). */
  readonly acksOut: number
}

export interface PeerStats {
  /** Bonded peers only: one entry per path (connection). */
  readonly paths?: readonly PathStats[]
  readonly bond?: BondStats
  readonly peer: string
  readonly up: boolean
  readonly role?: PeerRole
  /** Where the connection in use goes now (it follows a peer that moved). */
  readonly remote?: Endpoint
  /** The connection in use was dialled through a relay. */
  readonly relayed?: boolean
  /** Smoothed, minimum and variance of the QUIC RTT, ms. */
  readonly rttMs: number
  readonly rttMinMs: number
  readonly rttVarMs: number
  /** Since anything was last heard from the peer on any of its paths, ms (0 while down). */
  readonly silentMs: number
  /** Congestion window and bytes in flight, bytes; delivery rate, bytes/s. */
  readonly cwnd: number
  readonly bytesInFlight: number
  readonly deliveryRate: number
  /** Largest inner packet that fits one datagram on the current path. */
  readonly maxDatagram: number
  /** Tunnelled (inner) traffic. */
  readonly bytesIn: number
  readonly bytesOut: number
  readonly packetsIn: number
  readonly packetsOut: number
  readonly datagramsLost: number
  readonly datagramsAcked: number
  readonly drops: {
    /** Congestion window full: the packet was dropped, never queued. */
    readonly congestion: number
    readonly tooBig: number
    /** Source address not routed to this peer (anti-spoofing). */
    readonly spoofed: number
    /** Routed to this peer while it had no connection. */
    readonly notUp: number
  }
}

export interface GlobalStats {
  /** UDP payloads that were no QUIC we know (random, truncated, unknown CID). */
  readonly garbage: number
  /** Handshakes refused because the key is not allowed. */
  readonly refused: number
  readonly handshakeFailed: number
  /** New handshakes dropped over the half-open limit. */
  readonly halfOpenDropped: number
  readonly noRoute: number
  readonly noPeer: number
  readonly spoofed: number
  readonly tooBig: number
  readonly malformed: number
  readonly tunRx: number
  readonly tunTx: number
  readonly tunTxErrors: number
  readonly udpRx: number
  readonly udpTx: number
  readonly udpTxDropped: number
  readonly resetsSent: number
  readonly icmpSent: number
  /** Connections closed because another one to the same peer won (crossed dials, restarts). */
  readonly duplicates: number
  /** QUIC connections open now (handshaking included). */
  readonly connections: number
  /** Version of the last tables applied (setTables); 0 before the first. */
  readonly tablesVersion: number
  /** Bonded paths this node refused or closed because its tables say acceptBonded: false. */
  readonly bondRefused: number
  /** Punches and relay answers handed up ('raw'), dropped over 200/s, and sent (sendRaw). */
  readonly rawRx: number
  readonly rawDropped: number
  readonly rawTx: number
  /** While a policy is enforced (tables.acl): packets passed, flows tracked, drops by reason, and per packed rule (the default last) flows admitted and packets dropped. */
  readonly policy?: {
    readonly passed: number
    readonly flows: number
    readonly drops: { readonly rule: number; readonly default: number; readonly noFlow: number; readonly fragment: number; readonly malformed: number; readonly tableFull: number }
    readonly hits: readonly number[]
  }
}

export interface EngineStats {
  readonly global: GlobalStats
  readonly peers: readonly PeerStats[]
}

/**
 * Every table the engine enforces, given at once: the worker swaps them in
 * one step between two packets; live connections stay (those whose key left
 * `allowedPeers` close, 'not-allowed'). `normalizeTables` gives the normal
 * form that `readTables` returns, so a deep-equal of the two verifies.
 */
export interface EngineTables {
  /** Strictly increasing per engine (1..2^53-1); reported back by readTables() and stats().global.tablesVersion. */
  readonly version: number
  /** Base64 keys allowed to connect, both directions (as setAllowedPeers). */
  readonly allowedPeers: readonly string[]
  /** The FIB, also the anti-spoofing table (as setRoutes). */
  readonly routes: readonly Route[]
  /** As setUplinks; the order is each uplink's path index. */
  readonly uplinks: readonly Uplink[]
  /** As setClasses; first match wins. */
  readonly classes: readonly TrafficClass[]
  /**
   * multipath.accept. false: a bonded path dialled to this node is refused
   * (QUIC application error 0x4, reason 'bonding-refused'; counted in
   * stats().global.bondRefused) and the dialler stops bonding to this
   * endpoint and dials one plain connection instead, so the pair runs
   * unbonded; bonded paths already accepted are closed the same way. true:
   * bonded paths are accepted (the behaviour without tables).
   */
  readonly acceptBonded: boolean
  /**
   * multipath.reorder, live: bonded peers' gap wait is capped by
   * `maxDelayMs` (1..10000) from the next bond tick, and each reorder buffer
   * holds at most `maxBytes` (65536..268435456) from its next packet.
   */
  readonly reorder: { readonly maxDelayMs: number; readonly maxBytes: number }
  /**
   * The policy, packed (hex; see src/policy/pack.ts). Absent or empty: no
   * policy, every packet of an admitted peer passes. A new one is decided
   * on each flow's next packet: flows it still allows keep flowing, the
   * ones it denies stop at once.
   */
  readonly acl?: string
}

/** The engine's public face (what the daemon and mesh use). */
export interface ForwardingEngine {
  start(): Promise<void>
  stop(): Promise<void>
  readonly tunIfindex: number
  readonly listenPort: number
  /**
   * Validates every table first (EngineArgumentError, and nothing is sent),
   * then hands them to the worker as ONE command.
   */
  setTables(tables: EngineTables): void
  /**
   * The tables the worker enforces, read from its memory, in normal form;
   * null before the first setTables. Synchronous, and commands run in call
   * order, so it already reflects every setTables made before the call.
   */
  readTables(): EngineTables | null
  setAllowedPeers(keys: readonly string[]): void
  /** Replaces the uplinks (live): sockets open/close, bonded peers gain/lose paths. */
  setUplinks(uplinks: readonly Uplink[]): void
  /** Replaces the traffic classes (live). */
  setClasses(classes: readonly TrafficClass[]): void
  connect(endpoint: Endpoint, options?: ConnectOptions): void
  /** One datagram from the tunnel socket: 5..512 bytes starting "\0QEP" (punches, relay binds). */
  sendRaw(endpoint: Endpoint, data: Uint8Array): void
  disconnect(peer: string): void
  setRoutes(routes: readonly Route[]): void
  sendControl(peer: string, msg: Uint8Array): void
  stats(): EngineStats
}
