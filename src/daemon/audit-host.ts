/**
 * The audit log as a subsystem: opened (when `audit.path` is set) before the
 * node touches anything, `start` and `stop` recorded, the log swapped on a
 * reload that changes `audit.*`. Everyone else records through `record(type,
 * fields)`: the daemon (config applied or rejected, peers, control commands),
 * and later features (policy deny summaries, 2FA).
 *
 * While the log cannot be written (`failed`), `assertWritable` throws
 * AuditWriteError: the daemon refuses config changes with it, and tunnels keep
 * running. `record` never throws: a line that cannot be written is counted by
 * the log (its `audit-resumed` line says how many) and the failure logged once.
 */
import type { AuditConfig } from '../config/index.js'
import type { Logger } from '../log.js'
import { AuditLog, AuditWriteError, loadOrCreateAuditKey, type AuditFile } from '../audit/log.js'
import type { AuditFields } from '../audit/line.js'
import type { Generation } from './generation.js'
import type { Subsystem } from './subsystem.js'

export interface AuditStatus {
  readonly enabled: boolean
  readonly path: string | null
  /** Lines this daemon wrote. */
  readonly lines: number
  readonly seq: number
  /** Why the log cannot be written (config changes are refused meanwhile); null when it can. */
  readonly failed: string | null
  readonly durability: string | null
}

const RETRY_OPEN_MS = 5000

/** Events kept in memory for the web UI. */
const RECENT = 50

export class AuditHost implements Subsystem<AuditStatus> {
  readonly name = 'audit'
  readonly #log: Logger
  readonly #openFile: ((path: string) => Promise<AuditFile>) | undefined
  #audit: AuditLog | null = null
  #config: AuditConfig | null = null
  /** Why the log could not be opened at all (a damaged tail, the key); retried. */
  #openError: string | null = null
  #retry: NodeJS.Timeout | null = null

  readonly #recent: string[] = []

  constructor(components: { log: Logger; openFile?: (path: string) => Promise<AuditFile> }) {
    this.#log = components.log
    this.#openFile = components.openFile
  }

  /** Opens the log of `config` (no-op when `path` is null). A failure leaves the host failed (and retrying), not thrown. */
  async open(config: AuditConfig): Promise<void> {
    this.#config = config
    if (!config.path) return
    try {
      this.#audit = await this.#build(config)
      this.#openError = null
    } catch (err) {
      this.#openError = (err as Error).message
      this.#log.error({ path: config.path, err: this.#openError }, 'the audit log cannot be opened: config changes are refused until it can')
      this.#scheduleReopen()
    }
  }

  async #build(config: AuditConfig): Promise<AuditLog> {
    const key = await loadOrCreateAuditKey(config.key)
    const log = new AuditLog(
      { path: config.path!, key, durability: config.durability, rotate: config.rotate },
      { log: this.#log, ...(this.#openFile ? { openFile: this.#openFile } : {}) },
    )
    await log.open()
    return log
  }

  #scheduleReopen(): void {
    if (this.#retry) return
    this.#retry = setInterval(() => {
      const config = this.#config
      if (!config?.path || this.#audit) return
      this.#build(config).then(
        (log) => {
          this.#audit = log
          this.#openError = null
          if (this.#retry) clearInterval(this.#retry)
          this.#retry = null
          this.#log.info({ path: config.path }, 'the audit log is open again')
        },
        () => undefined,
      )
    }, RETRY_OPEN_MS)
    this.#retry.unref()
  }

  /** Why the log cannot be written; null when it can (or no log is configured). */
  get failed(): string | null {
    if (!this.#config?.path) return null
    return this.#openError ?? this.#audit?.failed ?? null
  }

  /** Throws AuditWriteError (QE_AUDIT_WRITE) while the log is failed: what refuses a config change. */
  assertWritable(): void {
    const why = this.failed
    if (why !== null) throw new AuditWriteError(`the audit log cannot be written: ${why}; changes are refused until it can`)
  }

  /** Records one event; never throws (a failure is the log's state, logged once). Resolves when written (or refused). */
  async record(type: string, fields: AuditFields = {}): Promise<void> {
    const a = this.#audit
    if (!a) return
    const ok = await a.append(type, fields).then(() => true, () => false)
    if (ok) {
      const brief = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      this.#recent.push(`${new Date().toISOString()} ${type}${brief ? ` ${brief}` : ''}`.slice(0, 300))
      if (this.#recent.length > RECENT) this.#recent.shift()
    }
  }

  /** The last events this daemon wrote, one line each, oldest first (the web UI's audit panel). */
  recent(): readonly string[] {
    return [...this.#recent]
  }

  async start(gen: Generation): Promise<void> {
    await this.record('start', { node: gen.config.node.name, key: gen.selfKey, pid: process.pid })
  }

  async stop(): Promise<void> {
    if (this.#retry) clearInterval(this.#retry)
    this.#retry = null
    await this.record('stop', { pid: process.pid })
    await this.#audit?.close()
    this.#audit = null
  }

  async onReload(prev: Generation, next: Generation): Promise<void> {
    if (JSON.stringify(prev.config.audit) === JSON.stringify(next.config.audit)) return
    const old = this.#audit
    if (!next.config.audit.path) {
      await old?.append('audit-off', {}).catch(() => undefined)
      await old?.close()
      this.#audit = null
      this.#config = next.config.audit
      this.#openError = null
      return
    }
    try {
      const log = await this.#build(next.config.audit)
      await old?.append('audit-moved', { to: next.config.audit.path }).catch(() => undefined)
      await old?.close()
      this.#audit = log
      this.#config = next.config.audit
      this.#openError = null
      await this.record('audit-opened', { from: prev.config.audit.path })
    } catch (err) {
      this.#log.error({ path: next.config.audit.path, err: (err as Error).message }, 'the new audit log cannot be opened: the old one stays')
    }
  }

  status(): AuditStatus {
    const s = this.#audit?.status()
    return {
      enabled: this.#config?.path != null,
      path: this.#config?.path ?? null,
      lines: s?.lines ?? 0,
      seq: s?.seq ?? 0,
      failed: this.failed,
      durability: this.#config?.path ? this.#config.durability : null,
    }
  }
}
