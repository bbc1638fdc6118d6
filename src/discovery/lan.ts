/**
 * LAN discovery, the transport: this node's signed record announced by
 * multicast on each uplink's segment, IPv4 (239.255.74.71, TTL 1) and IPv6
 * link-local (ff02::7174:1, hop limit 1), UDP port 7447; announcements heard
 * there are handed up whole. The payload is opaque here: the caller builds
 * it and verifies what it hears (a non-member's announcement is refused
 * there, counted and logged).
 *
 * One socket per family joins the group on every interface in use; a send
 * goes out once per interface (the socket's multicast interface set before
 * each). The interface a datagram arrived on is the one whose IPv4 subnet
 * holds its source, or, for IPv6, the source's scope.
 *
 * Announcements go out at once, again after 100 and 300 ms (a datagram can
 * be lost), then every `intervalMs`; a source not heard from before gets
 * ours again within a second, so a newcomer learns everyone quickly.
 * Interfaces are re-read every 5 s. Frames: "QEL1" + payload; anything else
 * is dropped and counted, never thrown.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import type { Logger } from '../log.js'
import { parseAddress, parsePrefix, prefixesOverlap } from '../net/index.js'

export const LAN_PORT = 7447
export const LAN_GROUP_V4 = '239.255.74.71'
export const LAN_GROUP_V6 = 'ff02::7174:1'
export const LAN_MAGIC = Buffer.from('QEL1')
export const MAX_LAN_PAYLOAD = 1400
const REFRESH_MS = 5000
const BURST_MS = [100, 300]
const NEWCOMER_MS = 30_000

export interface LanInit {
  /** Interfaces to use; [] = every interface that is up, has an address and is not loopback. */
  readonly interfaces: readonly string[]
  readonly port?: number
  /** Announce period once settled (default 5 s). */
  readonly intervalMs?: number
  /** Replaces `os.networkInterfaces()` (tests). */
  readonly listInterfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>
}

export interface LanAnnouncement {
  readonly payload: Buffer
  /** An IPv4 address, or an IPv6 link-local one without its scope. */
  readonly from: { readonly address: string; readonly port: number }
  readonly interface: string
}

export interface LanComponents {
  readonly log: Logger
  readonly onAnnouncement: (a: LanAnnouncement) => void
}

export interface LanInterface {
  readonly name: string
  readonly ipv4: readonly string[]
  readonly ipv4Cidrs: readonly string[]
  readonly ipv6LinkLocal: string | null
}

/** The payload of a frame, or why it is not one. Pure. */
export function unframe(buf: Buffer): { ok: true; payload: Buffer } | { ok: false; reason: 'malformed' | 'oversize' } {
  if (buf.length < LAN_MAGIC.length || !buf.subarray(0, LAN_MAGIC.length).equals(LAN_MAGIC)) return { ok: false, reason: 'malformed' }
  if (buf.length - LAN_MAGIC.length > MAX_LAN_PAYLOAD) return { ok: false, reason: 'oversize' }
  return { ok: true, payload: buf.subarray(LAN_MAGIC.length) }
}

export function frame(payload: Buffer): Buffer {
  if (payload.length > MAX_LAN_PAYLOAD) throw new RangeError(`a LAN announcement carries at most ${MAX_LAN_PAYLOAD} bytes`)
  return Buffer.concat([LAN_MAGIC, payload])
}

/** The interfaces in use, from a table like `os.networkInterfaces()`. Pure. */
export function pickInterfaces(table: NodeJS.Dict<NetworkInterfaceInfo[]>, wanted: readonly string[]): LanInterface[] {
  const out: LanInterface[] = []
  for (const [name, infos] of Object.entries(table)) {
    if (!infos || (wanted.length > 0 && !wanted.includes(name))) continue
    if (infos.every((i) => i.internal)) continue
    const v4 = infos.filter((i) => i.family === 'IPv4' && !i.internal)
    const ll = infos.find((i) => i.family === 'IPv6' && /^fe[89ab]/i.test(i.address))
    if (v4.length === 0 && !ll) continue
    out.push({ name, ipv4: v4.map((i) => i.address), ipv4Cidrs: v4.map((i) => i.cidr ?? `${i.address}/32`), ipv6LinkLocal: ll ? ll.address.replace(/%.*$/, '') : null })
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1))
}

