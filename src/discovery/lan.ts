/**
 * LAN discovery transport (issue 13): moves an opaque, caller-signed record
 * by multicast on each uplink, over IPv4 and IPv6 link-local. It never reads
 * the record; the caller builds it, verifies what arrives and refuses
 * non-members.
 *
 * Wire format: one UDP datagram = the 4-byte magic `QEL1` + the payload
 * (1..LAN_MAX_PAYLOAD bytes). Anything else is dropped and counted, never thrown.
 *
 * Which interface a datagram arrived on:
 *  - IPv6: one socket per interface, bound to `LAN_GROUP_V6%ifname`. Binding a
 *    link-scoped address with a scope id binds the socket to that device (the
 *    kernel sets sk_bound_dev_if, as SO_BINDTODEVICE would), so the socket only
 *    ever sees datagrams that arrived on its own interface. The same socket sends.
 *  - IPv4: Node cannot bind a socket to a device or read IP_PKTINFO, and with
 *    the default IP_MULTICAST_ALL every socket bound to the group hears the
 *    group on every interface anyone joined it on. So one receive socket is
 *    bound to `LAN_GROUP_V4:port` and joined on each interface, and a datagram
 *    belongs to every in-use interface whose IPv4 subnet holds its source (a
 *    sender's source is the address it set as multicast interface). A source
 *    on no in-use subnet is dropped and counted (`unplaced`); its sender's
 *    IPv6 link-local announcement still gets through. Sending uses one socket
 *    per interface, bound to its first IPv4 address.
 *
 * Interfaces are re-read (os.networkInterfaces plus /sys/class/net flags) on
 * start() and on every announce tick; an interface that appears, changes its
 * addresses or comes back with a new index gets fresh sockets and a fast burst.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import ipaddr from 'ipaddr.js'
import { QeError } from '../errors.js'
import type { Logger } from '../log.js'

/** UDP port of announcements: unused elsewhere in QuicEther; `LanInit.port` overrides it. */
export const LAN_PORT = 7447
/** IPv4 group, in 239.255.0.0/16, the IPv4 Local Scope (RFC 2365): routers at a site edge never pass it; TTL 1 keeps it on the link. */
export const LAN_GROUP_V4 = '239.255.74.71'
/** IPv6 group, link-local scope (ff02::/16, RFC 4291): never routed; hop limit 1 as well. */
export const LAN_GROUP_V6 = 'ff02::7174:1'
/** The 4 bytes every announcement starts with. */
export const LAN_MAGIC: Buffer = Buffer.from('QEL1', 'latin1')
/** Largest payload sent or accepted: frame + UDP + IPv6 headers stay under the 1280-byte IPv6 minimum MTU. */
export const LAN_MAX_PAYLOAD = 1200
/** Default announce period once settled. */
export const LAN_INTERVAL_MS = 5000
/** Offsets of the fast burst sent when a payload is set or an interface comes up. */
export const LAN_BURST_MS: readonly number[] = [0, 100, 300]

// <linux/if.h>
const IFF_UP = 0x1
const IFF_LOOPBACK = 0x8
const IFF_POINTOPOINT = 0x10
const IFF_MULTICAST = 0x1000

export interface LanInit {
  /** Interfaces to announce on and listen on; [] = every interface that is up, has multicast and is not loopback (re-checked every refresh). */
  readonly interfaces: readonly string[]
  readonly port?: number
  /** Announce period once settled; the first announcements go out fast (e.g. at 0, 100, 300 ms) so a new node is seen at once. */
  readonly intervalMs?: number
}

export interface LanAnnouncement {
  /** The payload without the magic. A view on a buffer nobody else holds: the callee may keep it, and must not write it (one datagram may be delivered for several interfaces). */
  readonly payload: Buffer
  /** Source of the datagram: an IPv4 address, or an IPv6 link-local address (without the %scope). */
  readonly from: { readonly address: string; readonly port: number }
  /** The interface it arrived on. */
  readonly interface: string
}

export interface LanComponents {
  readonly log: Logger
  /** Called once per accepted datagram and interface, synchronously from the socket's message event; a throw is caught and logged. */
  readonly onAnnouncement: (a: LanAnnouncement) => void
}

