/**
 * The parts of untyped packages QuicEther uses: bencode, k-rpc and
 * bittorrent-dht (private API included where discovery needs it: the k-rpc
 * instance a DHT runs on, for the rendezvous queries).
 */
declare module 'bencode' {
  const bencode: {
    encode(value: unknown): Uint8Array
    decode(data: Uint8Array, start?: number, end?: number, encoding?: string): unknown
  }
  export default bencode
}

declare module 'k-rpc' {
  import type { EventEmitter } from 'node:events'
  export interface KrpcPeer {
    host?: string
    address?: string
    port: number
    id?: Uint8Array
    token?: Uint8Array
  }
  export interface KrpcMessage {
    t?: Uint8Array
    y?: Uint8Array | string
    q?: Uint8Array | string
    a?: Record<string, unknown>
    r?: Record<string, unknown>
    e?: unknown
  }
  export interface Krpc extends EventEmitter {
    readonly id: Uint8Array
    readonly bootstrap: readonly KrpcPeer[]
    readonly nodes: { toArray(): KrpcPeer[]; count(): number }
    query(peer: KrpcPeer, message: KrpcMessage, cb: (err: Error | null, res?: KrpcMessage) => void): void
    response(peer: KrpcPeer, query: KrpcMessage, response: Record<string, unknown>, nodes?: unknown, cb?: () => void): void
    error(peer: KrpcPeer, query: KrpcMessage, error: [number, string], cb?: () => void): void
    destroy(cb?: () => void): void
  }
  export default function krpc(opts: Record<string, unknown>): Krpc
}

declare module 'bittorrent-dht' {
  import type { EventEmitter } from 'node:events'
  import type { Krpc } from 'k-rpc'
  export interface DhtPutOptions {
    k: Uint8Array
    v: Uint8Array
    seq: number
    salt?: Uint8Array
    sig?: Uint8Array
  }
  export interface DhtGetResult {
    v: Uint8Array
    k?: Uint8Array
    sig?: Uint8Array
    seq?: number
    salt?: Uint8Array
  }
  export default class DHT extends EventEmitter {
    constructor(opts: Record<string, unknown>)
    readonly _rpc: Krpc
    readonly nodeId: Uint8Array
    readonly nodes: { toArray(): unknown[]; count(): number }
    put(opts: DhtPutOptions, cb: (err: Error | null, hash: Uint8Array, n: number) => void): Uint8Array
    get(key: Uint8Array, opts: { salt?: Uint8Array; cache?: boolean }, cb: (err: Error | null, res: DhtGetResult | null) => void): void
    address(): { address: string; port: number }
    destroy(cb?: () => void): void
  }
}
