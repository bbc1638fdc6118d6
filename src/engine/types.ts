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
  /** PING after this much quiet, ms (default 1000). */
  readonly keepaliveMs?: number
  /** A peer silent this long is down, ms (default 4000: noticed within 5 s). */
  readonly idleTimeoutMs?: number
  /** MTU of the underlay path, bytes (default 1500): bounds the UDP payload sent. */
  readonly pathMtu?: number
  /** QUIC congestion controller (default 'bbr2': the fastest measured on a veth pair). */
  readonly congestion?: CongestionControl
  readonly log?: Logger
}

export type PeerRole = 'client' | 'server'

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

export interface EngineEvents {
  'peer-up': [PeerUpEvent]
  'peer-down': [PeerDownEvent]
  'dial-failed': [DialFailedEvent]
  control: [ControlEvent]
  refused: [RefusedEvent]
  error: [Error]
}

/** A forwarding entry: destination prefix (CIDR, IPv4 or IPv6) → peer key. */
export interface Route {
  readonly prefix: string
  readonly peer: string
}

export interface PeerStats {
  readonly peer: string
  readonly up: boolean
  readonly role?: PeerRole
  readonly remote?: Endpoint
  /** Smoothed, minimum and variance of the QUIC RTT, ms. */
  readonly rttMs: number
  readonly rttMinMs: number
  readonly rttVarMs: number
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
}

export interface EngineStats {
  readonly global: GlobalStats
  readonly peers: readonly PeerStats[]
}

/** The engine's public face (what the daemon and mesh use). */
export interface ForwardingEngine {
  start(): Promise<void>
  stop(): Promise<void>
  readonly tunIfindex: number
  readonly listenPort: number
  setAllowedPeers(keys: readonly string[]): void
  connect(endpoint: Endpoint): void
  disconnect(peer: string): void
  setRoutes(routes: readonly Route[]): void
  sendControl(peer: string, msg: Uint8Array): void
  stats(): EngineStats
}
