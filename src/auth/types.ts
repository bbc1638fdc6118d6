/**
 * The public face of the second factor (issue 16): what the daemon, the
 * control socket and the CLI import. The implementation is src/auth/store.ts
 * (state, rate limits, sessions) over src/auth/totp.ts (RFC 6238).
 *
 * Time is always an argument (`now`, ms since the epoch), never read inside,
 * so every rule here is testable without waiting.
 */

/** A second-factor session: `peer`'s traffic is accepted until `expiresAt` (ms since the epoch). */
export interface Session {
  readonly peer: string
  readonly expiresAt: number
}

/**
 * Why a code was refused:
 * - `not-enrolled`: this node holds no secret for the peer (`quicether 2fa enrol` on this node);
 * - `wrong-code`: the code matches no step in the window (or is not six digits);
 * - `replayed`: the code matched, but its time step (or a later one) was already used;
 * - `rate-limited`: too many failures; nothing is checked until `retryAfterMs` passes.
 */
export type VerifyRefusal = 'not-enrolled' | 'wrong-code' | 'replayed' | 'rate-limited'

/**
 * The outcome of one login attempt. A refusal carries `retryAfterMs` when the
 * peer is (now) locked out: always for `rate-limited`, and for the failure
 * that started a lockout.
 */
export type VerifyResult =
  | { readonly ok: true; readonly session: Session }
  | { readonly ok: false; readonly reason: VerifyRefusal; readonly retryAfterMs?: number }

/**
 * A session started or ended. `session` is the new one for `started`, null
 * otherwise. The daemon re-applies its tables on every change.
 */
export type SessionChange =
  | { readonly peer: string; readonly kind: 'started'; readonly session: Session }
  | { readonly peer: string; readonly kind: 'expired' | 'revoked'; readonly session: null }

/** One row of `quicether 2fa list`. */
export interface EnrolledPeer {
  readonly peer: string
  readonly enrolledAt: number
  /** Until when its session lasts; null: no live session. */
  readonly sessionExpiresAt: number | null
  /** Until when it is locked out by the rate limit; null: not locked. */
  readonly lockedUntil: number | null
}
