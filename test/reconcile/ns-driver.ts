/**
 * Test driver that runs INSIDE a network namespace (started by
 * `test/system/netns.ts` through `ip netns exec NS node --import tsx …`).
 * It owns one NetlinkAdapter and one Reconciler and obeys JSON commands, one
 * per stdin line, answering one JSON line each on stdout:
 *
 *   {"id":1,"cmd":"apply","desired":{…}}           → {"id":1,"ok":true,"result":ApplyResult}
 *   {"id":2,"cmd":"adapter","method":"listRoutes","args":[{…}]}
 *
 * Commands: init {failAt?, debounceMs?, periodicMs?}, start, stop, apply,
 * plan, observe, cleanup, last, adapter, watch, events, exit. Unsolicited lines are events:
 * {"event":"ready"}.
 */
import { createInterface } from 'node:readline'
import { NetlinkAdapter } from '../../src/system/netlink.js'
import { Reconciler } from '../../src/reconcile/reconciler.js'
import { createLogger } from '../../src/log.js'
import type { ReconcilerInit } from '../../src/reconcile/types.js'
import type { KernelEvent, SystemAdapter } from '../../src/system/types.js'

interface Command {
  id: number
  cmd: string
  [k: string]: unknown
}

const system = new NetlinkAdapter()
// Logs go to stderr (the parent shows them on failure); stdout carries the protocol only.
const log = createLogger({ level: (process.env.QE_TEST_LOG as 'info' | undefined) ?? 'silent', destination: 2 })
let reconciler = new Reconciler({}, { system, log })
const events: KernelEvent[] = []
let unwatch: (() => void) | null = null

function send(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

async function handle(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case 'init':
      await reconciler.stop()
      reconciler = new Reconciler((c.init ?? {}) as ReconcilerInit, { system, log })
      return null
    case 'start':
      return reconciler.start()
    case 'stop':
      return reconciler.stop()
    case 'apply':
      return reconciler.apply(c.desired as never)
    case 'plan':
      return reconciler.plan(c.desired as never)
    case 'observe':
      return reconciler.observe((c.desired ?? null) as never)
    case 'cleanup':
      return reconciler.cleanup()
    case 'last':
      return reconciler.lastResult
    case 'watch':
      // Collect kernel events from now on; `events` returns and clears them.
      unwatch ??= system.subscribe((e) => events.push(e))
      return null
    case 'events':
      return events.splice(0)
    case 'adapter': {
      const method = c.method as keyof SystemAdapter
      const fn = system[method] as (...args: unknown[]) => Promise<unknown>
      return fn.apply(system, (c.args ?? []) as unknown[])
    }
    case 'exit':
      unwatch?.()
      await reconciler.stop()
      system.close()
      setImmediate(() => process.exit(0))
      return null
    default:
      throw new Error(`unknown command ${c.cmd}`)
  }
}

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  if (!line.trim()) return
  const c = JSON.parse(line) as Command
  handle(c).then(
    (result) => send({ id: c.id, ok: true, result: result ?? null }),
    (err: unknown) => {
      const e = err as { name?: string; code?: string; message?: string; retryable?: boolean }
      send({ id: c.id, ok: false, error: { name: e.name, code: e.code, message: e.message, retryable: e.retryable } })
    },
  )
})
// The parent going away ends the driver (a kill -9 of the driver is a separate test).
rl.on('close', () => process.exit(0))
send({ event: 'ready', pid: process.pid })
