/**
 * Which way the bonding lab's transfers run (pure). `up` is client →
 * gateway (an upload: the client's bond spreads it over its uplinks); `down`
 * is gateway → client (a download: the gateway's side of the bond spreads
 * it over the paths the client dialled, at each uplink's download rate);
 * `both` runs an upload and a download at once, like a video call beside a
 * sync. Every figure in the JSON says which direction it is for.
 */
import { LabSpecError } from './errors.js'
import type { UplinkSpec } from './bond-spec.js'

export const DIRECTIONS = ['up', 'down'] as const
export type Direction = (typeof DIRECTIONS)[number]
export const DIRECTION_SETS = ['up', 'down', 'both'] as const
export type DirectionSet = (typeof DIRECTION_SETS)[number]

export function parseDirection(text: string): DirectionSet {
  const d = DIRECTION_SETS.find((x) => x === text.trim())
  if (!d) throw new LabSpecError(`--direction: '${text}' is not one of ${DIRECTION_SETS.join(', ')} (up: client → gateway; down: gateway → client; both: at once)`)
  return d
}

/** The directions a set runs, upload first. */
export function directionsOf(set: DirectionSet): Direction[] {
  return set === 'both' ? ['up', 'down'] : [set]
}

/** An uplink's rate in one direction, bits/s (0 when unlimited). */
export function rateOf(u: UplinkSpec, dir: Direction): number {
  return (dir === 'up' ? u.up.rate : u.down.rate) ?? 0
}

/** Sum of the uplinks' rates in one direction, bits/s. */
export function rateSumOf(uplinks: readonly UplinkSpec[], dir: Direction): number {
  return uplinks.reduce((s, u) => s + rateOf(u, dir), 0)
}

/** The 0-based index of the fastest uplink in a direction (for `both`: by the sum of both), first of equals. */
export function biggestUplinkOf(uplinks: readonly UplinkSpec[], set: DirectionSet): number {
  const size = (u: UplinkSpec): number => directionsOf(set).reduce((s, d) => s + rateOf(u, d), 0)
  let best = 0
  uplinks.forEach((u, i) => {
    if (size(u) > size(uplinks[best]!)) best = i
  })
  return best
}

/** "upload" / "download" for people. */
export function directionWord(dir: Direction): string {
  return dir === 'up' ? 'upload' : 'download'
}
