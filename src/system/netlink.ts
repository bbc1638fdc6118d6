/**
 * `SystemAdapter` over rtnetlink (the `netlink` package). Three sockets:
 * - requests (changes): batched and pipelined by `RequestPipeline`; callers
 *   fire many at once;
 * - dumps (reads): one at a time, because the kernel runs one dump per socket
 *   and the package reassembles one multipart answer per socket;
 * - events: opened by `subscribe()`.
 *
 * Sockets open in the network namespace of the process (run the daemon
 * under `ip netns exec` to manage a namespace).
 */
import netlink from 'netlink'
import type { NetlinkMessage, NetlinkSocket, ifla, rt } from 'netlink'
import type {
  Address,
  KernelEvent,
  Link,
  LinkChange,
  Route,
  RouteFilter,
  Rule,
  RuleFilter,
  SystemAdapter,
  Unsubscribe,
} from './types.js'
import { familyToAf, formatAddress, formatRoute, formatRule, parseAddress, parseLink, parseRouteBody, parseRule, unknownDev } from './codec.js'
import { LinkNotFoundError, NetlinkError, NetlinkSocketError, isTransientErrno } from './errors.js'
import { RequestPipeline, errnoName } from './pipeline.js'
import { encodeRouteBody, joinBody } from './wire.js'
import { readSysctl, writeSysctl } from './sysctl.js'

const { AttrStream, Flags, FlagsGet, FlagsNew, parseError } = netlink
const NLMSG_ERROR = netlink.MessageType.ERROR
const T = netlink.rt.MessageType

export interface NetlinkAdapterOptions {
  /** Requests outstanding at once on the request socket. Default 128. */
  readonly maxInFlight?: number
  /** Requests framed into one `sendmsg`. Default 32. */
  readonly batch?: number
  /** A request without an answer after this long fails (ms). Default 10,000. */
  readonly timeoutMs?: number
}

/** Dumps interrupted by concurrent changes (NLM_F_DUMP_INTR) are redone this often. */
const DUMP_ATTEMPTS = 3

const EVENT_GROUPS = ['LINK', 'IPV4_IFADDR', 'IPV6_IFADDR', 'IPV4_ROUTE', 'IPV6_ROUTE', 'IPV4_RULE', 'IPV6_RULE'] as const

function body(format: (out: InstanceType<typeof AttrStream>) => void): Uint8Array[] {
  const out = new AttrStream()
  format(out)
  return out.bufs
}

export class NetlinkAdapter implements SystemAdapter {
  private readonly sock: NetlinkSocket
  private readonly dumpSock: NetlinkSocket
  private dumpLock: Promise<unknown> = Promise.resolve()
  private readonly timeoutMs: number
  private readonly pipeline: RequestPipeline
  private readonly indexByName = new Map<string, number>()
  private readonly nameByIndex = new Map<number, string>()
  private closed = false

  constructor(opts: NetlinkAdapterOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000
    this.sock = netlink.createNetlink(netlink.Protocol.ROUTE)
    this.dumpSock = netlink.createNetlink(netlink.Protocol.ROUTE)
    for (const s of [this.sock, this.dumpSock]) {
      try {
        s.setRecvBufferSize(1 << 20)
      } catch {
        // Capped by net.core.rmem_max; the in-flight bound keeps us safe anyway.
      }
    }
    this.pipeline = new RequestPipeline(this.sock, {
      maxInFlight: opts.maxInFlight ?? 128,
      batch: opts.batch ?? 32,
      timeoutMs: this.timeoutMs,
      onNoDevice: () => void this.listLinks().catch(() => undefined),
    })
  }

  // ---- links ----

  async listLinks(): Promise<Link[]> {
    const msgs = await this.dump(T.GETLINK, body((o) => netlink.rt.formatLinkMessage({ kind: 'link', data: {}, attrs: {} }, o)), 'list links')
    const links: Link[] = []
    this.indexByName.clear()
    this.nameByIndex.clear()
    for (const m of msgs) {
      const link = parseLink(netlink.rt.parseLinkMessage(m.data))
      if (link === null) continue
      links.push(link)
      this.remember(link)
    }
    return links
  }

  async getLink(name: string): Promise<Link | null> {
    return (await this.listLinks()).find((l) => l.name === name) ?? null
  }

  async setLink(name: string, change: LinkChange): Promise<void> {
    const index = await this.resolve(name)
    const data: rt.Link = { index }
    if (change.up !== undefined) {
      data.change = { up: true }
      data.flags = change.up ? { up: true } : {}
    }
    const attrs: ifla.LinkAttrs = {}
    if (change.mtu !== undefined) attrs.mtu = change.mtu
    const what = [change.mtu !== undefined ? `mtu ${change.mtu}` : '', change.up !== undefined ? (change.up ? 'up' : 'down') : ''].filter(Boolean).join(' ')
    await this.call(T.SETLINK, body((o) => netlink.rt.formatLinkMessage({ kind: 'link', data, attrs }, o)), 0, `set link ${name} ${what}`)
  }

