/**
 * Errors of the kernel adapter. `retryable` follows the errno only: true for
 * the transient ones (the kernel was busy or short of buffers), false for
 * everything else, and always false for our own bugs and for EINVAL.
 */
import { SystemError } from '../errors.js'

/** errno names after which the same request may succeed if tried again. */
const TRANSIENT_ERRNO = new Set(['EBUSY', 'EAGAIN', 'EWOULDBLOCK', 'ENOBUFS', 'EINTR', 'ENOMEM', 'ETIMEDOUT'])

export function isTransientErrno(name: string): boolean {
  return TRANSIENT_ERRNO.has(name)
}

/** The kernel answered a netlink request with an error. */
export class NetlinkError extends SystemError {
  override readonly code: string = 'QE_NETLINK'
  /** errno name, e.g. `EEXIST`, `ESRCH`, `ENETDOWN`. */
  readonly errno: string
  /** What we asked, e.g. `add route 10.0.0.0/16 table 5280`. */
  readonly op: string

  constructor(op: string, errno: string, options?: ErrorOptions) {
    super(`${op}: ${errno}`, { ...options, retryable: isTransientErrno(errno) })
    this.name = 'NetlinkError'
    this.errno = errno
    this.op = op
  }
}

/** A record names an interface that does not exist. */
export class LinkNotFoundError extends SystemError {
  override readonly code = 'QE_LINK_NOT_FOUND'
  readonly link: string

  constructor(link: string, options?: ErrorOptions) {
    super(`no interface named ${link}`, { ...options, retryable: false })
    this.name = 'LinkNotFoundError'
    this.link = link
  }
}

/** A sysctl could not be read or written (or its key is malformed). */
export class SysctlError extends SystemError {
  override readonly code = 'QE_SYSCTL'
  readonly key: string
  /** errno name of the failed read/write (`ENOENT`: no such key, e.g. the interface is gone); `null` for a malformed request. */
  readonly errno: string | null

  constructor(key: string, message = `sysctl ${key} failed`, options?: ErrorOptions & { retryable?: boolean; errno?: string }) {
    super(message, options)
    this.name = 'SysctlError'
    this.key = key
    this.errno = options?.errno ?? null
  }
}

/** A record we were asked to write is malformed (a bug upstream): never retryable. */
export class InvalidRecordError extends SystemError {
  override readonly code = 'QE_INVALID_RECORD'

  constructor(message = 'invalid kernel record', options?: ErrorOptions) {
    super(message, { ...options, retryable: false })
    this.name = 'InvalidRecordError'
  }
}

/** The netlink socket is closed or failed (EPIPE, a lost reply…). */
export class NetlinkSocketError extends SystemError {
  override readonly code = 'QE_NETLINK_SOCKET'

  constructor(message = 'the netlink socket failed', options?: ErrorOptions & { retryable?: boolean }) {
    super(message, options)
    this.name = 'NetlinkSocketError'
  }
}

/** `nft` refused a script (or could not run): nothing changed, the script is one transaction. */
export class NftablesError extends SystemError {
  override readonly code = 'QE_NFTABLES'
  /** nft's whole error output (the message keeps its first line: file:line:col and what it refused). */
  readonly stderr: string

  constructor(message: string, options?: ErrorOptions & { stderr?: string }) {
    super(message, { ...options, retryable: false })
    this.name = 'NftablesError'
    this.stderr = options?.stderr ?? ''
  }
}
