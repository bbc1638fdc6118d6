/**
 * A host port into a lab namespace: a browser on the host reaches a node's
 * UI or metrics, which listen on the node's own loopback.
 *
 *   host 127.0.0.1:P ──tcp──▶ unix socket (the run's dir) ──▶ bridge in the netns ──tcp──▶ 127.0.0.1:port
 *
 * A unix socket is a file, so it is reachable from both sides of a network
 * namespace; the bridge is a Node process started in the namespace with `ip
 * netns exec`. Nothing is sent anywhere but the host's loopback and the
 * namespace's.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { LabCommandError } from './errors.js'

/** Runs in the namespace: unix socket (argv[1]) → 127.0.0.1:argv[2]. Exits when its parent's pipe closes. */
const BRIDGE = `
const net = require('node:net')
const [path, port] = process.argv.slice(1)
const srv = net.createServer((c) => {
  const u = net.connect(Number(port), '127.0.0.1')
  c.pipe(u).pipe(c)
  const end = () => { c.destroy(); u.destroy() }
  c.on('error', end); u.on('error', end)
})
srv.listen(path, () => process.stdout.write('ready\\n'))
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
`

export interface Forward {
  /** The host loopback port. */
  readonly port: number
  close(): Promise<void>
}

function pipe(a: Socket, b: Socket): void {
  a.pipe(b).pipe(a)
  const end = () => {
    a.destroy()
    b.destroy()
  }
  a.on('error', end)
  b.on('error', end)
  a.on('close', end)
  b.on('close', end)
}

/** Forwards host 127.0.0.1:`hostPort` (0: any free port) to 127.0.0.1:`port` inside `netns`. */
export async function forwardIntoNetns(netns: string, port: number, hostPort = 0): Promise<Forward> {
  const dir = await mkdtemp(join(tmpdir(), 'qe-fwd-'))
  const path = join(dir, 'bridge.sock')
  const child: ChildProcess = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', BRIDGE, path, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const cleanup = async () => {
    child.stdin?.end()
    child.kill()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new LabCommandError(`the bridge into ${netns} did not start`)), 10_000)
      child.once('error', (err) => reject(new LabCommandError(`cannot start the bridge into ${netns}: ${err.message}`)))
      child.once('exit', (code) => reject(new LabCommandError(`the bridge into ${netns} exited (${code}): does the namespace exist?`)))
      child.stdout?.once('data', () => {
        clearTimeout(t)
        resolve()
      })
    })
    await stat(path)
  } catch (err) {
    await cleanup()
    throw err
  }
  child.removeAllListeners('exit')
  const open = new Set<Socket>()
  const server: Server = createServer((c) => {
    open.add(c)
    c.on('close', () => open.delete(c))
    pipe(c, createConnection(path))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new LabCommandError(`cannot listen on 127.0.0.1:${hostPort}: ${err.message}`)))
    server.listen(hostPort, '127.0.0.1', () => resolve())
  }).catch(async (err: unknown) => {
    await cleanup()
    throw err
  })
  const a = server.address()
  return {
    port: typeof a === 'object' && a ? a.port : hostPort,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const c of open) c.destroy()
      await closed
      await cleanup()
    },
  }
}

export interface NodeFaces {
  readonly node: string
  readonly netns: string
  /** The page with its token in the fragment. */
  readonly ui: string
  readonly metrics: string
  close(): Promise<void>
}

/**
 * A lab node's web UI and metrics on the host's loopback. The token is read
 * from the node's state dir (the daemon makes it when its UI starts).
 */
export async function openNodeFaces(o: { netns: string; node: string; stateDir: string; uiPort: number; metricsPort: number; hostUiPort?: number; hostMetricsPort?: number }): Promise<NodeFaces> {
  const { readFile } = await import('node:fs/promises')
  const token = (await readFile(join(o.stateDir, 'ui.token'), 'utf8').catch(() => {
    throw new LabCommandError(`no UI token in ${o.stateDir}: is ${o.node}'s daemon running with ui.listen?`)
  })).trim()
  const ui = await forwardIntoNetns(o.netns, o.uiPort, o.hostUiPort ?? 0)
  const metrics = await forwardIntoNetns(o.netns, o.metricsPort, o.hostMetricsPort ?? 0).catch(async (err: unknown) => {
    await ui.close()
    throw err
  })
  return {
    node: o.node,
    netns: o.netns,
    ui: `http://127.0.0.1:${ui.port}/#token=${token}`,
    metrics: `http://127.0.0.1:${metrics.port}/metrics`,
    close: async () => {
      await ui.close()
      await metrics.close()
    },
  }
}
