/**
 * The control socket: a unix stream socket only root can open (mode 0600),
 * speaking newline-delimited JSON. One request per line:
 *   {"id": 1, "cmd": "status", "args": {...}}
 * one response per line:
 *   {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": {"code": "QE_…", "message": "…"}}
 *
 * Binding it is also the daemon's single-instance lock: a second daemon on
 * the same socket path finds a live listener and refuses to start; a socket
 * file left by a crashed daemon (nobody answers) is replaced.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'
import { chmod, mkdir, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { AlreadyRunningError, QeError, isQeError } from '../errors.js'
import type { Logger } from '../log.js'
import { peerCredOf, type PeerCred } from './peercred.js'

/** No daemon answers on the control socket. */
export class DaemonNotRunningError extends QeError {
  override readonly code = 'QE_DAEMON_NOT_RUNNING'
  constructor(message = 'no quicether daemon is running', options?: ErrorOptions) {
    super(message, options)
    this.name = 'DaemonNotRunningError'
  }
}

/** The daemon answered a control request with an error. */
export class ControlRequestError extends QeError {
  override readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'ControlRequestError'
    this.code = code
  }
}

/** Who sent a request: the unix socket's peer credentials (null when they could not be read). */
export interface ControlCaller {
  readonly cred: PeerCred | null
}

export type ControlHandler = (args: Record<string, unknown>, caller: ControlCaller) => Promise<unknown> | unknown

/** One request done (after its handler, whatever the outcome): what the audit log records. */
export interface ControlCommandEvent {
  readonly cmd: string
  readonly caller: ControlCaller
  readonly ok: boolean
  /** The error code when it failed. */
  readonly code: string | null
}

const MAX_LINE = 1024 * 1024
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107

export class ControlServer {
  readonly #path: string
  readonly #handlers: Map<string, ControlHandler>
  readonly #log: Logger
  #server: Server | null = null
  readonly #sockets = new Set<Socket>()

  readonly #onCommand: ((ev: ControlCommandEvent) => void) | undefined

  constructor(init: { path: string }, components: { handlers: Record<string, ControlHandler>; log: Logger; onCommand?: (ev: ControlCommandEvent) => void }) {
    this.#path = init.path
    this.#handlers = new Map(Object.entries(components.handlers))
    this.#log = components.log
    this.#onCommand = components.onCommand
  }

  get path(): string {
    return this.#path
  }

  async start(): Promise<void> {
    if (Buffer.byteLength(this.#path) > MAX_SOCKET_PATH) {
      throw new ControlRequestError('QE_CONTROL_PATH', `control socket path is longer than ${MAX_SOCKET_PATH} bytes (a unix socket limit): ${this.#path}`)
    }
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o755 })
    try {
      await this.#listen()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
      if (await isAlive(this.#path)) {
        throw new AlreadyRunningError(`another quicether daemon is already running (control socket ${this.#path} answers); stop it first or give this one another control.socket`)
      }
      await unlink(this.#path).catch(() => undefined) // left by a crashed daemon
      await this.#listen()
    }
    await chmod(this.#path, 0o600)
  }

  async stop(): Promise<void> {
    const server = this.#server
    this.#server = null
    for (const s of this.#sockets) s.destroy()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
    await unlink(this.#path).catch(() => undefined)
  }

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((sock) => this.#serve(sock))
      server.once('error', reject)
      server.listen(this.#path, () => {
        server.off('error', reject)
        server.on('error', (err) => this.#log.error({ err: err.message }, 'control socket error'))
        this.#server = server
        resolve()
      })
    })
  }

  #serve(sock: Socket): void {
    this.#sockets.add(sock)
    // Read once, at connect: the kernel recorded them then.
    const caller: ControlCaller = { cred: peerCredOf(sock) }
    sock.on('close', () => this.#sockets.delete(sock))
    sock.on('error', () => sock.destroy())
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('data', (chunk: string) => {
      buf += chunk
      if (buf.length > MAX_LINE) {
        sock.end(JSON.stringify({ id: null, ok: false, error: { code: 'QE_CONTROL_TOO_LARGE', message: 'request too large' } }) + '\n')
        return
      }
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.trim() !== '') void this.#handle(sock, line, caller)
      }
    })
  }

  async #handle(sock: Socket, line: string, caller: ControlCaller): Promise<void> {
    let id: unknown = null
    let reply: unknown
    let cmd = '(unparsed)'
    try {
      const req = JSON.parse(line) as { id?: unknown; cmd?: unknown; args?: unknown }
      id = req.id ?? null
      cmd = typeof req.cmd === 'string' ? req.cmd.slice(0, 64) : '(none)'
      const handler = typeof req.cmd === 'string' ? this.#handlers.get(req.cmd) : undefined
      if (!handler) throw new ControlRequestError('QE_CONTROL_UNKNOWN', `unknown command ${JSON.stringify(req.cmd)}`)
      const args = typeof req.args === 'object' && req.args !== null ? (req.args as Record<string, unknown>) : {}
      reply = { id, ok: true, result: await handler(args, caller) }
      this.#onCommand?.({ cmd, caller, ok: true, code: null })
    } catch (err) {
      const code = isQeError(err) ? err.code : err instanceof SyntaxError ? 'QE_CONTROL_BAD_REQUEST' : 'QE_INTERNAL'
      if (code === 'QE_INTERNAL') this.#log.error({ err: (err as Error).stack }, 'control request failed')
      reply = { id, ok: false, error: { code, message: (err as Error).message } }
      this.#onCommand?.({ cmd, caller, ok: false, code })
    }
    if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n')
  }
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path)
    const done = (alive: boolean) => {
      s.destroy()
      resolve(alive)
    }
    s.once('connect', () => done(true))
    s.once('error', () => done(false))
    s.setTimeout(1000, () => done(false))
  })
}

/** Sends one request to the daemon and returns its result; throws DaemonNotRunningError or ControlRequestError. */
export function controlRequest(path: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = connect(path)
    let buf = ''
    s.setEncoding('utf8')
    s.setTimeout(timeoutMs, () => {
      s.destroy()
      reject(new ControlRequestError('QE_CONTROL_TIMEOUT', `the daemon did not answer ${cmd} within ${timeoutMs} ms`))
    })
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new DaemonNotRunningError(`no quicether daemon is running (nothing answers on ${path})`))
      else if (err.code === 'EACCES') reject(new DaemonNotRunningError(`permission denied on ${path}: the control socket is for root`))
      else reject(err)
    })
    s.once('connect', () => s.write(JSON.stringify({ id: 1, cmd, args }) + '\n'))
    s.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      s.destroy()
      try {
        const res = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: { code: string; message: string } }
        if (res.ok) resolve(res.result)
        else reject(new ControlRequestError(res.error?.code ?? 'QE_CONTROL', res.error?.message ?? 'request failed'))
      } catch (err) {
        reject(err)
      }
    })
  })
}
