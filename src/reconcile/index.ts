/**
 * The reconcile module's public face. The daemon does:
 *
 *   const rec = new Reconciler({}, { system: createSystemAdapter(), log: log.child({ component: 'reconcile' }) })
 *   await rec.start()                                  // drift repair on
 *   const r = await rec.apply(desiredFromConfig(config, runtime))
 *   ...
 *   await rec.cleanup(); await rec.stop()              // clean stop
 */
export type * from './types.js'
export { Reconciler } from './reconciler.js'
export { InjectedFaultError, PlanInvalidError, VerifyMismatchError, ReconcilerStateError } from './errors.js'
export { observe } from './observe.js'
export { executePlan, type ExecuteOptions, type ExecuteOutcome } from './execute.js'
export { verify } from './verify.js'
export { DriftFilter } from './drift.js'
