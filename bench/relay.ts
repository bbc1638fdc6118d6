/**
 * Relay bench: `node --import tsx bench/relay.ts [--packets 100000] [--pps 10000,20000,40000]
 * [--size 1200|mix] [--seed S] [--rate-bps 1e9] [--json] [--out FILE]`. No root.
 *
 * The relay (RelayServer) runs in a child process of its own, so its CPU is
 * measured alone (process.cpuUsage in the child, user + system). This
 * process holds two client sockets standing in for two members' tunnels; all
 * three bind 127.0.0.1 and nothing leaves loopback. Per `--pps` figure: a
 * fresh allocation, both clients bind, then each sends `--packets` datagrams
 * to its relay port at that rate (per direction, both directions at once),
 * paced on a 1 ms schedule. Measured: datagrams and bytes each client got,
 * the relay's own counters (forwarded, drops by reason), wall time from the
 * first send to the last arrival, and the relay's CPU: share of one core and
 * CPU-µs per Mbit forwarded.
 *
 * `--size mix` draws each datagram's size from a seeded mix like a QUIC
 * tunnel's (70% full 1200-1350 bytes, 30% 40-120 bytes acks); the seed is
 * printed, `--seed` replays it. `--rate-bps` is the relay's per-pair limit,
 * high by default so the bench measures the relay, not the limiter.
 */
import { fork, type ChildProcess } from 'node:child_process'
import dgram, { type Socket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { silentLogger } from '../src/log.js'
import { RelayServer, type RelayCounters } from '../src/traversal/relay-server.js'
import { encodeBind } from '../src/traversal/relay-wire.js'

const LO = '127.0.0.1'
const A = { key: 'aa'.repeat(32), ip: LO }
const B = { key: 'bb'.repeat(32), ip: LO }
/** A run ends when every datagram arrived, or nothing arrived for this long. */
const QUIET_MS = 300
/** Client sends still in libuv's queue beyond which the pacer waits (the clients must not be the bottleneck unseen). */
const CLIENT_QUEUE = 512

type ToChild = { cmd: 'allocate'; rateBps: number } | { cmd: 'cpu-start' } | { cmd: 'cpu-stop' } | { cmd: 'exit' }
type FromChild =
  | { ok: 'allocated'; a: { port: number; token: string }; b: { port: number; token: string } }
  | { ok: 'cpu-started' }
  | { ok: 'cpu-stopped'; userUs: number; systemUs: number; wallMs: number; counters: RelayCounters }

/** The relay's side: one RelayServer per allocation request, CPU measured between start and stop. */
async function child(): Promise<void> {
  let relay: RelayServer | null = null
  let cpu = process.cpuUsage()
  let wall = process.hrtime.bigint()
  const reply = (m: FromChild): void => void process.send?.(m)
  process.on('message', (m: ToChild) => {
    void (async () => {
      switch (m.cmd) {
        case 'allocate': {
          await relay?.stop()
          relay = new RelayServer({ bind: LO, rateBps: m.rateBps, log: silentLogger })
          const al = await relay.allocate(A, B)
          return reply({ ok: 'allocated', a: { port: al.a.port, token: al.a.token.toString('hex') }, b: { port: al.b.port, token: al.b.token.toString('hex') } })
        }
        case 'cpu-start':
          cpu = process.cpuUsage()
          wall = process.hrtime.bigint()
          return reply({ ok: 'cpu-started' })
        case 'cpu-stop': {
          const used = process.cpuUsage(cpu)
          const wallMs = Number(process.hrtime.bigint() - wall) / 1e6
          return reply({ ok: 'cpu-stopped', userUs: used.user, systemUs: used.system, wallMs, counters: relay!.stats().counters })
        }
        case 'exit':
          await relay?.stop()
          process.disconnect()
      }
    })()
  })
}

function ask<T extends FromChild['ok']>(proc: ChildProcess, msg: ToChild, ok: T): Promise<Extract<FromChild, { ok: T }>> {
  return new Promise((resolve, reject) => {
    const on = (m: FromChild): void => {
      if (m.ok !== ok) return
      proc.off('message', on)
      resolve(m as Extract<FromChild, { ok: T }>)
    }
    proc.on('message', on)
    proc.once('exit', (code) => reject(new Error(`the relay process exited (${code})`)))
    proc.send(msg)
  })
}

/** mulberry32: small, seedable. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface Member {
  readonly socket: Socket
  got: number
  gotBytes: number
  lastAt: number
}

async function member(): Promise<Member> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
  const m: Member = { socket, got: 0, gotBytes: 0, lastAt: 0 }
  socket.on('message', (msg) => {
    m.got++
    m.gotBytes += msg.length
    m.lastAt = performance.now()
  })
  await new Promise<void>((r) => socket.bind(0, LO, r))
  return m
}

async function bindTo(m: Member, port: number, token: Buffer): Promise<void> {
  const before = m.got
  for (let i = 0; i < 50 && m.got === before; i++) {
    m.socket.send(encodeBind(token, randomBytes(8)), port, LO)
    await new Promise((r) => setTimeout(r, 20))
  }
  if (m.got === before) throw new Error('no BOUND from the relay')
  m.got = 0
  m.gotBytes = 0
}

interface Run {
  ppsTarget: number
  packetsPerDirection: number
  sentBytesPerDirection: number
  wallS: number
  sendS: number
  received: { aToB: number; bToA: number }
  lossPct: number
  ppsPerDirection: number
  mbitPerDirection: number
  mbitTotal: number
  relayCpu: { userMs: number; systemMs: number; coreShare: number; cpuUsPerMbit: number }
  /** The two client sockets' process (senders and receivers), for context: if it nears a core, it is the bottleneck. */
  harnessCoreShare: number
  relay: Pick<RelayCounters, 'received' | 'forwarded' | 'rateDropped' | 'queueDropped' | 'sendErrors' | 'refusedSource' | 'early'>
}