export interface LanStats {
  /** Datagrams handed to the kernel without error (one per family and interface per send). */
  sent: number
  /** Announcements delivered to onAnnouncement. */
  received: number
  /** Our own announcements heard back (multicast loopback, or a second interface on the same wire). */
  ownDropped: number
  /** No magic, or an empty payload. */
  malformed: number
  /** Payload over LAN_MAX_PAYLOAD. */
  oversize: number
  sendErrors: number
  /** IPv4 datagrams whose source is on no in-use interface's subnet (see the header). */
  unplaced: number
}

/** An announce() payload that can never be sent: empty or over LAN_MAX_PAYLOAD. A caller bug, never retryable. */
export class LanPayloadInvalidError extends QeError {
  override readonly code = 'QE_LAN_PAYLOAD_INVALID'
  constructor(message = `a LAN announcement payload must be 1..${LAN_MAX_PAYLOAD} bytes`, options?: ErrorOptions) {
    super(message, options)
    this.name = 'LanPayloadInvalidError'
  }
}

// ---------------------------------------------------------------- pure parts

/** The datagram for a payload: magic + payload (copied). */
export function encodeFrame(payload: Buffer): Buffer {
  return Buffer.concat([LAN_MAGIC, payload])
}

export type FrameDrop = 'malformed' | 'oversize'
export type DecodedFrame = { readonly ok: true; readonly payload: Buffer } | { readonly ok: false; readonly drop: FrameDrop }

/** Checks a received datagram. The payload is a view on `datagram`, not a copy. */
export function decodeFrame(datagram: Buffer, maxPayload: number = LAN_MAX_PAYLOAD): DecodedFrame {
  if (datagram.length <= LAN_MAGIC.length || !datagram.subarray(0, LAN_MAGIC.length).equals(LAN_MAGIC)) return { ok: false, drop: 'malformed' }
  if (datagram.length - LAN_MAGIC.length > maxPayload) return { ok: false, drop: 'oversize' }
  return { ok: true, payload: datagram.subarray(LAN_MAGIC.length) }
}

/** True when `payload` is one this node announced recently (its current and previous payloads). */
export function isOwnEcho(payload: Buffer, recentlySent: readonly Buffer[]): boolean {
  return recentlySent.some((p) => p.equals(payload))
}

/** `fe80::1%eth0` → `fe80::1`; anything else unchanged. */
export function stripScope(address: string): string {
  const i = address.indexOf('%')
  return i < 0 ? address : address.slice(0, i)
}

/** One interface as the system shows it. `flags` is 0 when unknown. */
export interface RawInterface {
  readonly name: string
  readonly index: number
  readonly flags: number
  /** IPv4 addresses with prefix, e.g. `192.168.1.5/24`. */
  readonly ipv4: readonly string[]
  readonly ipv6LinkLocal: string | null
}

/** An interface in use. */
export interface LanLink {
  readonly name: string
  readonly index: number
  /** IPv4 addresses with prefix; the first is the one joined and sent from. */
  readonly ipv4: readonly string[]
  readonly ipv6LinkLocal: string | null
}

/** Whether `[]` (automatic) picks this interface: up, multicast, neither loopback nor point-to-point (TUNs, WireGuard, PPP). */
export function autoEligible(flags: number): boolean {
  return (flags & IFF_UP) !== 0 && (flags & IFF_MULTICAST) !== 0 && (flags & (IFF_LOOPBACK | IFF_POINTOPOINT)) === 0
}

/**
 * The interfaces to use: those named (when `requested` is not empty) or the
 * auto-eligible ones, that have an IPv4 address or an IPv6 link-local one.
 * Sorted by name.
 */
