/**
 * The audit log's HMAC key.
 *
 * How the key is kept: 32 random bytes, written as 64 hex characters (and a
 * newline) to a file on the node itself, mode 0600, owned by the daemon's user
 * (root): by default `<state-dir>/audit.key`, or `audit.key` in the config.
 * It is never written into the log, the status or the logs. The daemon creates
 * it on first use; whoever verifies a log (`quicether audit verify --key`)
 * needs a copy of it, so an auditor keeps one off the node. The hash chain
 * alone shows a changed, removed or inserted line; the mac is what stops an
 * attacker with write access to the log from rewriting the whole chain, and it
 * holds only as long as the key stays secret (root on the node can read it:
 * ship the log off the node, or keep the key's copy elsewhere, against that).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { AuditKeyError } from './errors.js'

const KEY_TEXT = /^[0-9a-fA-F]{64}$/

/** Reads the key (64 hex characters); refuses a file others may read or write. */
export async function readAuditKey(path: string): Promise<Buffer> {
  let text: string
  try {
    const st = await stat(path)
    if ((st.mode & 0o077) !== 0) {
      throw new AuditKeyError(`the audit key ${path} is open to others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`)
    }
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (err instanceof AuditKeyError) throw err
    throw new AuditKeyError(`cannot read the audit key ${path}: ${(err as Error).message}`, { cause: err })
  }
  const hex = text.trim()
  if (!KEY_TEXT.test(hex)) throw new AuditKeyError(`the audit key ${path} is not 32 bytes written as 64 hex characters`)
  return Buffer.from(hex, 'hex')
}

/** The key at `path`, created (0600, 32 random bytes) when the file does not exist. */
export async function loadOrCreateAuditKey(path: string): Promise<Buffer> {
  try {
    return await readAuditKey(path)
  } catch (err) {
    const cause = (err as Error).cause as NodeJS.ErrnoException | undefined
    if (cause?.code !== 'ENOENT') throw err
  }
  const key = randomBytes(32)
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    // 'wx': never overwrite a key another process created meanwhile.
    await writeFile(path, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readAuditKey(path)
    throw new AuditKeyError(`cannot create the audit key ${path}: ${(err as Error).message}`, { cause: err })
  }
  return key
}
