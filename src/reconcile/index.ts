/**
 * The reconcile module's public face. The daemon does:
 *
 *   const kernel = new Reconciler({}, { system: createSystemAdapter(), log })
 *   const node = new NodeReconciler({}, { kernel, log })   // kernel + engine, one writer
 *   await node.start()                                      // drift repair on
 *   await node.attachEngine(port)                           // when the engine starts
 *   const r = await node.apply(desiredNode(config, facts).state)
 *   ...
 *   await node.cleanup(); await node.stop()                 // clean stop
 */
export type * from './types.js'
export { Reconciler } from './reconciler.js'
export { NodeReconciler, type EngineTablesPort, type VersionedTables, type NodeApplyResult, type EngineApplyInfo, type NodePlan } from './node.js'
export { ConfirmWindow, NothingToConfirmError, type PendingConfirm } from './confirm.js'
export { InjectedFaultError, PlanInvalidError, VerifyMismatchError, ReconcilerStateError, EngineVerifyError } from './errors.js'
export { observe } from './observe.js'
export { executePlan, type ExecuteOptions, type ExecuteOutcome } from './execute.js'
export { verify } from './verify.js'
export { DriftFilter } from './drift.js'
