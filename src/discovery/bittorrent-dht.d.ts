/**
 * Ambient types for the untyped DHT packages, only what src/discovery/dht.ts
 * uses: bittorrent-dht 11.0.12 (ESM) and k-rpc 5.1.0 (CommonJS, which brings
 * k-rpc-socket 1.11 and bencode 2: decoded byte strings are Buffers).
 */

declare module 'k-rpc' {
  import type { EventEmitter } from 'node:events'

  /** A node to query: an IPv4 literal and port; `id` and `token` when known. */
  export interface KrpcNode {
    host: string
    port: number
    id?: Buffer
    token?: Buffer | null
  }

  /** Where a datagram came from (dgram's rinfo). */
  export interface KrpcRemote {
    address: string
    port: number
  }

  /** A decoded KRPC message as bencode 2 gives it: nothing is checked. */
  export interface KrpcMessage {
    t?: unknown
    y?: unknown
    q?: unknown
    a?: unknown
    r?: unknown
    e?: unknown
  }

  export interface KrpcQuery {
    q: string
    a: Record<string, unknown>
  }

  /** An error from a query: a KRPC error's code (201-207, 301, 302), or a timeout. */
  export interface KrpcError extends Error {
    code?: number | string
  }

  export type KrpcCallback = (err: KrpcError | null, res: KrpcMessage | null, from: KrpcRemote) => void

  /** k-rpc-socket: sends queries, matches responses by transaction id, emits 'query'. */
  export interface KrpcSocket extends EventEmitter {
    inflight: number
  }

  /** The routing table (k-bucket). */
  export interface KrpcTable {
    count(): number
    toArray(): KrpcNode[]
  }

  export interface Krpc extends EventEmitter {
    readonly id: Buffer
    readonly k: number
    readonly nodes: KrpcTable
    readonly socket: KrpcSocket
    readonly bootstrap: KrpcNode[]
    query(node: KrpcNode, message: KrpcQuery, cb: KrpcCallback): void
    /** Queries every node (queued past the concurrency); `hits` counts the replies that were not errors. */
    queryAll(nodes: KrpcNode[], message: KrpcQuery, visit: null, cb: (err: Error | null, hits: number) => void): void
    /** Iterative lookup of `target`; `visit` sees every reply (return false to stop); `visited` counts nodes that answered. */
    closest(target: Buffer, message: KrpcQuery, visit: (res: KrpcMessage, from: KrpcRemote) => boolean, cb: (err: Error | null, visited: number) => void): void
    response(to: KrpcRemote, query: KrpcMessage, response: Record<string, unknown>): void
    error(to: KrpcRemote, query: KrpcMessage, error: [number, string]): void
    destroy(cb?: () => void): void
  }

  export interface KrpcOptions {
    /** A dgram-like socket (k-rpc-socket's `opts.socket`). */
    socket: unknown
    /** The only seeds. ALWAYS an explicit array: false/true/undefined/null mean the public routers. */
    bootstrap: KrpcNode[]
    id?: Buffer
    k?: number
    concurrency?: number
    timeout?: number
    isIP?: (host: string) => boolean
  }

  export default function krpc(opts: KrpcOptions): Krpc
}

declare module 'bittorrent-dht' {
  import type { EventEmitter } from 'node:events'
  import type { Krpc, KrpcNode } from 'k-rpc'

  export interface DhtOptions {
    /** Our own k-rpc instance: bittorrent-dht then never builds one (nor reads its bootstrap default). */
    krpc: Krpc
    bootstrap: KrpcNode[]
    verify: (sig: unknown, msg: unknown, k: unknown) => boolean
    maxValues?: number
    maxTables?: number
    maxPeers?: number
  }

  /** A stored BEP 44 value, as bittorrent-dht keeps it. */
  export interface StoredValue {
    v: unknown
    k?: Buffer
    sig?: Buffer
    seq?: number
    salt?: Buffer
  }

  export interface PutOptions {
    k: Buffer
    v: Buffer
    seq: number
    sig: Buffer
    salt?: Buffer
  }

  export default class DHT extends EventEmitter {
    constructor(opts: DhtOptions)
    readonly nodeId: Buffer
    /** Private in bittorrent-dht 11.0.12: its LRU of stored values, by target hex (read to count stale puts). */
    readonly _values: { get(key: string): StoredValue | undefined }
    addNode(node: KrpcNode): void
    put(opts: PutOptions, cb: (err: Error | null, target: Buffer, stored: number) => void): Buffer
    get(target: Buffer, opts: { salt?: Buffer; cache?: boolean }, cb: (err: Error | null, value: StoredValue | null) => void): void
    destroy(cb?: () => void): void
  }
}