export function selectLinks(raw: readonly RawInterface[], requested: readonly string[]): LanLink[] {
  const picked = requested.length > 0 ? raw.filter((r) => requested.includes(r.name)) : raw.filter((r) => autoEligible(r.flags))
  return picked
    .filter((r) => r.ipv4.length > 0 || r.ipv6LinkLocal !== null)
    .map((r) => ({ name: r.name, index: r.index, ipv4: [...r.ipv4], ipv6LinkLocal: r.ipv6LinkLocal }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** The interfaces an IPv4 multicast datagram from `source` belongs to: those whose subnets hold it (see the header). */
export function ipv4Arrival(source: string, links: readonly LanLink[]): string[] {
  let src: ipaddr.IPv4
  try {
    src = ipaddr.IPv4.parse(source)
  } catch {
    return []
  }
  return links.filter((l) => l.ipv4.some((cidr) => inSubnet(src, cidr))).map((l) => l.name)
}

function inSubnet(src: ipaddr.IPv4, cidr: string): boolean {
  try {
    return src.match(ipaddr.IPv4.parseCIDR(cidr))
  } catch {
    return false
  }
}

/** The address part of `a.b.c.d/n`. */
const addrOf = (cidr: string): string => cidr.split('/')[0] ?? cidr

/** What this module reads from the system (Linux): addresses from os.networkInterfaces (up and running only), index and flags from /sys/class/net. */
export function readInterfaces(): RawInterface[] {
  const out: RawInterface[] = []
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (!addrs) continue
    const ipv4 = addrs.filter((a) => a.family === 'IPv4').map((a) => a.cidr ?? `${a.address}/32`)
    const ll = addrs.find((a) => a.family === 'IPv6' && isLinkLocal6(a.address))
    const index = readSysNumber(name, 'ifindex') ?? ll?.scopeid ?? 0
    out.push({ name, index, flags: readSysNumber(name, 'flags') ?? 0, ipv4, ipv6LinkLocal: ll ? stripScope(ll.address) : null })
  }
  return out
}

function isLinkLocal6(address: string): boolean {
  try {
    return ipaddr.IPv6.parse(stripScope(address)).range() === 'linkLocal'
  } catch {
    return false
  }
}

function readSysNumber(name: string, file: 'ifindex' | 'flags'): number | null {
  if (name.includes('/') || name.startsWith('.')) return null
  try {
    const n = Number.parseInt(readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim(), file === 'flags' ? 16 : 10)
    return Number.isFinite(n) ? n : null
  } catch {
    return null
  }
}

// ---------------------------------------------------------------- sockets

interface Link {
  readonly spec: LanLink
  readonly key: string
  /** IPv6 send+receive socket bound to the group on this device; null without a link-local address or when opening failed. */
  v6: Socket | null
  /** IPv4 send socket; null without an IPv4 address or when opening failed. */
  v4: Socket | null
  closed: boolean
}

const linkKey = (l: LanLink): string => `${l.index}|${l.ipv4.join(',')}|${l.ipv6LinkLocal ?? ''}`

/**
 * Announces a payload by multicast on each interface and reports the
 * announcements it hears. Single-threaded like everything in Node: call it
 * from the event loop only. start() and stop() may be called again after
 * stop().
 */
export class LanDiscovery {
  readonly #requested: readonly string[]
  readonly #port: number
  readonly #intervalMs: number
  readonly #log: Logger
  readonly #onAnnouncement: (a: LanAnnouncement) => void

  #abort: AbortController | null = null
  readonly #timers = new Set<NodeJS.Timeout>()
  #queue: Promise<unknown> = Promise.resolve()
  readonly #links = new Map<string, Link>()
  #v4rx: Socket | null = null
  /** interface name → the IPv4 address the receive socket joined the group with. */
  readonly #joined = new Map<string, string>()
  #frame: Buffer | null = null
  /** Current and previous payloads, for the own-echo check. */
  #recent: Buffer[] = []
  readonly #warned = new Set<string>()
  readonly #stats: LanStats = { sent: 0, received: 0, ownDropped: 0, malformed: 0, oversize: 0, sendErrors: 0, unplaced: 0 }

  constructor(init: LanInit, components: LanComponents) {
    this.#requested = [...init.interfaces]
    this.#port = init.port ?? LAN_PORT
    this.#intervalMs = init.intervalMs ?? LAN_INTERVAL_MS
    this.#log = components.log.child({ component: 'lan' })
    this.#onAnnouncement = components.onAnnouncement
  }

  /** Opens the sockets for the interfaces present now and starts the announce/refresh tick. Resolves once those sockets are open; per-interface failures are logged, not thrown. */
  async start(): Promise<void> {
    if (this.#abort) return
    const abort = new AbortController()
    this.#abort = abort
    const fresh = await this.#enqueueRefresh()
    if (abort.signal.aborted) return
    for (const link of fresh) this.#burst(link)
    const tick = setInterval(() => void this.#tick(), this.#intervalMs)
    this.#timers.add(tick)
    abort.signal.addEventListener('abort', () => clearInterval(tick), { once: true })
  }

  /** Closes every socket and timer. Resolves when they are closed. */
  async stop(): Promise<void> {
    const abort = this.#abort
    if (!abort) return
    abort.abort()
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    await this.#queue.catch(() => undefined)
    for (const link of this.#links.values()) this.#closeLink(link)
    this.#links.clear()
    if (this.#v4rx) closeQuietly(this.#v4rx)
    this.#v4rx = null
    this.#joined.clear()
    this.#warned.clear()
    this.#abort = null
  }

  /**
   * Sets what this node announces: sent at once on every interface (a fast
   * burst, LAN_BURST_MS), then every intervalMs; null stops announcing (still
   * listens). The payload is copied. Throws LanPayloadInvalidError when it is
   * empty or over LAN_MAX_PAYLOAD.
   */
  announce(payload: Buffer | null): void {
    if (payload === null) {
      this.#frame = null
      return
    }
    if (payload.length === 0 || payload.length > LAN_MAX_PAYLOAD) throw new LanPayloadInvalidError(`a LAN announcement payload must be 1..${LAN_MAX_PAYLOAD} bytes, got ${payload.length}`)
    const copy = Buffer.from(payload)
    if (this.#frame && this.#recent[this.#recent.length - 1]?.equals(copy)) return
    this.#frame = encodeFrame(copy)
    this.#recent = [...this.#recent.slice(-1), copy]
    if (!this.#abort) return
    for (const link of this.#links.values()) this.#burst(link)
  }

  /** The interfaces in use and, per interface, its IPv4 addresses and IPv6 link-local address (what the caller puts in its record as LAN endpoints). Empty before start(). */
  interfaces(): readonly { readonly name: string; readonly ipv4: readonly string[]; readonly ipv6LinkLocal: string | null }[] {
    return [...this.#links.values()].map((l) => ({ name: l.spec.name, ipv4: l.spec.ipv4.map(addrOf), ipv6LinkLocal: l.spec.ipv6LinkLocal }))
  }

  /** Counters since construction (a copy). */
  stats(): LanStats {
    return { ...this.#stats }
  }

  // -------------------------------------------------------------- internals

  async #tick(): Promise<void> {
    const fresh = await this.#enqueueRefresh()
    if (!this.#abort) return
    for (const link of this.#links.values()) if (!fresh.has(link)) this.#send(link)
    for (const link of fresh) this.#burst(link)
  }

  #enqueueRefresh(): Promise<Set<Link>> {
    const run = this.#queue.then(() => this.#refresh())
    this.#queue = run.catch(() => undefined)
    return run.catch((err: unknown) => {
      this.#log.warn({ err }, 'LAN discovery: interface refresh failed')
      return new Set<Link>()
    })
  }

  /** Brings the sockets in line with the system's interfaces; returns the links opened now. */
  async #refresh(): Promise<Set<Link>> {
    const signal = this.#abort?.signal
    const fresh = new Set<Link>()
    if (!signal || signal.aborted) return fresh
    const wanted = selectLinks(readInterfaces(), this.#requested)
    const wantedNames = new Set(wanted.map((l) => l.name))
    for (const [name, link] of this.#links) {
      if (!wantedNames.has(name)) {
        this.#log.debug({ iface: name }, 'LAN discovery: interface gone')
        this.#closeLink(link)
        this.#links.delete(name)
      }
    }
    for (const spec of wanted) {
      const old = this.#links.get(spec.name)
      const complete = old && (old.v6 !== null) === (spec.ipv6LinkLocal !== null) && (old.v4 !== null) === (spec.ipv4.length > 0)
      if (old && old.key === linkKey(spec) && complete) continue
      if (old) {
        this.#closeLink(old)
        this.#links.delete(spec.name)
      }
      const link = await this.#openLink(spec, signal)
      if (signal.aborted) {
        this.#closeLink(link)
        return fresh
      }
      this.#links.set(spec.name, link)
      fresh.add(link)
      this.#log.debug({ iface: spec.name, ipv4: spec.ipv4, ipv6: spec.ipv6LinkLocal }, 'LAN discovery: interface in use')
    }
    await this.#syncV4Memberships(signal)
    return fresh
  }

  async #openLink(spec: LanLink, signal: AbortSignal): Promise<Link> {
    const link: Link = { spec, key: linkKey(spec), v6: null, v4: null, closed: false }
    const name = spec.name
    if (spec.ipv6LinkLocal !== null) {
      try {
        const s = await openSocket('udp6', { address: `${LAN_GROUP_V6}%${name}`, port: this.#port }, signal)
        s.addMembership(LAN_GROUP_V6, `::%${name}`)
        s.setMulticastInterface(`::%${name}`)
        s.setMulticastTTL(1)
        s.setMulticastLoopback(true)
        s.on('message', (msg, rinfo) => this.#receive(msg, rinfo, name))
        s.on('error', (err) => this.#warnOnce(`${name}/v6/socket`, { err, iface: name }, 'LAN discovery: IPv6 socket error'))
        link.v6 = s
        this.#warned.delete(`${name}/v6/open`)
      } catch (err) {
        this.#warnOnce(`${name}/v6/open`, { err, iface: name }, 'LAN discovery: cannot open the IPv6 multicast socket; retrying on the next refresh')
      }
    }
    const v4 = spec.ipv4[0]
    if (v4 !== undefined && !signal.aborted) {
      try {
        const s = await openSocket('udp4', { address: addrOf(v4), port: 0 }, signal)
        s.setMulticastInterface(addrOf(v4))
        s.setMulticastTTL(1)
        s.setMulticastLoopback(true)
        s.on('error', (err) => this.#warnOnce(`${name}/v4/socket`, { err, iface: name }, 'LAN discovery: IPv4 socket error'))
        link.v4 = s
        this.#warned.delete(`${name}/v4/open`)
      } catch (err) {
        this.#warnOnce(`${name}/v4/open`, { err, iface: name }, 'LAN discovery: cannot open the IPv4 send socket; retrying on the next refresh')
      }
    }
    return link
  }

  #closeLink(link: Link): void {
    link.closed = true
    if (link.v6) closeQuietly(link.v6)
    if (link.v4) closeQuietly(link.v4)
    link.v6 = null
    link.v4 = null
  }

  /** One IPv4 receive socket, joined on the first IPv4 address of every link; a failed join is retried on the next refresh. */
  async #syncV4Memberships(signal: AbortSignal): Promise<void> {
    const want = new Map<string, string>()
    for (const l of this.#links.values()) {
      const a = l.spec.ipv4[0]
      if (a !== undefined) want.set(l.spec.name, addrOf(a))
    }
    if (want.size === 0 && !this.#v4rx) return
    if (!this.#v4rx) {
      try {
        const s = await openSocket('udp4', { address: LAN_GROUP_V4, port: this.#port }, signal)
        if (signal.aborted) {
          closeQuietly(s)
          return
        }
        s.on('message', (msg, rinfo) => this.#receive(msg, rinfo, null))
        s.on('error', (err) => this.#warnOnce('v4rx/socket', { err }, 'LAN discovery: IPv4 receive socket error'))
        this.#v4rx = s
        this.#warned.delete('v4rx/open')
      } catch (err) {
        this.#warnOnce('v4rx/open', { err }, 'LAN discovery: cannot open the IPv4 receive socket; retrying on the next refresh')
        return
      }
    }
    const rx = this.#v4rx
    for (const [name, addr] of this.#joined) {
      if (want.get(name) === addr) continue
      try {
        rx.dropMembership(LAN_GROUP_V4, addr)
      } catch (err) {
        // The interface is gone, and its memberships with it.
        this.#log.debug({ err, iface: name }, 'LAN discovery: leaving the IPv4 group failed')
      }
      this.#joined.delete(name)
    }
    for (const [name, addr] of want) {
      if (this.#joined.has(name)) continue
      try {
        rx.addMembership(LAN_GROUP_V4, addr)
        this.#joined.set(name, addr)
        this.#warned.delete(`${name}/v4/join`)
      } catch (err) {
        this.#warnOnce(`${name}/v4/join`, { err, iface: name }, 'LAN discovery: cannot join the IPv4 group; retrying on the next refresh')
      }
    }
  }

  #burst(link: Link): void {
    for (const ms of LAN_BURST_MS) {
      if (ms === 0) {
        this.#send(link)
        continue
      }
      const t = setTimeout(() => {
        this.#timers.delete(t)
        this.#send(link)
      }, ms)
      this.#timers.add(t)
    }
  }

  #send(link: Link): void {
    const frame = this.#frame
    if (!frame || link.closed || !this.#abort) return
    const name = link.spec.name
    if (link.v4) link.v4.send(frame, this.#port, LAN_GROUP_V4, (err) => this.#sent(err, `${name}/v4/send`, name))
    if (link.v6) link.v6.send(frame, this.#port, `${LAN_GROUP_V6}%${name}`, (err) => this.#sent(err, `${name}/v6/send`, name))
  }

  #sent(err: Error | null, key: string, iface: string): void {
    if (!err) {
      this.#stats.sent++
      if (this.#warned.delete(key)) this.#log.debug({ iface }, 'LAN discovery: sending works again')
      return
    }
    this.#stats.sendErrors++
    this.#warnOnce(key, { err, iface }, 'LAN discovery: send failed')
  }

  /** `iface` is the link of an IPv6 socket, or null for the IPv4 receive socket. */
  #receive(msg: Buffer, rinfo: RemoteInfo, iface: string | null): void {
    const frame = decodeFrame(msg)
    if (!frame.ok) {
      this.#stats[frame.drop]++
      this.#log.debug({ from: rinfo.address, drop: frame.drop, size: msg.length }, 'LAN discovery: datagram dropped')
      return
    }
    if (isOwnEcho(frame.payload, this.#recent)) {
      this.#stats.ownDropped++
      return
    }
    const names = iface !== null ? [iface] : ipv4Arrival(rinfo.address, [...this.#links.values()].map((l) => l.spec))
    if (names.length === 0) {
      this.#stats.unplaced++
      this.#log.debug({ from: rinfo.address }, 'LAN discovery: IPv4 source on no in-use subnet, dropped')
      return
    }
    const from = { address: stripScope(rinfo.address), port: rinfo.port }
    for (const name of names) {
      this.#stats.received++
      try {
        this.#onAnnouncement({ payload: frame.payload, from, interface: name })
      } catch (err) {
        this.#warnOnce('onAnnouncement', { err }, 'LAN discovery: the announcement handler threw')
      }
    }
  }

  #warnOnce(key: string, obj: Record<string, unknown>, msg: string): void {
    if (this.#warned.has(key)) {
      this.#log.debug(obj, msg)
      return
    }
    this.#warned.add(key)
    this.#log.warn(obj, msg)
  }
}

/** A bound UDP socket (SO_REUSEADDR, IPv6-only for udp6) that closes when `signal` aborts. */
async function openSocket(type: 'udp4' | 'udp6', at: { address: string; port: number }, signal: AbortSignal): Promise<Socket> {
  const s = createSocket({ type, reuseAddr: true, ipv6Only: type === 'udp6', signal })
  try {
    await new Promise<void>((resolve, reject) => {
      const closed = (): void => reject(new Error('socket closed while binding'))
      s.once('error', reject)
      s.once('close', closed)
      s.bind(at, () => {
        s.off('error', reject)
        s.off('close', closed)
        resolve()
      })
    })
  } catch (err) {
    closeQuietly(s)
    throw err
  }
  return s
}

function closeQuietly(s: Socket): void {
  try {
    s.close()
  } catch {
    // already closed (for instance by the abort signal)
  }
}