  // ---- addresses ----

  async listAddresses(dev?: string): Promise<Address[]> {
    await this.listLinks()
    const msgs = await this.dump(T.GETADDR, body((o) => netlink.rt.formatAddressMessage({ kind: 'address', data: {}, attrs: {} }, o)), 'list addresses')
    const out: Address[] = []
    for (const m of msgs) {
      const a = parseAddress(netlink.rt.parseAddressMessage(m.data), this.nameOf)
      if (a !== null && (dev === undefined || a.dev === dev)) out.push(a)
    }
    return out
  }

  async addAddress(a: Address): Promise<void> {
    await this.resolve(a.dev)
    const { data, attrs } = formatAddress(a, this.indexOf)
    const op = `add address ${a.address}/${a.prefixLen} dev ${a.dev}`
    await this.call(T.NEWADDR, body((o) => netlink.rt.formatAddressMessage({ kind: 'address', data, attrs }, o)), FlagsNew.CREATE | FlagsNew.EXCL, op)
  }

  async delAddress(a: Address): Promise<void> {
    await this.resolve(a.dev)
    const { data, attrs } = formatAddress(a, this.indexOf)
    const op = `del address ${a.address}/${a.prefixLen} dev ${a.dev}`
    await this.call(T.DELADDR, body((o) => netlink.rt.formatAddressMessage({ kind: 'address', data, attrs: { local: attrs.local, address: attrs.address } }, o)), 0, op)
  }

  // ---- routes ----

  async listRoutes(filter: RouteFilter = {}): Promise<Route[]> {
    await this.listLinks()
    const family = filter.family === undefined ? 0 : familyToAf(filter.family)
    const msgs = await this.dump(T.GETROUTE, body((o) => netlink.rt.formatRouteMessage({ kind: 'route', data: { family }, attrs: {} }, o)), 'list routes')
    const out: Route[] = []
    for (const m of msgs) {
      const r = parseRouteBody(m.data, this.nameOf)
      if (r === null) continue
      if (filter.table !== undefined && r.table !== filter.table) continue
      if (filter.protocol !== undefined && r.protocol !== filter.protocol) continue
      if (filter.family !== undefined && r.family !== filter.family) continue
      out.push(r)
    }
    return out
  }

  addRoute(r: Route): Promise<void> {
    return this.routeCall(T.NEWROUTE, r, FlagsNew.CREATE | FlagsNew.EXCL, 'add')
  }

  replaceRoute(r: Route): Promise<void> {
    return this.routeCall(T.NEWROUTE, r, FlagsNew.CREATE | FlagsNew.REPLACE, 'replace')
  }

  delRoute(r: Route): Promise<void> {
    return this.routeCall(T.DELROUTE, r, 0, 'del')
  }

  private async routeCall(type: number, r: Route, flags: number, verb: string): Promise<void> {
    if (r.dev !== null && !this.indexByName.has(r.dev)) await this.resolve(r.dev)
    const op = `${verb} route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''} table ${r.table} metric ${r.metric}`
    await this.call(type, encodeRouteBody(formatRoute(r, this.indexOf)), flags, op)
  }

  // ---- rules ----

  async listRules(filter: RuleFilter = {}): Promise<Rule[]> {
    const family = filter.family === undefined ? 0 : familyToAf(filter.family)
    const msgs = await this.dump(T.GETRULE, body((o) => netlink.rt.formatRuleMessage({ kind: 'rule', data: { family }, attrs: {} }, o)), 'list rules')
    const out: Rule[] = []
    for (const m of msgs) {
      const r = parseRule(netlink.rt.parseRuleMessage(m.data))
      if (r === null) continue
      if (filter.priorityMin !== undefined && r.priority < filter.priorityMin) continue
      if (filter.priorityMax !== undefined && r.priority > filter.priorityMax) continue
      if (filter.family !== undefined && r.family !== filter.family) continue
      out.push(r)
    }
    return out
  }

  async addRule(r: Rule): Promise<void> {
    const { data, attrs } = formatRule(r)
    await this.call(T.NEWRULE, body((o) => netlink.rt.formatRuleMessage({ kind: 'rule', data, attrs }, o)), FlagsNew.CREATE | FlagsNew.EXCL, `add rule priority ${r.priority} lookup ${r.table}`)
  }

  async delRule(r: Rule): Promise<void> {
    const { data, attrs } = formatRule(r)
    await this.call(T.DELRULE, body((o) => netlink.rt.formatRuleMessage({ kind: 'rule', data, attrs }, o)), 0, `del rule priority ${r.priority} lookup ${r.table}`)
  }

  // ---- sysctls ----

  readSysctl(key: string): Promise<string> {
    return readSysctl(key)
  }

