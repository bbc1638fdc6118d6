/**
 * sysctls through `/proc/sys`. The `net.*` tree there belongs to the network
 * namespace of the process, so this works inside `ip netns exec` as-is.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { SysctlError, isTransientErrno } from './errors.js'

const KEY = /^[a-z0-9_]+(\.[a-z0-9_-]+)+$/i

export function sysctlPath(key: string): string {
  if (!KEY.test(key)) throw new SysctlError(key, `malformed sysctl key ${JSON.stringify(key)}`)
  return `/proc/sys/${key.replaceAll('.', '/')}`
}

function wrap(key: string, verb: string, err: unknown): SysctlError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EIO'
  return new SysctlError(key, `${verb} sysctl ${key}: ${code}`, { cause: err, retryable: isTransientErrno(code), errno: code })
}

export async function readSysctl(key: string): Promise<string> {
  const path = sysctlPath(key)
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch (err) {
    throw wrap(key, 'read', err)
  }
}

export async function writeSysctl(key: string, value: string): Promise<void> {
  const path = sysctlPath(key)
  if (/[\n\0]/.test(value)) throw new SysctlError(key, `malformed value for sysctl ${key}`)
  try {
    await writeFile(path, `${value}\n`)
  } catch (err) {
    throw wrap(key, 'write', err)
  }
}
