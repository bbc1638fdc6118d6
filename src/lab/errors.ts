/**
 * Errors of the network-namespace lab. Each has a stable `code`; none is
 * retryable (a lab run that failed is torn down and run again by a person).
 */
import { QeError } from '../errors.js'

/** A scenario, a link option or a command-line value of the lab is not valid. */
export class LabSpecError extends QeError {
  override readonly code = 'QE_LAB_SPEC'
  constructor(message = 'the lab topology is not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'LabSpecError'
  }
}

/** A tool the lab shells out to (`ip`, `tc`, `nft`, `iperf3`, `ping`) failed; the message carries its stderr. */
export class LabCommandError extends QeError {
  override readonly code = 'QE_LAB_COMMAND'
  constructor(message = 'a lab command failed', options?: ErrorOptions) {
    super(message, options)
    this.name = 'LabCommandError'
  }
}

/** The lab needs root, a tool that is not installed, or the delay line binary that is not built. */
export class LabPrerequisiteError extends QeError {
  override readonly code = 'QE_LAB_PREREQUISITE'
  constructor(message = 'the lab cannot run on this machine', options?: ErrorOptions) {
    super(message, options)
    this.name = 'LabPrerequisiteError'
  }
}

/** A daemon in the lab did not start, or its overlay did not answer in time; the message ends with its last log lines. */
export class LabDaemonError extends QeError {
  override readonly code = 'QE_LAB_DAEMON'
  constructor(message = 'a quicether daemon in the lab failed', options?: ErrorOptions) {
    super(message, options)
    this.name = 'LabDaemonError'
  }
}

/** The run was interrupted (Ctrl-C, SIGTERM) and torn down. */
export class LabAbortedError extends QeError {
  override readonly code = 'QE_LAB_ABORTED'
  constructor(message = 'the lab run was interrupted', options?: ErrorOptions) {
    super(message, options)
    this.name = 'LabAbortedError'
  }
}
