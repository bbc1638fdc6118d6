/**
 * Bit rates, durations and sizes: parse what people write, format what we print.
 *
 *   bit rate  "25Mbps" "1.5Gbit" "100mbit" "500kbps" 25000000  → bits/s (integer)
 *   duration  "500ms" "2s" "1m" "1m30s" "1h" "1d" 250           → milliseconds
 *   size      "4MB" "64KiB" "1.5GB" 4096                       → bytes (integer)
 *
 * Prefixes are decimal (k = 1000) unless written with `i` (Ki = 1024). Bit rates are
 * case-insensitive in the prefix, but a capital `B` means bytes, which a bit rate
 * refuses with the conversion in the message (`25MBps` is 200Mbps, a classic slip).
 * Every parser returns `{ value }` or `{ error }` (a message fragment); none throws.
 */
import { showValue } from '../show-value.js'

export type UnitResult = { value: number; error?: undefined } | { value?: undefined; error: string }

const DECIMAL: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }
const BINARY: Record<string, number> = { ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4 }

function multiplier(prefix: string): number | undefined {
  const p = prefix.toLowerCase()
  return DECIMAL[p] ?? BINARY[p]
}

const BITRATE = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]i?)?(bps|bit|bits|bit\/s|b\/s)$/
const BYTERATE = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]i?)?(Bps|B\/s|byte\/s|bytes\/s)$/

/** A bit rate in bits/s, at least 1. */
export function parseBitrate(input: unknown): UnitResult {
  if (typeof input === 'number') {
    if (Number.isInteger(input) && !Number.isSafeInteger(input)) return { error: `${showValue(input)} is too large` }
    return Number.isInteger(input) && input >= 1 ? { value: input } : { error: `${showValue(input)} is not a bit rate: a plain number means bits/s and must be a whole number ≥ 1` }
  }
  if (typeof input !== 'string') return { error: `${showValue(input)} is not a bit rate; write a number and a unit, like 25Mbps` }
  const s = input
  const byte = BYTERATE.exec(s)
  if (byte) {
    const mul = multiplier(byte[2] ?? '')!
    const bits = Number(byte[1]) * mul * 8
    return { error: `'${input}' is in bytes per second; bandwidth is written in bits: ${formatBitrate(Math.round(bits))}` }
  }
  const m = BITRATE.exec(s)
  if (!m) return { error: `'${input}' is not a bit rate; write a number and a unit, like 25Mbps, 1.5Gbit, 100mbit or 500kbps` }
  const value = Math.round(Number(m[1]) * multiplier(m[2] ?? '')!)
  if (value < 1) return { error: `'${input}' is zero; a bit rate must be at least 1bps` }
  if (!Number.isSafeInteger(value)) return { error: `'${input}' is too large` }
  return { value }
}

const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/y
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration in milliseconds (may be fractional), at least 0. */
export function parseDuration(input: unknown): UnitResult {
  if (typeof input === 'number') {
    return Number.isFinite(input) && input >= 0 ? { value: input } : { error: `${showValue(input)} is not a duration: a plain number means milliseconds and must be ≥ 0` }
  }
  if (typeof input !== 'string') return { error: `${showValue(input)} is not a duration; write a number and a unit, like 500ms or 2s` }
  const s = input
  let total = 0
  let at = 0
  DURATION_PART.lastIndex = 0
  while (at < s.length) {
    DURATION_PART.lastIndex = at
    const m = DURATION_PART.exec(s)
    if (!m) return { error: `'${input}' is not a duration; write a number and a unit (ms, s, m, h, d), like 500ms, 2s or 1m30s` }
    total += Number(m[1]) * DURATION_MS[m[2]!]!
    at = DURATION_PART.lastIndex
  }
  if (s.length === 0) return { error: `'' is not a duration; write a number and a unit, like 500ms or 2s` }
  // Keep sub-millisecond precision but drop floating-point noise (0.1s + 0.2s).
  return { value: Math.round(total * 1000) / 1000 }
}

const SIZE = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]i?)?(B|b|bytes?)$/

/** A size in bytes (integer), at least 0. */
export function parseSize(input: unknown): UnitResult {
  if (typeof input === 'number') {
    if (Number.isInteger(input) && !Number.isSafeInteger(input)) return { error: `${showValue(input)} is too large` }
    return Number.isInteger(input) && input >= 0 ? { value: input } : { error: `${showValue(input)} is not a size: a plain number means bytes and must be a whole number ≥ 0` }
  }
  if (typeof input !== 'string') return { error: `${showValue(input)} is not a size; write a number and a unit, like 4MB or 64KiB` }
  const s = input
  const m = SIZE.exec(s)
  if (!m) return { error: `'${input}' is not a size; write a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), like 4MB or 64KiB` }
  if (m[3] === 'b') return { error: `'${input}' is in bits; a size is written in bytes, with a capital B (like 4MB)` }
  const value = Math.round(Number(m[1]) * multiplier(m[2] ?? '')!)
  if (!Number.isSafeInteger(value)) return { error: `'${input}' is too large` }
  return { value }
}

/** bits/s → the shortest exact form: 25000000 → "25Mbps", 1500000000 → "1.5Gbps", 1234 → "1234bps". */
export function formatBitrate(bps: number): string {
  for (const [unit, mul] of [['Tbps', 1e12], ['Gbps', 1e9], ['Mbps', 1e6], ['kbps', 1e3]] as const) {
    if (bps >= mul) {
      const v = bps / mul
      const text = String(v)
      // Only if it reads back exactly (no long fractions).
      if (/^[0-9]+(\.[0-9]{1,3})?$/.test(text) && Math.round(Number(text) * mul) === bps) return `${text}${unit}`
    }
  }
  return `${bps}bps`
}

/** ms → "500ms", "2s", "1m", "1h"; fractional or odd values stay in ms. */
export function formatDuration(ms: number): string {
  for (const [unit, mul] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= mul && ms % mul === 0) return `${ms / mul}${unit}`
  }
  return `${ms}ms`
}

/** bytes → "4MiB", "64KiB", "4MB", or "1234B": the exact form with the largest unit. */
export function formatSize(bytes: number): string {
  for (const [unit, mul] of [['GiB', 1024 ** 3], ['GB', 1e9], ['MiB', 1024 ** 2], ['MB', 1e6], ['KiB', 1024], ['KB', 1e3]] as const) {
    if (bytes >= mul && bytes % mul === 0) return `${bytes / mul}${unit}`
  }
  return `${bytes}B`
}
