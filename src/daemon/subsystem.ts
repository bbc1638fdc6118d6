/**
 * The one shape every part of a running node has. The daemon is a list of
 * these: adding a feature (discovery, metrics, a UI) adds an entry, not code
 * in the daemon's methods.
 *
 * Order: started in list order, stopped in reverse. `onReload` runs after the
 * new generation's state was applied (kernel and engine tables), in list
 * order; a subsystem whose slice of the config did not change returns at once.
 */
import type { Generation } from './generation.js'

export interface Subsystem<S = unknown> {
  readonly name: string
  start(gen: Generation): Promise<void>
  stop(): Promise<void>
  onReload(prev: Generation, next: Generation): Promise<void>
  /** Its typed slice of `status` (see src/observe/status.ts). */
  status(): S
}
