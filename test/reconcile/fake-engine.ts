/**
 * An in-memory engine table store behind `EngineTablesPort`, for the node
 * reconciler's and the daemon's unit tests. Like the native engine, a set is
 * applied a moment later (on the next macrotask), and the tables read back are
 * what was applied. Chosen calls can be made to fail or to apply wrongly.
 */
import type { EngineTablesPort, VersionedTables } from '../../src/reconcile/node.js'

export class FakeTables implements EngineTablesPort {
  applied: VersionedTables | null = null
  /** Every set, in order (versions). */
  readonly sets: number[] = []
  /** Throw this from the next setTables (nothing is applied), then clear. */
  refuseNext: Error | null = null
  /** Apply the next set with its routes emptied (a wrong read-back), then clear. */
  corruptNext = false
  /** Never apply anything (the worker is stuck). */
  stuck = false
  /** Throw this from every readTables (an engine that is stopping). */
  readFails: Error | null = null
  /** Called after each set was taken (to play events that happen meanwhile). */
  onSet: ((t: VersionedTables) => void) | null = null

  setTables(t: VersionedTables): void {
    if (this.refuseNext) {
      const err = this.refuseNext
      this.refuseNext = null
      throw err
    }
    this.sets.push(t.version)
    const corrupt = this.corruptNext
    this.corruptNext = false
    if (this.stuck) return
    const copy: VersionedTables = JSON.parse(JSON.stringify(t)) as VersionedTables
    setImmediate(() => {
      this.applied = corrupt ? { ...copy, routes: [] } : copy
    })
    this.onSet?.(t)
  }

  readTables(): VersionedTables | null {
    if (this.readFails) throw this.readFails
    return this.applied
  }
}
