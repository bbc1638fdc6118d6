/**
 * Units people type for links: rates and delays use the config's parsers
 * (bits/s, milliseconds), loss is a percentage. Each throws LabSpecError
 * with the config parser's explanation.
 */
import { parseBitrate, parseDuration } from '../config/units.js'
import { LabSpecError } from './errors.js'
import { showValue } from '../show-value.js'

/** "100mbit", "1.5Gbit", "25Mbps" or a number of bits/s → bits/s. */
export function parseRate(input: unknown, what = 'rate'): number {
  const r = parseBitrate(input)
  if (r.error !== undefined) throw new LabSpecError(`${what}: ${r.error}`)
  return r.value
}

/** "10ms", "1.5ms", "250us", "0.2s" or a number of milliseconds → milliseconds (may be fractional). */
export function parseDelay(input: unknown, what = 'delay'): number {
  if (typeof input === 'string') {
    const us = /^([0-9]+(?:\.[0-9]+)?)us$/.exec(input.trim())
    if (us) return Number(us[1]) / 1000
  }
  const r = parseDuration(typeof input === 'string' ? input.trim() : input)
  if (r.error !== undefined) throw new LabSpecError(`${what}: ${r.error}`)
  if (r.value > 10_000) throw new LabSpecError(`${what}: ${String(input)} is longer than the lab's limit of 10 s`)
  return r.value
}

/** "1%", "0.5%", or a number read as a percentage → a fraction in [0, 1). */
export function parseLoss(input: unknown, what = 'loss'): number {
  let pct: number
  if (typeof input === 'number') pct = input
  else if (typeof input === 'string' && /^[0-9]+(?:\.[0-9]+)?%?$/.test(input.trim())) pct = Number(input.trim().replace('%', ''))
  else throw new LabSpecError(`${what}: ${showValue(input)} is not a loss rate; write a percentage like 1% or 0.5%`)
  if (!Number.isFinite(pct) || pct < 0 || pct >= 100) throw new LabSpecError(`${what}: ${showValue(input)} is not a loss rate between 0% and 100%`)
  return pct / 100
}

/** A positive whole number of seconds/streams/repetitions from the command line. */
export function parsePositiveInt(input: string, what: string, max = 1_000_000): number {
  const n = Number(input)
  if (!/^[0-9]+$/.test(input.trim()) || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new LabSpecError(`${what}: '${input}' is not a whole number between 1 and ${max}`)
  }
  return n
}

/** "100 Mbit/s", "1.23 Gbit/s", "850 kbit/s" for tables. */
export function formatRate(bps: number): string {
  if (bps >= 1e9) return `${trim(bps / 1e9)} Gbit/s`
  if (bps >= 1e6) return `${trim(bps / 1e6)} Mbit/s`
  return `${trim(bps / 1e3)} kbit/s`
}

function trim(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)
}