  writeSysctl(key: string, value: string): Promise<void> {
    return writeSysctl(key, value)
  }

  // ---- events ----

  subscribe(listener: (event: KernelEvent) => void): Unsubscribe {
    const sock = netlink.createNetlink(netlink.Protocol.ROUTE)
    for (const g of EVENT_GROUPS) sock.addMembership(netlink.rt.MulticastGroups[g])
    sock.on('message', (msgs) => {
      for (const m of msgs) {
        const event = this.toEvent(m)
        if (event !== null) listener(event)
      }
    })
    // ENOBUFS: the kernel dropped notifications; the listener must re-read.
    sock.on('error', () => listener({ type: 'overflow' }))
    sock.unref()
    let open = true
    return () => {
      if (!open) return
      open = false
      sock.close()
    }
  }

  private toEvent(m: NetlinkMessage): KernelEvent | null {
    try {
      switch (m.type) {
        case T.NEWLINK:
        case T.DELLINK: {
          const link = parseLink(netlink.rt.parseLinkMessage(m.data))
          if (link === null) return null
          if (m.type === T.NEWLINK) this.remember(link)
          return { type: 'link', op: m.type === T.NEWLINK ? 'new' : 'del', link }
        }
        case T.NEWADDR:
        case T.DELADDR: {
          const address = parseAddress(netlink.rt.parseAddressMessage(m.data), this.nameOf)
          return address && { type: 'address', op: m.type === T.NEWADDR ? 'new' : 'del', address }
        }
        case T.NEWROUTE:
        case T.DELROUTE: {
          const route = parseRouteBody(m.data, this.nameOf)
          return route && { type: 'route', op: m.type === T.NEWROUTE ? 'new' : 'del', route }
        }
        case T.NEWRULE:
        case T.DELRULE: {
          const rule = parseRule(netlink.rt.parseRuleMessage(m.data))
          return rule && { type: 'rule', op: m.type === T.NEWRULE ? 'new' : 'del', rule }
        }
        default:
          return null
      }
    } catch {
      // A message this version cannot parse: treat as "something changed".
      return { type: 'overflow' }
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.pipeline.close()
    this.sock.close()
    this.dumpSock.close()
  }

  // ---- plumbing ----

  private readonly nameOf = (index: number): string => this.nameByIndex.get(index) ?? unknownDev(index)

  private readonly indexOf = (name: string): number => {
    const index = this.indexByName.get(name)
    if (index === undefined) throw new LinkNotFoundError(name)
    return index
  }

  private remember(link: Link): void {
    const old = this.nameByIndex.get(link.index)
    if (old !== undefined && old !== link.name) this.indexByName.delete(old)
    this.indexByName.set(link.name, link.index)
    this.nameByIndex.set(link.index, link.name)
  }

  private async resolve(name: string): Promise<number> {
    if (!this.indexByName.has(name)) await this.listLinks()
    return this.indexOf(name)
  }

  /** One change request (batched, pipelined); resolves once acked. */
  private call(type: number, data: Uint8Array[] | Buffer, flags: number, op: string): Promise<void> {
    return this.pipeline.submit(type, flags, Buffer.isBuffer(data) ? data : joinBody(data), op)
  }

  /** Sends one request and checks the answer; resolves with its messages (none for a plain ack). */
  private async request(sock: NetlinkSocket, type: number, data: Uint8Array[], flags: number, op: string): Promise<NetlinkMessage[]> {
    if (this.closed) throw new NetlinkSocketError(`${op}: the adapter is closed`)
    let answer: NetlinkMessage[]
    try {
      ;[answer] = await sock.request(type, data, { flags, checkError: false, timeout: this.timeoutMs })
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      throw new NetlinkSocketError(`${op}: ${(err as Error).message}`, { cause: err, retryable: isTransientErrno(code) })
    }
    const first = answer[0]
    if (first !== undefined && first.type === NLMSG_ERROR) {
      const { errno } = parseError(first.data, first.flags)
      if (errno === 0) return []
      throw new NetlinkError(op, errnoName(errno))
    }
    return answer
  }

  /** One dump at a time on the dump socket; redone if the kernel flags it as interrupted. */
  private dump(type: number, data: Uint8Array[], op: string): Promise<NetlinkMessage[]> {
    const run = async (): Promise<NetlinkMessage[]> => {
      for (let attempt = 1; ; attempt++) {
        const msgs = await this.request(this.dumpSock, type, data, FlagsGet.DUMP, op)
        const interrupted = msgs.some((m) => (m.flags & Flags.DUMP_INTR) !== 0)
        if (!interrupted) return msgs
        if (attempt >= DUMP_ATTEMPTS) throw new NetlinkError(op, 'EINTR')
      }
    }
    const result = this.dumpLock.then(run, run)
    this.dumpLock = result.catch(() => undefined)
    return result
  }
}
