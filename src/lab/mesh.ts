/**
 * `quicether lab mesh`: N daemons that know nothing of each other but the
 * network (its CA, their certificate, the network secret) and one lab
 * bootstrap node, on one switched segment. No `connect-to`, no peer
 * endpoints: the mesh forms from discovery alone. It measures:
 *
 * - `full_mesh_ms`: from the last of the N daemons being up (its control
 *   socket answers: tunnels, DHT and first apply done) until every pair is
 *   up; the processes' own start (N node processes at once: on a 2-core
 *   machine most of the wait) is `daemon_start_ms`, and the sum from the
 *   spawn is `full_mesh_from_spawn_ms`;
 * - `late_joiner_ms`: a node started after that, from its daemon being up
 *   until it and every member have each other up (and from its spawn);
 * - `join_ms` (`--join`): a device with no identity runs
 *   `quicether join TOKEN` (the token from `quicether invite` on the first
 *   node, which holds the CA) and starts; until every member has it up.
 *
 * "Up" is read from each daemon's status over its control socket. Then each
 * pair pings through the overlay (RTT), and the path is named: `lan` when
 * the peer was found on the LAN segment and the tunnel runs to that address.
 * Always tears down, also on errors and Ctrl-C.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { initCa, openCa, saveCertificate } from '../pki/index.js'
import { generateIdentity, publicKeyBase64, saveIdentity } from '../mesh/identity.js'
import { controlRequest } from '../observe/control-socket.js'
import type { NodeStatus } from '../observe/status.js'
import { LabDaemon, quicetherLauncher } from './daemon.js'
import { LabCommandError } from './errors.js'
import { ipBatch, runIn, RUN_ENV, timeUntil } from './exec.js'
import { checkAborted } from './interrupt.js'
import { linkIfname, newRunId, nodeNetns, runDir } from './names.js'
import { createNetns } from './netns.js'
import { labDown } from './teardown.js'
import { ping, percentile } from './traffic.js'

export interface MeshOptions {
  readonly nodes: number
  readonly lan: boolean
  readonly join: boolean
  /** How long to wait for each phase before calling it failed, s. */
  readonly seconds: number
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

export interface MeshPair {
  readonly a: string
  readonly b: string
  readonly up: boolean
  readonly path: 'direct' | 'lan' | 'relay'
  readonly rtt_ms: number | null
}

export interface MeshResult {
  readonly nodes: number
  readonly full_mesh_ms: number | null
  readonly late_joiner_ms: number | null
  readonly join_ms: number | null
  /** A node's new address, from appearing on its interface until every member lists it (target ≤ 2000 ms). */
  readonly endpoint_spread_ms: number | null
  readonly pairs: readonly MeshPair[]
  /** From spawning the N daemon processes until every one answers on its control socket. */
  readonly daemon_start_ms: number | null
  /** `full_mesh_ms` plus the processes' start: from spawning them until every pair is up. */
  readonly full_mesh_from_spawn_ms: number | null
  readonly late_joiner_from_spawn_ms: number | null
  readonly lan: boolean
  readonly run_id: string
}

const SUBNET = '10.251.0'
const PORT = 7443
const NETWORK = 'labmesh'
const OVERLAY = { ipv4: '100.70.0.0/16', ipv6: 'fd70:70:70::/48' }

export interface MeshNode {
  readonly name: string
  readonly netns: string
  readonly address: string
  readonly dir: string
  readonly configPath: string
  readonly socket: string
  daemon: LabDaemon | null
}

export interface MeshLabInit {
  readonly members: number
  readonly lan: boolean
  /** Also build the namespace of a device that joins by invite (`joiner`). */
  readonly join: boolean
  /** Certificate lifetime of member `name`, ms, and how long ago it began (tests of renewal). */
  readonly certLifetime?: (name: string) => { lifetimeMs: number; agoMs: number } | null
}

/**
 * The lab of `lab mesh`: a bootstrap node (`boot`), members `n1`..`nN`
 * (`n1` holds the CA: invites, renewals, revocations), a late joiner
 * (`late`) and optionally a device with nothing (`joiner`), all on one
 * bridge. Constructors wire; `start()` builds and writes every file; the
 * daemons start when asked; `stop()` tears everything down by run id.
 */
