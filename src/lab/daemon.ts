/**
 * quicether daemons in lab nodes: identities and configs written under the
 * run's temp dir, `ip netns exec NS node bin/quicether.js start --config
 * FILE` (the compiled tree: `npm run build` first), JSON-line logs to
 * <dir>/<node>/daemon.log, and a wait until the overlay answers pings. Every
 * failure message ends with the daemons' last log lines.
 */
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { stringify as toYaml } from 'yaml'
import { generateIdentity, loadIdentity, publicKeyBase64, saveIdentity } from '../mesh/identity.js'
import { LabAbortedError, LabDaemonError, LabPrerequisiteError } from './errors.js'
import { spawnIn, stopChild } from './exec.js'
import { repoRoot } from './delay.js'
import { nodeConfig, overlayAddresses, peerEndpoints } from './nodeconfig.js'
import { pingOnce } from './traffic.js'
import type { Lab } from './topology.js'
import type { LabNetwork } from './scenario.js'

/** The CLI launcher the daemons run; throws LabPrerequisiteError when the compiled tree is missing. */
export function quicetherLauncher(): string {
  const root = repoRoot()
  const bin = join(root, 'bin', 'quicether.js')
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    throw new LabPrerequisiteError(`the compiled tree is missing: run 'npm run build' in ${root}`)
  }
  return bin
}

export class LabDaemon {
  #child: ChildProcess | null = null

  constructor(
    readonly init: {
      readonly node: string
      readonly netns: string
      /** The node's public key (base64), as its peers know it. */
      readonly key: string
      readonly configPath: string
      readonly logPath: string
      readonly runId: string
      readonly detached: boolean
    },
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** True when the process has exited (crashed, or refused its config). */
  get exited(): boolean {
    const c = this.#child
    return c !== null && (c.exitCode !== null || c.signalCode !== null)
  }

  start(): void {
    const bin = quicetherLauncher()
    const fd = openSync(this.init.logPath, 'a')
    try {
      this.#child = spawnIn(this.init.netns, process.execPath, [bin, 'start', '--config', this.init.configPath], {
        runId: this.init.runId,
        detached: this.init.detached,
        stdio: ['ignore', fd, fd],
      })
      this.#child.on('error', () => undefined)
    } finally {
      closeSync(fd)
    }
  }

  /** SIGTERM (the daemon removes its TUN and routes), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (this.#child) await stopChild(this.#child, 5000)
    this.#child = null
  }

  /** The last `n` lines of the daemon's log. */
  logTail(n = 12): string[] {
    try {
      return readFileSync(this.init.logPath, 'utf8').trimEnd().split('\n').filter(Boolean).slice(-n)
    } catch {
      return []
    }
  }

  /** Log lines (parsed JSON) whose `msg` matches `re`, in order. */
  events(re: RegExp): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = []
    let text: string
    try {
      text = readFileSync(this.init.logPath, 'utf8')
    } catch {
      return out
    }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        const o = JSON.parse(line) as Record<string, unknown>
        if (typeof o['msg'] === 'string' && re.test(o['msg'])) out.push(o)
      } catch {
        // not a log line
      }
    }
    return out
  }
}

/** The message of a daemon failure: what happened, then each daemon's last log lines. */
export function withLogs(what: string, daemons: readonly LabDaemon[]): string {
  const parts = [what]
  for (const d of daemons) {
    const tail = d.logTail()
    parts.push(`--- ${d.init.node} (${d.init.logPath})${d.exited ? ', exited' : ''}:`, ...(tail.length ? tail : ['(no log output)']))
  }
  return parts.join('\n')
}

export interface StartDaemonsInit {
  readonly lab: Lab
  readonly network: LabNetwork
  readonly detached: boolean
  /** How long to wait for every dialing pair's overlay ping (default 30 s). */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  /** Rewrites a node's generated config (kebab-case) before it is written; default: as generated. */
  readonly configFor?: (node: string, config: Record<string, unknown>) => Record<string, unknown>
  /**
   * Names this start's files `quicether-<tag>.yaml` and `daemon-<tag>.log`,
   * so one lab can start its daemons several times (each with its own
   * config and log); default `quicether.yaml` and `daemon.log`.
   */
  readonly tag?: string
}

