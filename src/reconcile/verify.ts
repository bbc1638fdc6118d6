/**
 * The `verify` step: read the kernel back until it matches the desired state,
 * a bounded number of times (some changes settle a moment after the ack, and
 * a racing writer may need a beat to lose).
 */
import type { SystemAdapter } from '../system/types.js'
import type { ActualState, KernelState, Plan } from '../state/types.js'
import { diff } from '../state/diff.js'
import { observe } from './observe.js'

export interface VerifyOutcome {
  readonly ok: boolean
  /** What still differed at the last read-back (empty when ok). */
  readonly remaining: Plan
  readonly actual: ActualState
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export async function verify(system: SystemAdapter, desired: KernelState, attempts: number, delayMs: number, managedLinks: Iterable<string> = []): Promise<VerifyOutcome> {
  let delay = delayMs
  const links = [...managedLinks]
  for (let attempt = 1; ; attempt++) {
    const actual = await observe(system, desired, links)
    const remaining = diff(desired, actual)
    if (remaining.actions.length === 0) return { ok: true, remaining, actual }
    if (attempt >= attempts) return { ok: false, remaining, actual }
    await sleep(delay)
    delay *= 2
  }
}