export class MeshLab {
  readonly runId = newRunId()
  readonly dir = runDir(this.runId)
  readonly caDir = join(this.dir, 'ca')
  readonly #init: MeshLabInit
  readonly #nodes = new Map<string, MeshNode>()

  constructor(init: MeshLabInit) {
    this.#init = init
  }

  get memberNames(): string[] {
    return Array.from({ length: this.#init.members }, (_, i) => `n${i + 1}`)
  }

  node(name: string): MeshNode {
    const n = this.#nodes.get(name)
    if (!n) throw new LabCommandError(`no node '${name}' in this mesh lab`)
    return n
  }

  async start(): Promise<void> {
    try {
      await this.#build()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async #build(): Promise<void> {
    const { runId, dir } = this
    await mkdir(dir, { mode: 0o700 })
    const sw = nodeNetns(runId, 'sw')
    await createNetns(sw)
    await ipBatch(sw, ['link add br0 type bridge', 'link set br0 up'])
    // One address per index: 0 is the bootstrap node, then the members, the late joiner, the invited device.
    const names = ['boot', ...this.memberNames, 'late', ...(this.#init.join ? ['joiner'] : [])]
    for (const [i, name] of names.entries()) this.#nodes.set(name, await addNode(runId, dir, sw, name, i))
    await initCa(this.caDir, { network: NETWORK, overlay: OVERLAY })
    const ca = await openCa(this.caDir)
    const secret = (await ca.secret()).toString('base64') + '\n'
    const boot = this.node('boot')
    const bootstrap = [`${boot.address}:${PORT + 1}`]
    // A bootstrap node has a key like every node (its tunnel), but no certificate and no secret.
    await saveIdentity(join(boot.dir, 'identity.key'), generateIdentity())
    await writeNodeConfig(boot, { node: { name: 'boot', role: 'bootstrap' }, network: { name: NETWORK, overlay: OVERLAY } })
    for (const n of this.#nodes.values()) {
      if (n.name === 'joiner' || n.name === 'boot') continue
      const id = generateIdentity()
      await saveIdentity(join(n.dir, 'identity.key'), id)
      const life = this.#init.certLifetime?.(n.name) ?? null
      const cert = await ca.sign({ key: publicKeyBase64(id), name: n.name, ...(life ? { lifetimeMs: life.lifetimeMs, now: Date.now() - life.agoMs } : {}) })
      await saveCertificate(join(n.dir, 'node.crt'), cert)
      await writeFile(join(n.dir, 'network.secret'), secret, { mode: 0o600 })
      await writeNodeConfig(n, {
        node: { name: n.name },
        network: { name: NETWORK, ca: ca.info.publicKey, overlay: OVERLAY, ...(n.name === 'n1' ? { 'ca-dir': this.caDir } : {}) },
        discovery: { dht: true, bootstrap, lan: this.#init.lan },
      })
    }
  }

  startDaemon(name: string): void {
    const n = this.node(name)
    n.daemon = new LabDaemon({ node: n.name, netns: n.netns, key: '', configPath: n.configPath, logPath: join(n.dir, 'stdout.log'), runId: this.runId, detached: false })
    n.daemon.start()
  }

  async stopDaemon(name: string): Promise<void> {
    await this.node(name).daemon?.stop()
  }

  status(name: string): Promise<NodeStatus | null> {
    return status(this.node(name))
  }

  /** Every named daemon answers on its control socket (it has started: tunnels, DHT, first apply). */
  async ready(names: readonly string[]): Promise<boolean> {
    for (const n of names) if (!(await this.status(n))?.node) return false
    return true
  }

  /** Packets the named nodes tried to send outside the lab (counted and dropped by nftables). */
  async leaked(names: readonly string[]): Promise<number> {
    let sum = 0
    for (const n of names) {
      const r = await runIn(this.node(n).netns, 'nft', ['-j', 'list', 'counter', 'inet', 'qeleak', 'leaked'])
      const doc = JSON.parse(r.stdout) as { nftables: { counter?: { packets: number } }[] }
      sum += doc.nftables.find((x) => x.counter)?.counter?.packets ?? 0
    }
    return sum
  }

  /**
   * Gives node `name` a new address on its segment, and measures until every
   * other named node's discovery lists it among that node's endpoints (its
   * record republished and passed on by peers); null after `deadlineMs`.
   */
  async spreadNewAddress(name: string, others: readonly string[], deadlineMs: number): Promise<number | null> {
    const n = this.node(name)
    const index = [...this.#nodes.keys()].indexOf(name)
    const extra = `${SUBNET}.${200 + index}`
    const key = (await this.status(name))?.node?.key
    await ipBatch(n.netns, [`addr add ${extra}/24 dev ${linkIfname(this.runId, index, 'a')}`])
    return this.timeUntil(async () => {
      for (const o of others) {
        const m = (await this.status(o))?.discovery?.members.find((x) => x.key === key)
        if (!m?.endpoints.includes(`${extra}:${PORT}`)) return false
      }
      return true
    }, deadlineMs)
  }

  /** Every named node has every other named one up. */
  allUp(names: readonly string[]): Promise<boolean> {
    return allUp(names.map((n) => this.node(n)))
  }

  /** Ms until `cond` holds (polled every 25 ms), or null after `deadlineMs`. */
  timeUntil(cond: () => Promise<boolean>, deadlineMs: number): Promise<number | null> {
    return timeUntil(cond, deadlineMs)
  }

  /** `quicether invite` on n1, then `quicether join TOKEN` in the joiner's namespace; resolves when join wrote its files. */
  async join(): Promise<void> {
    const joiner = this.node('joiner')
    const invite = (await controlRequest(this.node('n1').socket, 'invite', { name: 'joiner', groups: [], ttlMs: 60_000 })) as { token: string }
    const r = await runInNs(this.runId, joiner.netns, ['join', invite.token, '--config', joiner.configPath, '--state-dir', joiner.dir])
    if (r.code !== 0) throw new LabCommandError(`quicether join failed: ${r.out.trim()}`)
    // The lab's own touch: a control socket and a log in the run's directory (every lab daemon has its own).
    const doc = parse(await readFile(joiner.configPath, 'utf8')) as Record<string, unknown>
    await writeFile(joiner.configPath, stringify({ ...doc, control: { socket: joiner.socket }, logging: { level: 'info', destination: join(joiner.dir, 'daemon.log') } }))
  }

  /** The last log lines of the named daemons, for a failure message. */
  logs(names: readonly string[]): string {
    return names.map((n) => `--- ${n}:\n${readTail(join(this.node(n).dir, 'daemon.log'))}`).join('\n')
  }

  async measurePairs(names: readonly string[], lan: boolean, signal?: AbortSignal): Promise<MeshPair[]> {
    return measurePairs(names.map((n) => this.node(n)), lan, signal)
  }

  async stop(): Promise<void> {
    for (const n of this.#nodes.values()) await n.daemon?.stop().catch(() => undefined)
    await labDown({ runId: this.runId })
  }
}

export async function runMesh(o: MeshOptions): Promise<MeshResult> {
  const say = o.progress ?? (() => undefined)
  const lab = new MeshLab({ members: o.nodes, lan: o.lan, join: o.join })
  const deadline = o.seconds * 1000
  try {
    await lab.start()
    say(`run ${lab.runId}: ${o.nodes} nodes and a bootstrap node on one segment (${SUBNET}.0/24)${o.lan ? ', LAN discovery on' : ''}`)
    checkAborted(o.signal)
    lab.startDaemon('boot')
    if ((await lab.timeUntil(async () => (await lab.status('boot')) !== null, deadline)) === null) throw new LabCommandError(`the bootstrap node did not start\n${lab.logs(['boot'])}`)
    const members = lab.memberNames
    say(`starting ${members.length} members`)
    const spawned = Date.now()
    for (const n of members) lab.startDaemon(n)
    const startMs = await lab.timeUntil(() => lab.ready(members), deadline)
    const fullMesh = startMs === null ? null : await lab.timeUntil(() => lab.allUp(members), deadline)
    const fromSpawn = fullMesh === null ? null : Date.now() - spawned
    say(fullMesh === null ? 'the full mesh did not form' : `full mesh ${fullMesh} ms after the last daemon was up (${fromSpawn} ms after spawning ${members.length} processes)`)
    checkAborted(o.signal)

    const lateSpawned = Date.now()
    lab.startDaemon('late')
    const lateStart = await lab.timeUntil(() => lab.ready(['late']), deadline)
    const lateMs = lateStart === null ? null : await lab.timeUntil(() => lab.allUp([...members, 'late']), deadline)
    const lateFromSpawn = lateMs === null ? null : Date.now() - lateSpawned
    say(lateMs === null ? 'the late joiner did not join' : `late joiner up with all ${lateMs} ms after it was up (${lateFromSpawn} ms after its spawn)`)
    checkAborted(o.signal)

    const spread = await lab.spreadNewAddress('n1', [...members.slice(1), 'late'], deadline)
    say(spread === null ? 'a new address of n1 did not reach every member' : `a new address of n1 reached every member after ${spread} ms`)

    const everyone = [...members, 'late']
    let joinMs: number | null = null
    if (o.join) {
      const tj = Date.now()
      await lab.join()
      lab.startDaemon('joiner')
      everyone.push('joiner')
      const ms = await lab.timeUntil(() => lab.allUp(everyone), deadline)
      joinMs = ms === null ? null : Date.now() - tj
      say(joinMs === null ? 'the invited device did not join' : `invited device up with all after ${joinMs} ms (from quicether join)`)
    }
    const pairs = await lab.measurePairs(everyone, o.lan, o.signal)
    return {
      nodes: o.nodes,
      full_mesh_ms: fullMesh,
      late_joiner_ms: lateMs,
      join_ms: joinMs,
      endpoint_spread_ms: spread,
      pairs,
      daemon_start_ms: startMs,
      full_mesh_from_spawn_ms: fromSpawn,
      late_joiner_from_spawn_ms: lateFromSpawn,
      lan: o.lan,
      run_id: lab.runId,
    }
  } finally {
    say(`tearing down run ${lab.runId}`)
    await lab.stop()
  }
}

async function addNode(runId: string, dir: string, sw: string, name: string, index: number): Promise<MeshNode> {
  const netns = nodeNetns(runId, name)
  await createNetns(netns)
  const a = linkIfname(runId, index, 'a')
  const b = linkIfname(runId, index, 'b')
  const address = `${SUBNET}.${index + 1}`
  await ipBatch(null, [`link add ${a} netns ${netns} type veth peer name ${b} netns ${sw}`])
  await ipBatch(sw, [`link set ${b} master br0`, `link set ${b} up`])
  await ipBatch(netns, ['link set lo up', `addr add ${address}/24 dev ${a}`, `link set ${a} up`])
  // Network safety, proven: every packet a node sends anywhere but the lab's segment, its
  // multicast groups, loopback or the overlay is counted (and dropped).
  await runIn(netns, 'nft', ['-f', '-'], {
    input: [
      'table inet qeleak {',
      '  counter leaked { }',
      '  chain out {',
      '    type filter hook output priority 0; policy accept;',
      `    meta nfproto ipv4 ip daddr != { ${SUBNET}.0/24, 127.0.0.0/8, 224.0.0.0/24, 239.255.74.71, ${OVERLAY.ipv4} } counter name leaked drop`,
      `    meta nfproto ipv6 ip6 daddr != { ::1, fe80::/10, ff02::/16, ${OVERLAY.ipv6} } counter name leaked drop`,
      '  }',
      '}',
    ].join('\n') + '\n',
  })
  const home = join(dir, name)
  await mkdir(home, { mode: 0o700 })
  return { name, netns, address, dir: home, configPath: join(home, 'quicether.yaml'), socket: join(home, 'control.sock'), daemon: null }
}

async function writeNodeConfig(n: MeshNode, over: Record<string, Record<string, unknown>>): Promise<void> {
  const doc = {
    node: { 'state-dir': n.dir, ...over.node },
    network: over.network,
    tun: { name: 'qe0' },
    listen: { address: '::', port: PORT },
    ...(over.discovery ? { discovery: over.discovery } : {}),
    logging: { level: 'info', destination: join(n.dir, 'daemon.log') },
    control: { socket: n.socket },
  }
  await writeFile(n.configPath, stringify(doc))
}

async function status(n: MeshNode): Promise<NodeStatus | null> {
  try {
    return (await controlRequest(n.socket, 'status', {}, 2000)) as NodeStatus
  } catch {
    return null
  }
}

/** Every node has every other one up. */
async function allUp(nodes: readonly MeshNode[]): Promise<boolean> {
  const sts = await Promise.all(nodes.map(status))
  const keys = sts.map((s) => s?.node?.key ?? null)
  if (keys.some((k) => k === null)) return false
  return sts.every((s, i) => keys.every((k, j) => i === j || s?.peers.some((p) => p.key === k && p.state === 'up')))
}

async function measurePairs(nodes: readonly MeshNode[], lanOn: boolean, signal?: AbortSignal): Promise<MeshPair[]> {
  const sts = await Promise.all(nodes.map(status))
  const out: MeshPair[] = []
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      const a = nodes[i] as MeshNode
      const b = nodes[j] as MeshNode
      const sa = sts[i]
      const sb = sts[j]
      const peerAtA = sa?.peers.find((p) => p.key === sb?.node?.key)
      const peerAtB = sb?.peers.find((p) => p.key === sa?.node?.key)
      const up = peerAtA?.state === 'up' && peerAtB?.state === 'up'
      let rtt: number | null = null
      if (up && sb?.node) {
        const p = await ping(a.netns, sb.node.overlay.ipv4, { count: 5, intervalMs: 20, ...(signal ? { signal } : {}) })
        rtt = p.rttsMs.length ? Math.round(percentile(p.rttsMs, 0.5) * 1000) / 1000 : null
      }
      const member = sa?.discovery?.members.find((m) => m.key === sb?.node?.key)
      const remote = peerAtA?.remote ? `${peerAtA.remote.address.replace(/^::ffff:/, '')}:${peerAtA.remote.port}` : null
      const lan = lanOn && member !== undefined && remote !== null && member.lan.includes(remote)
      out.push({ a: a.name, b: b.name, up, path: lan ? 'lan' : 'direct', rtt_ms: rtt })
    }
  }
  return out
}

/** `quicether ARGS` in a namespace, to completion; stdout and stderr together. */
function runInNs(runId: string, netns: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  const bin = quicetherLauncher()
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, bin, ...args], { env: { ...process.env, [RUN_ENV]: runId }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('close', (code) => resolve({ code: code ?? 1, out }))
  })
}

/** The short table `lab mesh` prints. */
export function formatMesh(r: MeshResult): string {
  const f = (v: number | null) => (v === null ? 'not reached' : `${v} ms`)
  const lines = [
    `nodes ${r.nodes}${r.lan ? ' (LAN discovery)' : ''}`,
    `daemons up     ${f(r.daemon_start_ms)}   (${r.nodes} node processes started at once)`,
    `full mesh      ${f(r.full_mesh_ms)}   (target ≤ 2000 ms; from the last daemon up)   ${f(r.full_mesh_from_spawn_ms)} from the spawn`,
    `late joiner    ${f(r.late_joiner_ms)}   (target ≤ 2000 ms; from its daemon up)   ${f(r.late_joiner_from_spawn_ms)} from its spawn`,
    ...(r.join_ms !== null || r.pairs.some((p) => p.a === 'joiner' || p.b === 'joiner') ? [`join           ${f(r.join_ms)}   (target ≤ 5000 ms)`] : []),
    `new endpoint   ${f(r.endpoint_spread_ms)}   (target ≤ 2000 ms; until every member has it)`,
    `pairs up       ${r.pairs.filter((p) => p.up).length}/${r.pairs.length}`,
  ]
  for (const p of r.pairs) lines.push(`  ${p.a.padEnd(7)} ↔ ${p.b.padEnd(7)} ${p.up ? 'up  ' : 'DOWN'} ${p.path.padEnd(6)} ${p.rtt_ms === null ? '' : `${p.rtt_ms} ms`}`)
  return lines.join('\n')
}

function readTail(path: string, n = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n')
  } catch {
    return '(no log)'
  }
}