export class LanDiscovery {
  readonly #init: LanInit
  readonly #c: LanComponents
  readonly #port: number
  #v4: Socket | null = null
  #v6: Socket | null = null
  #ifaces: LanInterface[] = []
  readonly #joined4 = new Set<string>()
  readonly #joined6 = new Set<string>()
  #payload: Buffer | null = null
  readonly #timers = new Set<NodeJS.Timeout>()
  #periodic: NodeJS.Timeout | null = null
  #refresh: NodeJS.Timeout | null = null
  readonly #heard = new Map<string, number>()
  #lastReply = 0
  #warned = new Set<string>()
  readonly #stats = { sent: 0, received: 0, ownDropped: 0, malformed: 0, oversize: 0, sendErrors: 0 }

  constructor(init: LanInit, components: LanComponents) {
    this.#init = init
    this.#c = components
    this.#port = init.port ?? LAN_PORT
  }

  async start(): Promise<void> {
    this.#v4 = await this.#open('udp4', '0.0.0.0')
    this.#v6 = await this.#open('udp6', '::').catch((err: Error) => {
      this.#c.log.warn({ err: err.message }, 'no IPv6 LAN discovery')
      return null
    })
    this.#v4?.setMulticastTTL(1)
    this.#v4?.setMulticastLoopback(false)
    this.#v6?.setMulticastTTL(1)
    this.#v6?.setMulticastLoopback(false)
    this.#readInterfaces()
    this.#refresh = setInterval(() => this.#readInterfaces(), REFRESH_MS)
    this.#refresh.unref()
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    if (this.#periodic) clearInterval(this.#periodic)
    if (this.#refresh) clearInterval(this.#refresh)
    this.#periodic = this.#refresh = null
    for (const s of [this.#v4, this.#v6]) {
      try {
        s?.close()
      } catch {
        // already closed
      }
    }
    this.#v4 = this.#v6 = null
  }

  /** What this node announces: sent now, after 100 and 300 ms, then every interval; null stops announcing. */
  announce(payload: Buffer | null): void {
    this.#payload = payload ? frame(payload) : null
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    if (this.#periodic) clearInterval(this.#periodic)
    this.#periodic = null
    if (!this.#payload) return
    this.#sendAll()
    for (const ms of BURST_MS) this.#later(ms)
    this.#periodic = setInterval(() => this.#sendAll(), this.#init.intervalMs ?? 5000)
    this.#periodic.unref()
  }

  interfaces(): readonly LanInterface[] {
    return this.#ifaces
  }

  stats() {
    return { ...this.#stats }
  }

  async #open(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
    const s = createSocket({ type, reuseAddr: true })
    s.on('message', (m, r) => this.#onMessage(m, r))
    s.on('error', (err) => this.#warnOnce(`socket:${type}`, { err: err.message }, 'LAN discovery socket error'))
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.bind({ port: this.#port, address, exclusive: false }, () => {
        s.off('error', reject)
        resolve()
      })
    })
    return s
  }

  #readInterfaces(): void {
    const table = (this.#init.listInterfaces ?? networkInterfaces)()
    this.#ifaces = pickInterfaces(table, this.#init.interfaces)
    for (const i of this.#ifaces) {
      for (const a of i.ipv4) {
        if (this.#joined4.has(`${i.name}|${a}`) || !this.#v4) continue
        try {
          this.#v4.addMembership(LAN_GROUP_V4, a)
          this.#joined4.add(`${i.name}|${a}`)
        } catch (err) {
          this.#warnOnce(`join4:${i.name}`, { iface: i.name, err: (err as Error).message }, 'cannot join the IPv4 LAN group')
        }
      }
      if (i.ipv6LinkLocal && this.#v6 && !this.#joined6.has(i.name)) {
        try {
          this.#v6.addMembership(LAN_GROUP_V6, `::%${i.name}`)
          this.#joined6.add(i.name)
        } catch (err) {
          this.#warnOnce(`join6:${i.name}`, { iface: i.name, err: (err as Error).message }, 'cannot join the IPv6 LAN group')
        }
      }
    }
  }

  #later(ms: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t)
      this.#sendAll()
    }, ms)
    t.unref()
    this.#timers.add(t)
  }

  #sendAll(): void {
    const p = this.#payload
    if (!p) return
    for (const i of this.#ifaces) {
      const v4 = i.ipv4[0]
      if (v4 && this.#v4) {
        try {
          this.#v4.setMulticastInterface(v4)
          this.#send(this.#v4, p, LAN_GROUP_V4, i.name)
        } catch (err) {
          this.#sendError(i.name, err as Error)
        }
      }
      if (i.ipv6LinkLocal && this.#v6) {
        try {
          this.#v6.setMulticastInterface(`::%${i.name}`)
          this.#send(this.#v6, p, `${LAN_GROUP_V6}%${i.name}`, i.name)
        } catch (err) {
          this.#sendError(i.name, err as Error)
        }
      }
    }
  }

  #send(s: Socket, p: Buffer, to: string, iface: string): void {
    s.send(p, this.#port, to, (err) => {
      if (err) this.#sendError(iface, err)
      else this.#stats.sent++
    })
  }

  #sendError(iface: string, err: Error): void {
    this.#stats.sendErrors++
    this.#warnOnce(`send:${iface}`, { iface, err: err.message }, 'cannot send a LAN announcement')
  }

  #onMessage(m: Buffer, r: RemoteInfo): void {
    const address = r.address.replace(/%.*$/, '')
    const scope = /%(.+)$/.exec(r.address)?.[1] ?? null
    if (this.#ifaces.some((i) => i.ipv4.includes(address) || i.ipv6LinkLocal === address)) {
      this.#stats.ownDropped++
      return
    }
    const f = unframe(m)
    if (!f.ok) {
      this.#stats[f.reason]++
      return
    }
    this.#stats.received++
    const iface = this.#interfaceOf(address, scope)
    const now = Date.now()
    if (now - (this.#heard.get(address) ?? -Infinity) > NEWCOMER_MS && now - this.#lastReply > 1000 && this.#payload) {
      // A newcomer (or one not heard for a while): let it hear us now, not at our next period.
      this.#lastReply = now
      this.#later(50)
    }
    this.#heard.set(address, now)
    if (this.#heard.size > 10_000) this.#heard.clear()
    try {
      this.#c.onAnnouncement({ payload: Buffer.from(f.payload), from: { address, port: r.port }, interface: iface })
    } catch (err) {
      this.#c.log.warn({ err: (err as Error).message }, 'a LAN announcement handler failed')
    }
  }

  #interfaceOf(address: string, scope: string | null): string {
    if (scope) return scope
    const ip = parseAddress(address).value
    if (ip) {
      const host = parsePrefix(`${ip.text}/${ip.family === 4 ? 32 : 128}`).value
      for (const i of this.#ifaces) {
        for (const c of i.ipv4Cidrs) {
          const p = parsePrefix(c).value ?? parsePrefix(canonicalCidr(c)).value
          if (p && host && prefixesOverlap(p, host)) return i.name
        }
      }
    }
    return this.#ifaces[0]?.name ?? ''
  }

  #warnOnce(id: string, fields: Record<string, unknown>, msg: string): void {
    if (this.#warned.has(id)) return
    this.#warned.add(id)
    this.#c.log.warn(fields, msg)
  }
}

/** `10.0.0.5/24` → `10.0.0.0/24` (os.networkInterfaces gives host bits). */
function canonicalCidr(c: string): string {
  const [addr, len] = c.split('/')
  const ip = parseAddress(addr).value
  const bits = Number(len)
  if (!ip || ip.family !== 4 || !(bits >= 0 && bits <= 32)) return c
  const n = ip.text.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  const net = (n & mask) >>> 0
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${bits}`
}
