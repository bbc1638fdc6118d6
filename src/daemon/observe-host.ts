/**
 * The node's HTTP faces, as one subsystem: Prometheus metrics on
 * `metrics.listen`, the web UI on `ui.listen`. Both read the daemon's status
 * snapshot and change nothing. A reload that moves a listener closes the old
 * one and binds the new; one that cannot bind is logged and reported in
 * status, and the tunnels carry on.
 */
import type { Endpoint } from '../config/index.js'
import type { Logger } from '../log.js'
import { fmt, type HttpListener, listenHttp, send } from '../observe/http.js'
import { Metrics, type ApplyKind } from '../observe/metrics.js'
import type { NodeStatus, ObserveStatus } from '../observe/status.js'
import { ensureUiToken, UiServer } from '../observe/ui-server.js'
import type { UiView } from '../observe/ui-view.js'
import { packageVersion } from '../cli/context.js'
import type { Generation } from './generation.js'
import type { Subsystem } from './subsystem.js'


export class ObserveHost implements Subsystem<ObserveStatus> {
  readonly name = 'observe'
  readonly metrics: Metrics
  readonly #log: Logger
  readonly #snapshot: () => NodeStatus
  #metricsAt: Endpoint | null = null
  #metricsServer: HttpListener | null = null
  #metricsError: string | null = null
  #uiAt: Endpoint | null = null
  #uiKey = ''
  #ui: UiServer | null = null
  #uiError: string | null = null

  readonly #audit: (() => UiView['audit']) | undefined

  constructor(c: { log: Logger; snapshot: () => NodeStatus; audit?: () => UiView['audit'] }) {
    this.#log = c.log
    this.#snapshot = c.snapshot
    this.#audit = c.audit
    this.metrics = new Metrics({ snapshot: c.snapshot, version: packageVersion() })
  }

  observeApply(kind: ApplyKind, ok: boolean, durationMs: number, changed: boolean): void {
    this.metrics.observeApply(kind, ok, durationMs, changed)
  }

  async start(gen: Generation): Promise<void> {
    await this.#sync(gen)
  }

  async onReload(_prev: Generation, next: Generation): Promise<void> {
    await this.#sync(next)
  }

  async stop(): Promise<void> {
    await this.#metricsServer?.close()
    this.#metricsServer = null
    this.#metricsAt = null
    await this.#ui?.stop()
    this.#ui = null
    this.#uiAt = null
  }

  status(): ObserveStatus {
    return {
      metrics: this.#metricsAt ? { listen: fmt(this.#metricsServer?.address ?? this.#metricsAt), error: this.#metricsError } : null,
      ui: this.#uiAt ? { listen: fmt(this.#ui?.address ?? this.#uiAt), error: this.#uiError } : null,
    }
  }

  async #sync(gen: Generation): Promise<void> {
    const m = gen.config.metrics.listen
    if (!same(m, this.#metricsAt)) {
      await this.#metricsServer?.close()
      this.#metricsServer = null
      this.#metricsAt = m
      this.#metricsError = null
      if (m) {
        try {
          this.#metricsServer = await listenHttp('metrics', m, async (req, res) => {
            const path = new URL(req.url ?? '/', 'http://m.invalid').pathname
            if (path !== '/metrics') return send(res, 404, 'text/plain; charset=utf-8', 'not found: metrics are at /metrics\n')
            const { contentType, body } = await this.metrics.scrape()
            send(res, 200, contentType, body)
          })
          this.#log.info({ listen: fmt(this.#metricsServer.address) }, 'metrics listening')
        } catch (err) {
          this.#metricsError = (err as Error).message
          this.#log.error({ err: this.#metricsError }, 'metrics not served')
        }
      }
    }
    const u = gen.config.ui.listen
    const key = u ? `${fmt(u)}|${gen.config.node.stateDir}` : ''
    if (key !== this.#uiKey) {
      await this.#ui?.stop()
      this.#ui = null
      this.#uiAt = u
      this.#uiKey = key
      this.#uiError = null
      if (u) {
        try {
          const token = await ensureUiToken(gen.config.node.stateDir)
          const ui = new UiServer({ listen: u, token }, { snapshot: this.#snapshot, log: this.#log, ...(this.#audit ? { audit: this.#audit } : {}) })
          await ui.start()
          this.#ui = ui
          this.#log.info({ listen: fmt(ui.address ?? u) }, 'web UI listening (quicether ui --url prints its address)')
        } catch (err) {
          this.#uiError = (err as Error).message
          this.#log.error({ err: this.#uiError }, 'web UI not served')
        }
      }
    }
  }
}

function same(a: Endpoint | null, b: Endpoint | null): boolean {
  return a === b || (a !== null && b !== null && a.host === b.host && a.port === b.port)
}
