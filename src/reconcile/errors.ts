/** Errors of the reconciler's own steps (kernel errors come from `src/system/errors.ts`). */
import { QeError } from '../errors.js'

/** A fault a test asked for (`failAt`); never retryable. */
export class InjectedFaultError extends QeError {
  override readonly code = 'QE_INJECTED_FAULT'
  constructor(message = 'injected fault', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InjectedFaultError'
  }
}

/** `validate` found errors: nothing was applied. */
export class PlanInvalidError extends QeError {
  override readonly code = 'QE_PLAN_INVALID'
  constructor(message = 'the plan does not validate', options?: ErrorOptions) {
    super(message, options)
    this.name = 'PlanInvalidError'
  }
}

/** After apply, the kernel never read back as desired (someone raced us, or a bug). */
export class VerifyMismatchError extends QeError {
  override readonly code = 'QE_VERIFY_MISMATCH'
  constructor(message = 'the kernel does not match the desired state after apply', options?: ErrorOptions) {
    super(message, options)
    this.name = 'VerifyMismatchError'
  }
}

/** The reconciler was stopped or is not in a state to do what was asked. */
export class ReconcilerStateError extends QeError {
  override readonly code = 'QE_RECONCILER_STATE'
  constructor(message = 'the reconciler cannot do that now', options?: ErrorOptions) {
    super(message, options)
    this.name = 'ReconcilerStateError'
  }
}

/** The engine's tables did not read back as set (a bug in the engine, or it stopped meanwhile). */
export class EngineVerifyError extends QeError {
  override readonly code = 'QE_ENGINE_VERIFY'
  constructor(message = 'the engine did not apply the tables it was given', options?: ErrorOptions) {
    super(message, options)
    this.name = 'EngineVerifyError'
  }
}

/** The node's nftables table did not read back with the hash just applied (someone raced us, or a bug). */
export class FirewallVerifyError extends QeError {
  override readonly code = 'QE_FIREWALL_VERIFY'
  constructor(message = 'the firewall table did not read back as applied', options?: ErrorOptions) {
    super(message, options)
    this.name = 'FirewallVerifyError'
  }
}
