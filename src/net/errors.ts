/**
 * The one error of the network vocabulary. The only import outside `src/net/`
 * is the project's error root (`src/errors.ts`, itself a leaf), so the code
 * joins the one QE_* code space.
 */
import { QeError } from '../errors.js'

/**
 * Text or bytes that are not an address or prefix, handed to a function that
 * expects one already checked (a kernel record, a normalized config): a bug
 * upstream, never retryable. Input from people goes through the `parse…`
 * functions, which return a message instead of throwing.
 */
export class InvalidAddressError extends QeError {
  override readonly code = 'QE_INVALID_ADDRESS'
  override readonly retryable = false

  constructor(message = 'not an IP address or prefix', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InvalidAddressError'
  }
}
