/**
 * Loads the N-API addon (build/Release/quicether_native.node) and describes
 * its raw surface. Only engine.ts and the FIB test helpers use it.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EngineLoadError } from './errors.js'
import type { NativeTables } from './tables.js'

export interface NativeEvent {
  type: 'peer-up' | 'peer-down' | 'dial-failed' | 'control' | 'refused' | 'error' | 'stopped' | 'path-up' | 'path-down' | 'raw'
  key?: Buffer
  address?: string
  port?: number
  role?: 'client' | 'server'
  reason?: string
  data?: Buffer
  /** path-up / path-down */
  uplink?: string
  index?: number
}

export interface NativeOpenOptions {
  tunName: string
  tunMtu: number
  tunOffload: number
  privateKeyPem: string
  publicKey: Buffer
  listenAddress: string
  listenPort: number
  listenDevice: string
  fwmark: number
  keepaliveMs: number
  idleTimeoutMs: number
  pathMtu: number
  ccAlgo: number
  reorderMaxDelayMs: number
  reorderMaxBytes: number
}

export type NativeHandle = { readonly __native: unique symbol }
export type NativeFib = { readonly __fib: unique symbol }

export interface NativeStats {
  global: Record<string, number>
  peers: Array<Record<string, number | boolean | string | Buffer | Array<Record<string, number | boolean | string>>>>
}

export interface NativeAddon {
  open(opts: NativeOpenOptions, onEvent: (ev: NativeEvent) => void): NativeHandle
  start(h: NativeHandle): void
  info(h: NativeHandle): { ifindex: number; port: number }
  stop(h: NativeHandle): boolean
  close(h: NativeHandle): void
  connect(h: NativeHandle, address: string, port: number): void
  /** mode: 0 aggregate, 1 failover, 2 redundant, 3 weighted */
  connectBonded(h: NativeHandle, address: string, port: number, mode: number): void
  connectRelayed(h: NativeHandle, address: string, port: number): void
  /** data: 5..512 bytes starting "\0QEP" */
  sendRaw(h: NativeHandle, address: string, port: number, data: Buffer): void
  forgetBonded(h: NativeHandle, address: string, port: number): void
  /** n records of 26 bytes: name (16, NUL-padded), weight u16 BE, priority u16 BE, role u8 (1 backup), cost u8, rate u32 BE (bytes/s, 0 unknown) */
  setUplinks(h: NativeHandle, records: Buffer): void
  /** n records of 155 bytes: DSCP mask u64 BE, max size u16 BE, port range count u8, uplink (16, NUL-padded), 32 × (lo u16 BE, hi u16 BE) */
  setClasses(h: NativeHandle, records: Buffer): void
  disconnect(h: NativeHandle, key: Buffer): void
  setAllowed(h: NativeHandle, keys: Buffer): void
  setRoutes(h: NativeHandle, routes: Buffer): void
  /** Every table in one command; the records as in setAllowed/setRoutes/setUplinks/setClasses. */
  setTables(h: NativeHandle, tables: NativeTables): void
  /** What the worker enforces now; null before the first setTables. */
  readTables(h: NativeHandle): NativeTables | null
  sendControl(h: NativeHandle, key: Buffer, data: Buffer): void
  stats(h: NativeHandle): NativeStats
  fibNew(entries: Buffer): NativeFib
  fibLookup(fib: NativeFib, addr: Buffer): number
}

const ADDON = join('build', 'Release', 'quicether_native.node')
let cached: NativeAddon | undefined

/** Finds the addon above this module (src/engine or dist/engine) and loads it once. */
export function loadNative(): NativeAddon {
  if (cached) return cached
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON)
    if (existsSync(candidate)) {
      try {
        cached = createRequire(import.meta.url)(candidate) as NativeAddon
        return cached
      } catch (err) {
        throw new EngineLoadError(`cannot load ${candidate}: ${(err as Error).message}`, { cause: err })
      }
    }
    dir = dirname(dir)
  }
  throw new EngineLoadError()
}
