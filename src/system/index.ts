/**
 * The system module's public face: the kernel adapter and its records.
 * Only `src/reconcile/` (and tests) should change the kernel through it.
 */
export type * from './types.js'
export { NetlinkAdapter, type NetlinkAdapterOptions } from './netlink.js'
export { NetlinkError, LinkNotFoundError, SysctlError, InvalidRecordError, NetlinkSocketError, isTransientErrno } from './errors.js'

import { NetlinkAdapter, type NetlinkAdapterOptions } from './netlink.js'
import type { SystemAdapter } from './types.js'

/** The adapter for the network namespace this process runs in. */
export function createSystemAdapter(opts?: NetlinkAdapterOptions): SystemAdapter {
  return new NetlinkAdapter(opts)
}
