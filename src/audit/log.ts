/**
 * The append-only, hash-chained audit log (issue 16). One JSON object a line,
 * in the canonical form of `line.ts`: `seq` counts from 1 and goes on across
 * rotated files, `prev` is the SHA-256 of the line before (the first line of a
 * file rotated to carries the old file's last hash), `mac` the HMAC with the
 * key (see `key.ts` for how the key is kept).
 *
 * Writes are serialised: `append` may be called by anyone at any time; lines
 * go out one at a time, in call order. Durability: `fsync` syncs each line
 * before its append resolves, `batch` at most every 200 ms, `none` leaves it
 * to the kernel.
 *
 * A write error (ENOSPC, EIO, EACCES, …) makes the log failed: `failed` gives
 * the reason, `onFailure` is called and one error logged, and every later
 * append throws `AuditWriteError` (QE_AUDIT_WRITE) until a retry every 5 s
 * writes again (its first line, `audit-resumed`, says what was refused
 * meanwhile). The half-written line a failure may leave is cut off first.
 */
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Logger } from '../log.js'
import { AuditDamagedError, AuditWriteError } from './errors.js'
import { canonicalLine, hashOf, macOf, canonicalBody, parseLine, recanonical, ZERO_HASH, type AuditFields } from './line.js'
import { readEnds } from './tail.js'

export { loadOrCreateAuditKey, readAuditKey } from './key.js'
export { AuditWriteError, AuditDamagedError, AuditKeyError } from './errors.js'

export type AuditDurability = 'fsync' | 'batch' | 'none'

export interface AuditRotate {
  /** Rotate before a line would take the file past this many bytes; null = never by size. */
  readonly sizeBytes: number | null
  /** Rotate once the file's first line is this old; null = never by time. */
  readonly everyMs: number | null
  /** Rotated files kept (`<path>.1` … `<path>.<keep>`), at least 1. */
  readonly keep: number
}

export interface AuditLogInit {
  readonly path: string
  /** The HMAC key; null = the chain alone (no mac field). */
  readonly key: Buffer | null
  readonly durability?: AuditDurability
  readonly rotate?: AuditRotate
}

/** Where lines go. The default appends to a real file; tests inject one that fails. */
export interface AuditFile {
  write(text: string): Promise<void>
  sync(): Promise<void>
  /** Cuts the file back to `len` bytes (a half-written line after a failed write). */
  truncate(len: number): Promise<void>
  close(): Promise<void>
}

export interface AuditLogComponents {
  readonly log: Logger
  /** The log just failed (once per failure, not per refused append). */
  readonly onFailure?: (reason: string) => void
  /** A retry wrote again after a failure. */
  readonly onRecover?: () => void
  readonly openFile?: (path: string) => Promise<AuditFile>
  readonly now?: () => number
  /** Between retries of a failed log; default 5 s. */
  readonly retryMs?: number
}

export interface AuditLogStatus {
  readonly path: string
  readonly durability: AuditDurability
  /** Lines written by this process. */
  readonly lines: number
  /** The last line's seq (0 before the first line of a fresh log). */
  readonly seq: number
  /** Why the log cannot be written; null when it can. */
  readonly failed: string | null
  readonly mac: boolean
}

const BATCH_MS = 200
const RETRY_MS = 5000

export class AuditLog {
  readonly #path: string
  readonly #key: Buffer | null
  readonly #durability: AuditDurability
  readonly #rotate: AuditRotate | null
  readonly #c: AuditLogComponents
  readonly #openFile: (path: string) => Promise<AuditFile>
  readonly #now: () => number
  #file: AuditFile | null = null
  #size = 0
  #seq = 0
  #last = ZERO_HASH
  /** When the current file's first line was written (for rotate-every); null while it is empty. */
  #fileStart: number | null = null
  #lines = 0
  #queue: Promise<unknown> = Promise.resolve()
  #failed: { reason: string; at: number; refused: number } | null = null
  #retry: NodeJS.Timeout | null = null
  #batch: NodeJS.Timeout | null = null
  #closed = false

  constructor(init: AuditLogInit, components: AuditLogComponents) {
    this.#path = init.path
    this.#key = init.key
    this.#durability = init.durability ?? 'fsync'
    this.#rotate = init.rotate ?? null
    this.#c = components
    this.#openFile = components.openFile ?? openAppend
    this.#now = components.now ?? Date.now
  }

