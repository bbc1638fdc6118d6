import { EngineError } from '../errors.js'

/** A value handed to the engine is malformed (key, prefix, address, size). */
export class EngineArgumentError extends EngineError {
  override readonly code = 'QE_ENGINE_ARGUMENT'
  constructor(message = 'invalid argument for the forwarding engine', options?: ErrorOptions) {
    super(message, options)
    this.name = 'EngineArgumentError'
  }
}

/** The call is not allowed now (not started, already stopped). */
export class EngineStateError extends EngineError {
  override readonly code = 'QE_ENGINE_STATE'
  constructor(message = 'the forwarding engine is not running', options?: ErrorOptions) {
    super(message, options)
    this.name = 'EngineStateError'
  }
}

/** The native addon is missing (not built) or failed to load. */
export class EngineLoadError extends EngineError {
  override readonly code = 'QE_ENGINE_LOAD'
  constructor(message = 'the native forwarding engine is not built (run: npx node-gyp rebuild)', options?: ErrorOptions) {
    super(message, options)
    this.name = 'EngineLoadError'
  }
}

/** Opening the TUN device, the socket or the identity failed in the kernel or TLS. */
export class EngineStartError extends EngineError {
  override readonly code = 'QE_ENGINE_START'
  /** The native code: QE_ENGINE_SYS, QE_ENGINE_TLS, QE_ENGINE_INVALID ... */
  readonly nativeCode: string
  constructor(message = 'the forwarding engine failed to start', options?: ErrorOptions & { nativeCode?: string }) {
    super(message, options)
    this.name = 'EngineStartError'
    this.nativeCode = options?.nativeCode ?? 'QE_ENGINE'
  }
}
