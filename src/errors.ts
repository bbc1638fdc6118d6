/**
 * Every expected failure in QuicEther is a QeError with a stable `code`.
 * Callers branch on `code` (never on message text); the CLI, the control
 * socket and the logs print it. `retryable` tells the reconciler whether a
 * backoff may help: it is false for bugs and for bad input, always.
 */
export class QeError extends Error {
  readonly code: string = 'QE_ERROR'
  readonly retryable: boolean = false

  constructor(message?: string, options?: ErrorOptions) {
    super(message ?? 'QuicEther error', options)
    this.name = 'QeError'
  }
}

/** A file could not be read at all (missing, a directory, no permission). */
export class ConfigReadError extends QeError {
  override readonly code = 'QE_CONFIG_READ'
  constructor(message = 'cannot read the config file', options?: ErrorOptions) {
    super(message, options)
    this.name = 'ConfigReadError'
  }
}

/** The config was read but does not validate; `diagnostics` holds every problem. */
export class ConfigInvalidError extends QeError {
  override readonly code = 'QE_CONFIG_INVALID'
  constructor(message = 'the config is not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'ConfigInvalidError'
  }
}

/** The config could not be written (directory missing and not creatable, no permission). */
export class ConfigWriteError extends QeError {
  override readonly code = 'QE_CONFIG_WRITE'
  constructor(message = 'cannot write the config file', options?: ErrorOptions) {
    super(message, options)
    this.name = 'ConfigWriteError'
  }
}

/** Command-line arguments are wrong (unknown flag, bad value the CLI itself checks). */
export class UsageError extends QeError {
  override readonly code = 'QE_USAGE'
  constructor(message = 'bad command-line arguments', options?: ErrorOptions) {
    super(message, options)
    this.name = 'UsageError'
  }
}

/** A kernel call (netlink, sysctl, TUN) failed; transient errno values are retryable. */
export class SystemError extends QeError {
  override readonly code: string = 'QE_SYSTEM'
  override readonly retryable: boolean
  constructor(message = 'a system call failed', options?: ErrorOptions & { retryable?: boolean }) {
    super(message, options)
    this.name = 'SystemError'
    this.retryable = options?.retryable ?? false
  }
}

/** The native forwarding plane refused a command or failed to start. */
export class EngineError extends QeError {
  override readonly code: string = 'QE_ENGINE'
  constructor(message = 'the forwarding engine failed', options?: ErrorOptions) {
    super(message, options)
    this.name = 'EngineError'
  }
}

/** Another daemon already runs on this config / state directory. */
export class AlreadyRunningError extends QeError {
  override readonly code = 'QE_ALREADY_RUNNING'
  constructor(message = 'another quicether daemon is already running', options?: ErrorOptions) {
    super(message, options)
    this.name = 'AlreadyRunningError'
  }
}

export function isQeError(err: unknown): err is QeError {
  return err instanceof QeError
}
