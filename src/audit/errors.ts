/** The audit log's errors: one code each, so the CLI, the control socket and the logs print it. */
import { QeError } from '../errors.js'

/**
 * The audit log cannot be written (a full disk, an I/O error, no permission).
 * Thrown by every append while the log is failed; the daemon refuses config
 * changes with it until a retry writes again.
 */
export class AuditWriteError extends QeError {
  override readonly code = 'QE_AUDIT_WRITE'
  override readonly retryable = true
  constructor(message = 'the audit log cannot be written', options?: ErrorOptions) {
    super(message, options)
    this.name = 'AuditWriteError'
  }
}

/** An existing audit file ends in a line that does not parse (a write cut short, an edit). */
export class AuditDamagedError extends QeError {
  override readonly code = 'QE_AUDIT_DAMAGED'
  constructor(message = 'the audit log\'s last line is damaged', options?: ErrorOptions) {
    super(message, options)
    this.name = 'AuditDamagedError'
  }
}

/** The HMAC key file is missing, malformed, or readable by others. */
export class AuditKeyError extends QeError {
  override readonly code = 'QE_AUDIT_KEY'
  constructor(message = 'the audit key cannot be used', options?: ErrorOptions) {
    super(message, options)
    this.name = 'AuditKeyError'
  }
}
