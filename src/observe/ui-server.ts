/**
 * The web UI: a read-only page of the node and the data behind it.
 *
 *   GET /                   the page (static; holds no data)
 *   GET /assets/…           its script and style, and the graph and chart libraries
 *   GET /api/view           one UiView (JSON)                       token needed
 *   GET /api/stream         a UiView about once a second (SSE)      token needed
 *
 * The token is a random secret in `<state-dir>/ui.token` (0600, made on first
 * start; `quicether ui --url` prints the page's address with it). The page
 * takes it from the URL's fragment (never sent to a server, never in a log)
 * and sends it as `Authorization: Bearer`. No token, no data: every /api
 * answer without it is 401. Nothing here changes the node: changes go
 * through the file or `quicether apply`.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile, writeFile, chmod, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Endpoint } from '../config/index.js'
import type { Logger } from '../log.js'
import { listenHttp, send, type HttpListener } from './http.js'
import { RateMeter } from './rates.js'
import type { NodeStatus } from './status.js'
import { NO_AUDIT, uiView, type UiView } from './ui-view.js'

export const UI_TOKEN_FILE = 'ui.token'
const PUSH_MS = 1000
const MAX_STREAMS = 32

/** The UI's token: read from `<stateDir>/ui.token`, made (0600) when absent. */
export async function ensureUiToken(stateDir: string): Promise<string> {
  const path = join(stateDir, UI_TOKEN_FILE)
  try {
    const st = await stat(path)
    if ((st.mode & 0o077) !== 0) await chmod(path, 0o600)
    const t = (await readFile(path, 'utf8')).trim()
    if (t.length >= 16) return t
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(24).toString('base64url')
  await writeFile(path, token + '\n', { mode: 0o600 })
  await chmod(path, 0o600)
  return token
}

export async function readUiToken(stateDir: string): Promise<string> {
  return (await readFile(join(stateDir, UI_TOKEN_FILE), 'utf8')).trim()
}

const require = createRequire(import.meta.url)
const ASSETS: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => uiFile('index.html'), type: 'text/html; charset=utf-8' },
  '/assets/app.js': { file: () => uiFile('app.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/style.css': { file: () => uiFile('style.css'), type: 'text/css; charset=utf-8' },
  '/assets/uPlot.js': { file: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/uPlot.css': { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
  '/assets/cytoscape.js': { file: () => require.resolve('cytoscape/dist/cytoscape.min.js'), type: 'text/javascript; charset=utf-8' },
}

/** The page's files: `ui/` at the package root (beside src/ and dist/). */
function uiFile(name: string): string {
  return new URL(`../../ui/${name}`, import.meta.url).pathname
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
}

export interface UiServerInit {
  readonly listen: Endpoint
  readonly token: string
}

export interface UiServerComponents {
  readonly snapshot: () => NodeStatus
  readonly audit?: () => UiView['audit']
  readonly log: Logger
}

export class UiServer {
  readonly #init: UiServerInit
  readonly #c: UiServerComponents
  readonly #meter = new RateMeter()
  readonly #cache = new Map<string, Buffer>()
  readonly #streams = new Set<ServerResponse>()
  #listener: HttpListener | null = null
  #timer: NodeJS.Timeout | null = null
  #last: UiView | null = null

  constructor(init: UiServerInit, components: UiServerComponents) {
    this.#init = init
    this.#c = components
  }

  get address(): HttpListener['address'] | null {
    return this.#listener?.address ?? null
  }

  async start(): Promise<void> {
    this.#listener = await listenHttp('the web UI', this.#init.listen, (req, res) => this.#handle(req, res))
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    for (const s of this.#streams) s.end()
    this.#streams.clear()
    await this.#listener?.close()
    this.#listener = null
  }

  /** A fresh view (and the rates since the previous one). */
  #view(): UiView {
    const s = this.#c.snapshot()
    this.#last = uiView(s, this.#meter.sample(s, Date.now()), this.#c.audit?.() ?? NO_AUDIT)
    return this.#last
  }

  #authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)$/i.exec(h)
    if (!m) return false
    const got = Buffer.from(m[1]!)
    const want = Buffer.from(this.#init.token)
    return got.length === want.length && timingSafeEqual(got, want)
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ui.invalid')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'read-only: change the node through its config file or quicether apply\n', { allow: 'GET, HEAD' })
      return
    }
    const asset = ASSETS[url.pathname]
    if (asset) {
      let body = this.#cache.get(url.pathname)
      if (!body) {
        body = await readFile(asset.file())
        this.#cache.set(url.pathname, body)
      }
      send(res, 200, asset.type, body, { ...SECURITY_HEADERS, 'cache-control': url.pathname === '/' ? 'no-cache' : 'max-age=3600' })
      return
    }
    if (!url.pathname.startsWith('/api/')) {
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n')
      return
    }
    if (!this.#authorized(req)) {
      send(res, 401, 'application/json', JSON.stringify({ error: 'a token is needed: open the address `quicether ui --url` prints' }) + '\n', { 'www-authenticate': 'Bearer', 'cache-control': 'no-store' })
      return
    }
    if (url.pathname === '/api/view') {
      send(res, 200, 'application/json', JSON.stringify(this.#view()), { 'cache-control': 'no-store' })
      return
    }
    if (url.pathname === '/api/stream') {
      if (this.#streams.size >= MAX_STREAMS) {
        send(res, 503, 'text/plain; charset=utf-8', 'too many open pages\n')
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      res.write(`retry: 2000\ndata: ${JSON.stringify(this.#last ?? this.#view())}\n\n`)
      this.#streams.add(res)
      req.on('close', () => {
        this.#streams.delete(res)
        if (this.#streams.size === 0 && this.#timer) {
          clearInterval(this.#timer)
          this.#timer = null
        }
      })
      if (!this.#timer) {
        this.#timer = setInterval(() => this.#push(), PUSH_MS)
        this.#timer.unref()
      }
      return
    }
    send(res, 404, 'application/json', JSON.stringify({ error: 'not found' }) + '\n')
  }

  /** One view for every open page. */
  #push(): void {
    let data: string
    try {
      data = `data: ${JSON.stringify(this.#view())}\n\n`
    } catch (err) {
      this.#c.log.warn({ err: (err as Error).message }, 'ui: cannot build the view')
      return
    }
    for (const s of this.#streams) s.write(data)
  }
}
