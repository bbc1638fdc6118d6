/**
 * Lab commands build kernel state that must not outlive them: Ctrl-C,
 * SIGTERM or SIGHUP abort the run's signal, the running tool is killed, and
 * the command's `finally` tears the lab down before the process exits.
 */
import { LabAbortedError } from './errors.js'

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** Runs `fn` with a signal that aborts on SIGINT/SIGTERM/SIGHUP; an aborted run rejects with LabAbortedError. */
export async function withInterrupts<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  let received: NodeJS.Signals | null = null
  const onSignal = (sig: NodeJS.Signals): void => {
    received = sig
    ac.abort()
  }
  for (const s of SIGNALS) process.on(s, onSignal)
  try {
    const out = await fn(ac.signal)
    if (received) throw new LabAbortedError(`interrupted by ${String(received)}; the lab was torn down`)
    return out
  } catch (err) {
    if (received) throw new LabAbortedError(`interrupted by ${String(received)}; the lab was torn down`, { cause: err })
    throw err
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal)
  }
}

/** Throws LabAbortedError when `signal` has fired. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LabAbortedError()
}