  get path(): string {
    return this.#path
  }

  /** Why the log cannot be written now; null when it can. */
  get failed(): string | null {
    return this.#failed?.reason ?? null
  }

  status(): AuditLogStatus {
    return { path: this.#path, durability: this.#durability, lines: this.#lines, seq: this.#seq, failed: this.failed, mac: this.#key !== null }
  }

  /**
   * Continues the chain from the last line of the file (or, when the file is
   * empty or missing, of `<path>.1`); throws AuditDamagedError when that line
   * is cut short or does not parse, or its mac does not match the key.
   */
  async open(): Promise<void> {
    await this.#loadChain()
    try {
      this.#file = await this.#openFile(this.#path)
    } catch (err) {
      throw new AuditWriteError(`the audit log cannot be written: cannot open ${this.#path}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Appends one event; resolves once it is written (and synced, with `fsync`).
   * `fields` may not use seq, at, type, prev or mac. Throws AuditWriteError
   * while the log is failed (and for the append that fails it).
   */
  append(type: string, fields: AuditFields = {}): Promise<{ seq: number; hash: string }> {
    const run = this.#queue.then(() => this.#write(type, fields))
    this.#queue = run.catch(() => undefined)
    return run
  }

  /** Waits for queued lines, syncs, and closes the file. Appends after this throw. */
  async close(): Promise<void> {
    await this.#queue
    this.#closed = true
    this.#clearTimers()
    const f = this.#file
    this.#file = null
    if (!f) return
    if (this.#durability !== 'none' && !this.#failed) await f.sync().catch(() => undefined)
    await f.close().catch(() => undefined)
  }

  async #write(type: string, fields: AuditFields): Promise<{ seq: number; hash: string }> {
    if (this.#closed || !this.#file) throw new AuditWriteError('the audit log is not open')
    if (this.#failed) {
      this.#failed.refused++
      throw new AuditWriteError(`the audit log cannot be written: ${this.#failed.reason}`)
    }
    try {
      return await this.#writeLine(type, fields)
    } catch (err) {
      const reason = this.#fail(err as Error)
      throw new AuditWriteError(`the audit log cannot be written: ${reason}`, { cause: err })
    }
  }

  /** Rotates when due, writes one line (synced with `fsync`), advances the chain; throws the raw error. */
  async #writeLine(type: string, fields: AuditFields): Promise<{ seq: number; hash: string }> {
    const now = this.#now()
    const text = canonicalLine({ seq: this.#seq + 1, at: new Date(now).toISOString(), type, fields, prev: this.#last }, this.#key)
    const bytes = Buffer.byteLength(text) + 1
    if (this.#shouldRotate(bytes, now)) await this.#rotateNow()
    if (!this.#file) throw new Error('no file open')
    await this.#file.write(text + '\n')
    if (this.#durability === 'fsync') await this.#file.sync()
    this.#seq++
    this.#last = hashOf(text)
    this.#size += bytes
    this.#fileStart ??= now
    this.#lines++
    if (this.#durability === 'batch') this.#scheduleSync()
    return { seq: this.#seq, hash: this.#last }
  }

  #shouldRotate(bytes: number, now: number): boolean {
    const r = this.#rotate
    if (!r || this.#size === 0) return false
    if (r.sizeBytes !== null && this.#size + bytes > r.sizeBytes) return true
    return r.everyMs !== null && this.#fileStart !== null && now - this.#fileStart >= r.everyMs
  }

  /** `<path>` → `<path>.1`, older ones shifted up to `keep`; a new empty file continues the chain. */
  async #rotateNow(): Promise<void> {
    const keep = Math.max(1, this.#rotate?.keep ?? 1)
    const f = this.#file
    if (f) {
      if (this.#durability !== 'none') await f.sync()
      this.#file = null
      await f.close()
    }
    await unlink(`${this.#path}.${keep}`).catch(ignoreMissing)
    for (let i = keep - 1; i >= 1; i--) await rename(`${this.#path}.${i}`, `${this.#path}.${i + 1}`).catch(ignoreMissing)
    await rename(this.#path, `${this.#path}.1`)
    this.#size = 0
    this.#fileStart = null
    this.#file = await this.#openFile(this.#path)
    this.#c.log.info({ path: this.#path, seq: this.#seq }, 'audit log rotated')
  }

  #scheduleSync(): void {
    if (this.#batch) return
    this.#batch = setTimeout(() => {
      this.#batch = null
      // On the queue, so it never races a rotation's close.
      this.#queue = this.#queue.then(async () => {
        if (!this.#file || this.#failed) return
        try {
          await this.#file.sync()
        } catch (err) {
          this.#fail(err as Error)
        }
      })
    }, BATCH_MS)
    this.#batch.unref()
  }

  /** Marks the log failed (once: a later error keeps the first reason); returns the reason. */
  #fail(err: Error): string {
    if (this.#failed) return this.#failed.reason
    const code = (err as NodeJS.ErrnoException).code
    const reason = `${code ? `${code}: ` : ''}${err.message.replace(/^E[A-Z]+: /, '')}`
    this.#failed = { reason, at: this.#now(), refused: 0 }
    this.#c.log.error({ path: this.#path, err: reason }, 'the audit log cannot be written: config changes are refused until it can (tunnels keep running)')
    this.#c.onFailure?.(reason)
    this.#retry = setInterval(() => {
      this.#queue = this.#queue.then(() => this.#tryRecover())
    }, this.#c.retryMs ?? RETRY_MS)
    this.#retry.unref()
    return reason
  }

  /** One retry: reopen, cut a half-written line, write `audit-resumed`; stays failed when that fails. */
  async #tryRecover(): Promise<void> {
    const failed = this.#failed
    if (!failed || this.#closed) return
    try {
      await this.#file?.close().catch(() => undefined)
      this.#file = null
      const ends = await readEnds(this.#path)
      // Replaced or rotated meanwhile: the file's own tail is the truth.
      if (ends && ends.size < this.#size) await this.#loadChain()
      this.#file = await this.#openFile(this.#path)
      if (ends && ends.size > this.#size) await this.#file.truncate(this.#size)
      await this.#writeLine('audit-resumed', { reason: failed.reason, since: new Date(failed.at).toISOString(), refused: failed.refused })
    } catch (err) {
      this.#c.log.debug({ err: (err as Error).message }, 'audit log retry failed')
      return
    }
    this.#failed = null
    if (this.#retry) clearInterval(this.#retry)
    this.#retry = null
    this.#c.log.info({ path: this.#path, refused: failed.refused }, 'the audit log is written again')
    this.#c.onRecover?.()
  }

  #clearTimers(): void {
    if (this.#retry) clearInterval(this.#retry)
    if (this.#batch) clearTimeout(this.#batch)
    this.#retry = null
    this.#batch = null
  }

  /** seq, last hash, size and start time from the file's tail (or `<path>.1`'s when the file is empty). */
  async #loadChain(): Promise<void> {
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o750 })
    const ends = await readEnds(this.#path)
    this.#size = ends?.size ?? 0
    this.#fileStart = ends?.first ? Date.parse(parseLine(ends.first).record?.at ?? '') || this.#now() : null
    let from: { file: string; last: string; complete: boolean } | null = ends?.last != null ? { file: this.#path, last: ends.last, complete: ends.complete } : null
    if (!from) {
      const older = await readEnds(`${this.#path}.1`)
      if (older?.last != null) from = { file: `${this.#path}.1`, last: older.last, complete: older.complete }
    }
    if (!from) {
      this.#seq = 0
      this.#last = ZERO_HASH
      return
    }
    const damaged = (why: string) =>
      new AuditDamagedError(`the audit log's last line is damaged (${from.file}: ${why}); move the file aside (keep it as evidence) to start a new one`)
    if (!from.complete) throw damaged('it does not end in a newline: a write was cut short')
    const p = parseLine(from.last)
    if (!p.record) throw damaged(p.error)
    if (recanonical(p.record) !== from.last) throw damaged('it is not in the canonical form this log writes')
    if (this.#key) {
      if (p.record.mac === undefined) throw damaged('it has no mac, and this log has a key')
      const { mac: _mac, ...rest } = p.record
      if (macOf(canonicalBody(rest), this.#key) !== p.record.mac) throw damaged('its mac does not match the audit key (another key, or the line was changed)')
    }
    this.#seq = p.record.seq
    this.#last = hashOf(from.last)
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err
}

async function openAppend(path: string): Promise<AuditFile> {
  const fh: FileHandle = await open(path, 'a', 0o600)
  return {
    write: async (text) => {
      await fh.write(text)
    },
    sync: () => fh.sync(),
    truncate: (len) => fh.truncate(len),
    close: () => fh.close(),
  }
}