/**
 * Generates identities (or reuses those of an earlier start in the same lab)
 * and configs for the lab's daemon nodes, starts the daemons, and waits
 * until every pair that dials each other answers pings on the overlay.
 * Returns the daemons by node name.
 */
export async function startDaemons(init: StartDaemonsInit): Promise<Map<string, LabDaemon>> {
  const { lab, network } = init
  const spec = lab.spec
  const daemonNodes = spec.nodes.filter((n) => n.daemon)
  const keys = new Map<string, string>()
  for (const n of daemonNodes) {
    const home = join(lab.dir, n.name)
    await mkdir(home, { recursive: true, mode: 0o700 })
    const keyPath = join(home, 'identity.key')
    let id
    if (existsSync(keyPath)) {
      id = await loadIdentity(keyPath)
    } else {
      id = generateIdentity()
      await saveIdentity(keyPath, id)
    }
    keys.set(n.name, publicKeyBase64(id))
  }
  const daemons = new Map<string, LabDaemon>()
  const tuns = new Map<string, string>()
  for (const n of daemonNodes) {
    const home = join(lab.dir, n.name)
    const suffix = init.tag ? `-${init.tag}` : ''
    const configPath = join(home, `quicether${suffix}.yaml`)
    const generated = nodeConfig({ topology: spec, network, keys, dir: lab.dir }, n.name)
    const config = init.configFor ? init.configFor(n.name, generated) : generated
    tuns.set(n.name, tunName(config))
    await writeFile(configPath, `# generated by quicether lab (run ${lab.runId})\n${toYaml(config)}`, { mode: 0o600 })
    const d = new LabDaemon({ node: n.name, netns: lab.node(n.name).netns, key: keys.get(n.name)!, configPath, logPath: join(home, `daemon${suffix}.log`), runId: lab.runId, detached: init.detached })
    d.start()
    daemons.set(n.name, d)
  }
  const overlay = overlayAddresses(spec, network)
  const pairs: [string, string][] = []
  for (const a of daemonNodes) {
    for (const b of daemonNodes) {
      if (a.name !== b.name && peerEndpoints(spec, a.name, b.name, network.port).dial) pairs.push([a.name, b.name])
    }
  }
  try {
    for (const [a, b] of pairs) {
      await waitForOverlay({ netns: lab.node(a).netns, to: overlay.get(b)!.ipv4, dev: tuns.get(a)!, daemons: [...daemons.values()], timeoutMs: init.timeoutMs ?? 30_000, ...(init.signal ? { signal: init.signal } : {}), label: `${a} → ${b}` })
    }
  } catch (err) {
    // Leave no daemon of a failed start behind: the lab may start its daemons again.
    for (const d of daemons.values()) await d.stop()
    throw err
  }
  return daemons
}

/** The TUN device a node config names (the daemon's default otherwise). */
function tunName(config: Record<string, unknown>): string {
  const name = (config['tun'] as { name?: unknown } | undefined)?.name
  return typeof name === 'string' ? name : 'qe0'
}

/**
 * Pings `to` from `netns` through the TUN `dev` until it answers; throws
 * LabDaemonError (with logs) on timeout or when a daemon exits. The echo is
 * bound to the TUN: where the underlay also reaches the peer's overlay
 * address, an answer through it said nothing about the tunnel, and a
 * transfer started then could carry an uplink's source address into the
 * tunnel once its routes appeared (dropped there as spoofed: a hang).
 */
export async function waitForOverlay(o: { netns: string; to: string; dev: string; daemons: readonly LabDaemon[]; timeoutMs: number; label: string; signal?: AbortSignal }): Promise<number> {
  const t0 = Date.now()
  while (Date.now() - t0 < o.timeoutMs) {
    if (o.signal?.aborted) throw new LabAbortedError()
    const dead = o.daemons.find((d) => d.exited)
    if (dead) throw new LabDaemonError(withLogs(`the daemon of ${dead.init.node} exited while waiting for the overlay (${o.label})`, o.daemons))
    if (await pingOnce(o.netns, o.to, 1000, o.dev)) return Date.now() - t0
  }
  throw new LabDaemonError(withLogs(`the overlay did not answer within ${Math.round(o.timeoutMs / 1000)} s (${o.label}: ping ${o.to})`, o.daemons))
}
