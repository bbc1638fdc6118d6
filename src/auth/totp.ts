/**
 * TOTP (RFC 6238) for the second factor, through the `otpauth` library:
 * HMAC-SHA1, 6 digits, 30 s steps, a window of ±1 step (a code typed just
 * before or after its step turns is still accepted).
 *
 * Everything here is pure over its arguments: time comes in as `now` (ms
 * since the epoch) and is never read inside. The replay guard (a step used
 * once is never accepted again) lives in the store, which sees every use.
 */
import { Secret, TOTP } from 'otpauth'

export const TOTP_ISSUER = 'QuicEther'
export const TOTP_DIGITS = 6
export const TOTP_PERIOD_S = 30
/** Steps either side of the current one that still match. */
export const TOTP_WINDOW = 1
/** RFC 4226 §4 recommends 160 bits: the length of an SHA1 output. */
export const TOTP_SECRET_BYTES = 20

/** A code as a person types it: exactly six ASCII digits. */
export const TOTP_CODE = /^[0-9]{6}$/

export interface Enrolment {
  /** The shared secret, base32 (RFC 4648, no padding), for the store and for typing by hand. */
  readonly secret: string
  /** `otpauth://totp/QuicEther:<peer>?secret=…&issuer=QuicEther&algorithm=SHA1&digits=6&period=30`, for a QR code. */
  readonly uri: string
}

/** A new random secret for `peer` (20 bytes from the system CSPRNG) and its provisioning URI. */
export function enrol(peer: string): Enrolment {
  const secret = new Secret({ size: TOTP_SECRET_BYTES })
  return { secret: secret.base32, uri: totpFor(secret, peer).toString() }
}

/** The provisioning URI for an existing secret (base32). */
export function uriFor(peer: string, secret: string): string {
  return totpFor(Secret.fromBase32(secret), peer).toString()
}

/** The time step (counter) `now` falls in. */
export function stepAt(now: number): number {
  return Math.floor(now / 1000 / TOTP_PERIOD_S)
}

/** The code for `secret` (base32) at `now`. */
export function generate(secret: string, now: number): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD_S, timestamp: now })
}

/**
 * The time step `code` belongs to when it matches `secret` within the window
 * around `now`, else null. A code that is not six digits never matches. The
 * comparison is the library's (constant time per candidate).
 */
export function matchStep(secret: string, code: string, now: number): number | null {
  if (!TOTP_CODE.test(code)) return null
  const delta = TOTP.validate({
    token: code,
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_S,
    timestamp: now,
    window: TOTP_WINDOW,
  })
  return delta === null ? null : stepAt(now) + delta
}

function totpFor(secret: Secret, peer: string): TOTP {
  return new TOTP({ issuer: TOTP_ISSUER, label: peer, algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD_S, secret })
}