async function run(proc: ChildProcess, pps: number, packets: number, sizes: number[], rateBps: number): Promise<Run> {
  const al = await ask(proc, { cmd: 'allocate', rateBps }, 'allocated')
  const a = await member()
  const b = await member()
  await bindTo(a, al.a.port, Buffer.from(al.a.token, 'hex'))
  await bindTo(b, al.b.port, Buffer.from(al.b.token, 'hex'))
  const payloads = sizes.map((s) => randomBytes(s))
  const sentBytes = Array.from({ length: packets }, (_, i) => payloads[i % payloads.length]!.length).reduce((x, y) => x + y, 0)
  await ask(proc, { cmd: 'cpu-start' }, 'cpu-started')
  const t0 = performance.now()
  const harnessCpu = process.cpuUsage()
  /** At most 5 ms of the schedule per tick: a stalled sender catches up slowly instead of in one burst. */
  const perTick = Math.max(1, Math.ceil(pps / 200))
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(packets, Math.floor(((performance.now() - t0) * pps) / 1000), sent + perTick)
      while (sent < due && a.socket.getSendQueueCount() < CLIENT_QUEUE && b.socket.getSendQueueCount() < CLIENT_QUEUE) {
        const p = payloads[sent % payloads.length]!
        a.socket.send(p, al.a.port, LO)
        b.socket.send(p, al.b.port, LO)
        sent++
      }
      if (sent >= packets) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  const sendS = (performance.now() - t0) / 1000
  await new Promise<void>((resolve) => {
    const check = (): void => {
      const last = Math.max(a.lastAt, b.lastAt, t0)
      if ((a.got >= packets && b.got >= packets) || performance.now() - last > QUIET_MS) resolve()
      else setTimeout(check, 10)
    }
    check()
  })
  const end = Math.max(a.lastAt, b.lastAt)
  const harness = process.cpuUsage(harnessCpu)
  const cpu = await ask(proc, { cmd: 'cpu-stop' }, 'cpu-stopped')
  for (const m of [a, b]) m.socket.close()
  const wallS = (end - t0) / 1000
  const recvBytes = a.gotBytes + b.gotBytes
  const mbitTotal = (recvBytes * 8) / 1e6 / wallS
  const cpuMs = (cpu.userUs + cpu.systemUs) / 1000
  const c = cpu.counters
  return {
    ppsTarget: pps,
    packetsPerDirection: packets,
    sentBytesPerDirection: sentBytes,
    wallS,
    sendS,
    received: { aToB: b.got, bToA: a.got },
    lossPct: (100 * (2 * packets - a.got - b.got)) / (2 * packets),
    ppsPerDirection: (a.got + b.got) / 2 / wallS,
    mbitPerDirection: mbitTotal / 2,
    mbitTotal,
    relayCpu: {
      userMs: cpu.userUs / 1000,
      systemMs: cpu.systemUs / 1000,
      coreShare: cpuMs / (wallS * 1000),
      cpuUsPerMbit: (cpuMs * 1000) / ((c.forwarded.bytes * 8) / 1e6),
    },
    harnessCoreShare: (harness.user + harness.system) / 1000 / (wallS * 1000),
    relay: { received: c.received, forwarded: c.forwarded, rateDropped: c.rateDropped, queueDropped: c.queueDropped, sendErrors: c.sendErrors, refusedSource: c.refusedSource, early: c.early },
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'packets': { type: 'string', default: '100000' },
      'pps': { type: 'string', default: '10000,20000,40000' },
      'size': { type: 'string', default: '1200' },
      'seed': { type: 'string' },
      'rate-bps': { type: 'string', default: '1e9' },
      'json': { type: 'boolean', default: false },
      'out': { type: 'string' },
    },
  })
  const packets = Number(values.packets)
  const ppsList = values.pps.split(',').map(Number)
  const rateBps = Number(values['rate-bps'])
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
  if (!(packets > 0) || ppsList.some((p) => !(p > 0)) || !(rateBps > 0)) throw new Error('--packets, --pps and --rate-bps must be positive numbers')
  let sizes: number[]
  if (values.size === 'mix') {
    const r = rng(seed)
    sizes = Array.from({ length: 4096 }, () => (r() < 0.7 ? 1200 + Math.floor(r() * 151) : 40 + Math.floor(r() * 81)))
  } else {
    const s = Number(values.size)
    if (!(s >= 1 && s <= 65000)) throw new Error('--size is 1..65000 or mix')
    sizes = [s]
  }
  const proc = fork(new URL(import.meta.url).pathname, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const runs: Run[] = []
  try {
    for (const pps of ppsList) runs.push(await run(proc, pps, packets, sizes, rateBps))
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve())
      proc.send({ cmd: 'exit' } satisfies ToChild)
    })
  } finally {
    if (proc.exitCode === null) proc.kill()
  }
  const report = { seed, size: values.size, rateBps, node: process.version, runs }
  const json = JSON.stringify(report, null, 2)
  const out = values.out ?? join(tmpdir(), 'quicether-relay.json')
  if (values.json) process.stdout.write(json + '\n')
  else writeFileSync(out, json + '\n')
  const f = (x: number, d = 0): string => x.toFixed(d)
  const rows = [
    ['pps target/dir', 'pps got/dir', 'Mbit/s/dir', 'Mbit/s total', 'loss %', 'of it before relay %', 'relay core %', 'CPU µs/Mbit', 'harness core %', 'rate/queue drops'],
    ...runs.map((r) => [
      f(r.ppsTarget),
      f(r.ppsPerDirection),
      f(r.mbitPerDirection, 1),
      f(r.mbitTotal, 1),
      f(r.lossPct, 2),
      f((100 * (2 * r.packetsPerDirection - r.relay.received.packets + 2)) / (2 * r.packetsPerDirection), 2),
      f(100 * r.relayCpu.coreShare, 1),
      f(r.relayCpu.cpuUsPerMbit),
      f(100 * r.harnessCoreShare, 1),
      `${r.relay.rateDropped}/${r.relay.queueDropped}`,
    ]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  const table = rows.map((row) => row.map((cell, i) => cell.padStart(widths[i]!)).join('  ')).join('\n')
  process.stderr.write(`relay bench: ${packets} datagrams per direction, size ${values.size}, seed ${seed}, loopback\n${table}\n${values.json ? '' : `JSON: ${out}\n`}`)
}

if (process.argv.includes('--child')) await child()
else await main()
