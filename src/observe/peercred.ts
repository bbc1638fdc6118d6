/**
 * Who ran a control-socket command: the peer credentials of the unix socket
 * (SO_PEERCRED, read by the addon's `peerCred`; Node has no API for it). The
 * fd is the net.Socket's own (`_handle.fd`, an internal of Node's that has held
 * for every release since 0.x); null when it or the addon is not there.
 */
import type { Socket } from 'node:net'
import { loadNative } from '../engine/native.js'

export interface PeerCred {
  readonly pid: number
  readonly uid: number
  readonly gid: number
}

type PeerCredFn = (fd: number) => PeerCred

let fn: PeerCredFn | null | undefined

function peerCredFn(): PeerCredFn | null {
  if (fn !== undefined) return fn
  try {
    const addon = loadNative() as unknown as { peerCred?: PeerCredFn }
    fn = typeof addon.peerCred === 'function' ? addon.peerCred : null
  } catch {
    fn = null
  }
  return fn
}

/** The credentials of the process at the other end of `sock`; null when they cannot be read. */
export function peerCredOf(sock: Socket): PeerCred | null {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd
  const f = peerCredFn()
  if (typeof fd !== 'number' || fd < 0 || !f) return null
  try {
    return f(fd)
  } catch {
    return null
  }
}
