/**
 * The small HTTP listeners of a node (metrics, web UI) on `node:http`: bound
 * where the config says, closed with every connection (a UI's open stream
 * must not hold a stop or a reload).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Endpoint } from '../config/index.js'
import { QeError } from '../errors.js'

/** A listener could not bind (address in use, not ours, …). */
export class ListenError extends QeError {
  override readonly code = 'QE_LISTEN'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ListenError'
  }
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

export interface HttpListener {
  /** host:port actually bound (port 0 picks one). */
  readonly address: { readonly host: string; readonly port: number }
  close(): Promise<void>
}

export async function listenHttp(what: string, at: Endpoint, handler: Handler): Promise<HttpListener> {
  const server: Server = createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${err.message}\n`)
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 5_000
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ListenError(`${what} cannot listen on ${fmt(at)}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EADDRNOTAVAIL' ? 'no interface has this address' : err.message}`, { cause: err })),
    )
    server.listen({ host: at.host, port: at.port, exclusive: true }, () => resolve())
  })
  const a = server.address()
  const port = typeof a === 'object' && a !== null ? a.port : at.port
  return {
    address: { host: at.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

export function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), ...headers })
  res.end(body)
}

export function fmt(at: { host: string; port: number }): string {
  return `${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`
}
