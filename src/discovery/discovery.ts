/**
 * Discovery as a subsystem: finds the network's members and hands the
 * daemon what it verified (a `Membership`); it never sets a table and never
 * dials (the mesh dials every admitted peer with an endpoint).
 *
 * Sources of records, all untrusted carriers (every record is opened and
 * checked by `MemberStore.offer`):
 * - the private DHT (`Dht`): this node's record is stored there and at every
 *   bootstrap node's rendezvous; the rendezvous is asked for every record
 *   under the network's salt (fast at start, then slowly), and a key that
 *   knocked (a refused handshake) is looked up at once;
 * - the LAN (`LanDiscovery`): records announced by multicast; the address an
 *   announcement came from marks that endpoint as a LAN path, dialled first;
 * - peers (exchange): a tunnel coming up gets every record this node holds,
 *   and a newer record is passed on to every other connected peer.
 *
 * Revocation lists spread the same way (newest `seq` wins, checked against
 * the CA). A node with the CA (`network.ca-dir`) also renews members'
 * certificates online and answers invite joins on the discovery port.
 *
 * Housekeeping runs on one 1 s tick.
 */
import { lookup } from 'node:dns/promises'
import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { join as joinPath } from 'node:path'
import { QeError } from '../errors.js'
import type { Config, Endpoint } from '../config/types.js'
import type { Logger } from '../log.js'
import type { CertMessage, ControlMessage, RecordsMessage, RevocationsMessage } from '../mesh/messages.js'
import { MAX_RECORDS_PER_MESSAGE, PROTOCOL_VERSION } from '../mesh/messages.js'
import {
  certificateNeedsRenewal,
  loadCertificate,
  loadRevocationList,
  openCa,
  parseCertificate,
  parseRevocationList,
  renewCertificate,
  revokedKeys,
  saveCertificate,
  saveRevocationList,
  verifyCertificate,
  verifyRevocationList,
  type Ca,
  type Certificate,
  type RevocationList,
} from '../pki/index.js'
import type { CertifiedMember, Membership } from '../state/members.js'
import type { Generation } from '../daemon/generation.js'
import type { Subsystem } from '../daemon/subsystem.js'
import type { SignedItem } from './bep44.js'
import { decodeItem, encodeItem } from './bep44.js'
import { Dht, type DhtComponents, type DhtInit } from './dht.js'
import { localEndpoints } from './endpoints.js'
import { encodeToken, InviteStore } from './invite.js'
import { JOIN_MAGIC, JoinServer, type JoinGrant } from './join.js'
import { LanDiscovery, type LanComponents, type LanInit } from './lan.js'
import { MemberStore, type Member, type RecordSource } from './members.js'
import { formatEndpoint, MAX_ENDPOINTS, networkKeys, sealRecord, type NetworkKeys, type RecordRefusal } from './record.js'
import type { DiscoveryStatus } from './types.js'

export type DhtLike = Pick<Dht, 'start' | 'stop' | 'port' | 'put' | 'get' | 'members' | 'onOther' | 'sendRaw' | 'stats'> & Partial<Pick<Dht, 'onAnnounced'>>
export type LanLike = Pick<LanDiscovery, 'start' | 'stop' | 'announce' | 'stats'>

export interface DiscoveryComponents {
  readonly log: Logger
  /** Members or the revocation list changed (coalesced: at most once per turn of the event loop). */
  readonly onMembership: (m: Membership) => void
  /** Sends a control message to a connected peer (may throw when it just went away). */
  readonly send: (peer: string, msg: ControlMessage) => void
  /** Keys of the peers connected now. */
  readonly connected: () => readonly string[]
  /** The engine's tunnel port (the port of this node's endpoints). */
  readonly listenPort: () => number
  /** More endpoints of this node for its record (reflexive addresses from NAT traversal), after the local ones. */
  readonly extraEndpoints?: () => readonly Endpoint[]
  /** A node joined with an invite: its certificate was signed (for the audit log). */
  readonly onJoin?: (joined: { key: string; name: string; groups: readonly string[] }) => void
  readonly now?: () => number
  readonly createDht?: (init: DhtInit, c: DhtComponents) => DhtLike
  readonly createLan?: (init: LanInit, c: LanComponents) => LanLike
}

/** `quicether invite` on a node that cannot issue invites. */
export class InviteUnavailableError extends QeError {
  override readonly code = 'QE_INVITE_UNAVAILABLE'
  constructor(message = 'this node cannot issue invites', options?: ErrorOptions) {
    super(message, options)
    this.name = 'InviteUnavailableError'
  }
}

/** Rendezvous polling: fast until the first members are found and for the first seconds, then slow. */
const POLL_FAST_MS = 500
const POLL_FAST_FOR_MS = 15_000
const POLL_SLOW_MS = 30_000
/** A record no bootstrap node took is announced again after this, doubling. */
const ANNOUNCE_RETRY_MIN_MS = 1_000
/** BEP 44 nodes keep an item about two hours: refresh well before. */
const REPUBLISH_MS = 20 * 60_000
/** Records of known members that are not connected are fetched again this often (connected peers pass on changes at once). */
const REFETCH_MS = 10 * 60_000
/** A key is pushed a renewed certificate at most this often. */
const RENEW_RETRY_MS = 60 * 60_000
/** Identical refusals (same key, same reason) are logged at most this often; all are counted. */
const REFUSAL_LOG_MS = 10_000

interface Running {
  readonly gen: Generation
  readonly keys: NetworkKeys | null
  readonly privateKey: KeyObject
  readonly store: MemberStore | null
  readonly dht: DhtLike | null
  readonly lan: LanLike | null
  readonly ca: Ca | null
  readonly bootstrap: readonly Endpoint[]
  readonly abort: AbortController
}

export class Discovery implements Subsystem<DiscoveryStatus> {
  readonly name = 'discovery'
  readonly #c: DiscoveryComponents
  readonly #now: () => number
  #run: Running | null = null
  #cert: Certificate | null = null
  #revocations: RevocationList | null = null
  #problem: string | null = null
  #own: SignedItem | null = null
  #ownEndpoints = ''
  #lastPublish = 0
  /** The record no bootstrap node took: announced again at `at` (backing off from 1 s to 30 s). */
  #announceRetry: { at: number; seq: number } | null = null
  #announceBackoff = ANNOUNCE_RETRY_MIN_MS
  #lastPoll = 0
  #lastRefetch = 0
  #startedAt = 0
  #mtimes = new Map<string, number>()
  #renewed = new Map<string, number>()
  #refusalLogged = new Map<string, number>()
  #revocationRefusals = 0
  #notifyQueued = false
  #timer: NodeJS.Timeout | null = null
  #join: JoinServer | null = null
  #invites: InviteStore | null = null

  constructor(components: DiscoveryComponents) {
    this.#c = components
    this.#now = components.now ?? Date.now
  }

  async start(gen: Generation): Promise<void> {
    const cfg = gen.config
    const log = this.#c.log
    this.#problem = null
    this.#startedAt = this.#now()
    const privateKey = createPrivateKey(gen.identity.privateKeyPem)
    let keys: NetworkKeys | null = null
    if (cfg.network.ca !== null) {
      const secret = await readSecret(cfg.network.secret).catch((err: Error) => {
        this.#problem = `network secret ${cfg.network.secret}: ${err.message}; members are not discovered`
        return null
      })
      if (secret) keys = networkKeys(secret, cfg.network.name, cfg.network.ca)
      this.#cert = await this.#loadOwnCert(gen)
    }
    const ca = cfg.network.caDir !== null ? await openCa(cfg.network.caDir).catch((err: Error) => this.#fail(`CA directory ${cfg.network.caDir}: ${err.message}`)) : null
    if (ca && cfg.network.ca !== null && ca.info.publicKey !== cfg.network.ca) {
      this.#fail(`the CA in ${cfg.network.caDir} (${ca.info.publicKey.slice(0, 8)}…) is not network.ca; it is not used`)
    }
    const store = keys ? new MemberStore(keys, gen.selfKey) : null
    this.#run = {
      gen,
      keys,
      privateKey,
      store,
      dht: null,
      lan: null,
      ca: ca && ca.info.publicKey === cfg.network.ca ? ca : null,
      bootstrap: await resolveBootstrap(cfg.discovery.bootstrap, log),
      abort: new AbortController(),
    }
    await this.#loadRevocations()
    const run = this.#run
    if (cfg.discovery.dht || cfg.node.bootstrapMode || run.ca) {
      const create = this.#c.createDht ?? ((i: DhtInit, c: DhtComponents) => new Dht(i, c))
      const dht = create(
        { address: isIP(cfg.listen.address) === 4 ? cfg.listen.address : '0.0.0.0', port: cfg.discovery.port, bootstrap: cfg.discovery.dht || cfg.node.bootstrapMode ? run.bootstrap : [], rendezvous: cfg.node.bootstrapMode },
        { log: log.child({ part: 'dht' }), now: this.#now },
      )
      dht.onOther((msg, from) => {
        if (this.#join && msg.subarray(0, JOIN_MAGIC.length).equals(JOIN_MAGIC)) this.#join.handle(msg, from, (b) => dht.sendRaw(b, from))
      })
      // A bootstrap node that is a member hears of members as they announce to it, not at its next lookup.
      dht.onAnnounced?.((item) => {
        if (keys && item.salt.equals(keys.salt)) this.#offer(item, 'rendezvous')
      })
      await dht.start()
      this.#run = { ...run, dht }
      log.info({ port: dht.port, bootstrap: run.bootstrap.map(formatEndpoint), rendezvous: cfg.node.bootstrapMode }, 'DHT started')
    }
    if (cfg.discovery.lan && keys) {
      const create = this.#c.createLan ?? ((i: LanInit, c: LanComponents) => new LanDiscovery(i, c))
      const lan = create({ interfaces: cfg.interfaces.map((u) => u.name) }, { log: log.child({ part: 'lan' }), onAnnouncement: (a) => this.#onLan(a.payload, a.from.address) })
      await lan.start()
      this.#run = { ...this.#run, lan }
    }
    if (this.#run.ca && this.#run.dht) {
      const store = new InviteStore(joinPath(cfg.node.stateDir, 'invites.json'))
      const problem = await store.load(this.#now())
      if (problem) log.warn({ file: joinPath(cfg.node.stateDir, 'invites.json'), problem }, 'pending invites not read: they are unknown now (issue new ones)')
      this.#invites = store
      this.#join = new JoinServer({ store }, { log: log.child({ part: 'join' }), now: this.#now, grant: (req) => this.#grant(req) })
    }
    this.#publish('start')
    this.#timer = setInterval(() => void this.tick(), 1000)
    this.#timer.unref()
    void this.tick()
  }

  async stop(): Promise<void> {
    const run = this.#run
    this.#run = null
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.#join = null
    this.#invites = null
    if (!run) return
    run.abort.abort()
    await run.lan?.stop().catch(() => undefined)
    await run.dht?.stop().catch(() => undefined)
  }

  async onReload(prev: Generation, next: Generation): Promise<void> {
    if (sameDiscovery(prev.config, next.config) && prev.selfKey === next.selfKey && this.#run?.gen === prev) {
      this.#run = { ...this.#run, gen: next }
      this.#publish('config')
      return
    }
    // Members stay known across the rebuild: their records are offered again from the old store.
    const known = this.#run?.store?.list().map((m) => m.item) ?? []
    await this.stop()
    await this.start(next)
    for (const item of known) this.#offer(item, 'pex')
    this.#notify()
  }

  /** The admitted members now (certificate checked, not revoked). */
  membership(): Membership {
    const run = this.#run
    const members: CertifiedMember[] = (run?.store?.list() ?? []).map((m) => ({
      key: m.key,
      name: m.cert.name,
      groups: m.cert.groups,
      ipv4: m.cert.ipv4,
      ipv6: m.cert.ipv6,
      subnets: m.cert.subnets,
      endpoints: m.endpoints,
    }))
    return { members, revoked: this.#revocations ? [...revokedKeys(this.#revocations)].sort() : [] }
  }

  // ---- events from the mesh ----

  /** A tunnel came up: the peer gets every record and the revocation list this node holds. */
  onPeerUp(peer: string): void {
    const run = this.#run
    if (!run?.keys) return
    const items = [...(this.#own ? [this.#own] : []), ...(run.store?.list().map((m) => m.item) ?? [])]
    this.#sendRecords(peer, items)
    if (this.#revocations) this.#sendTo(peer, { type: 'revocations', v: PROTOCOL_VERSION, list: this.#revocations })
    this.#maybeRenew(peer)
  }

  /** A handshake was refused because the key is not admitted: look its record up at once. */
  onRefused(peer: string): void {
    const run = this.#run
    if (!run?.keys || !run.dht || run.store?.get(peer)) return
    const k = Buffer.from(peer, 'base64')
    void run.dht.get(k, run.keys.salt).then(
      (item) => {
        if (item) this.#offer(item, 'dht')
      },
      (err: Error) => this.#c.log.debug({ key: peer, err: err.message }, 'DHT lookup failed'),
    )
    void this.#poll()
  }

  onMessage(peer: string, msg: RecordsMessage | RevocationsMessage | CertMessage): void {
    if (msg.type === 'records') {
      for (const it of msg.items) {
        const item: SignedItem = { k: Buffer.from(it.k, 'base64'), salt: Buffer.from(it.salt, 'base64'), seq: it.seq, sig: Buffer.from(it.sig, 'base64'), v: Buffer.from(it.v, 'base64') }
        this.#offer(item, 'pex', peer)
      }
    } else if (msg.type === 'revocations') {
      void this.#adoptRevocations(msg.list, `peer ${peer.slice(0, 8)}…`, peer)
    } else {
      void this.#adoptRenewal(msg.cert, peer)
    }
  }

  // ---- housekeeping ----

  /** One turn of housekeeping. Public for tests. */
  async tick(): Promise<void> {
    const run = this.#run
    if (!run) return
    const now = this.#now()
    await this.#watchFiles()
    if (this.#run !== run) return
    const endpoints = this.#endpointsText()
    const retry = this.#announceRetry
    if (retry && now >= retry.at) {
      this.#announceRetry = null
      if (this.#own?.seq === retry.seq && endpoints === this.#ownEndpoints) this.#publish('no bootstrap node took the record yet')
    }
    if (endpoints !== this.#ownEndpoints) this.#publish('endpoints changed')
    else if (now - this.#lastPublish >= REPUBLISH_MS) this.#publish('refresh')
    const fast = now - this.#startedAt < POLL_FAST_FOR_MS || (run.store?.size ?? 0) === 0
    if (now - this.#lastPoll >= (fast ? POLL_FAST_MS : POLL_SLOW_MS)) await this.#poll()
    if (now - this.#lastRefetch >= REFETCH_MS) this.#refetch()
    if (run.store) {
      const gone = run.store.expire(now)
      for (const key of gone) this.#c.log.warn({ key }, 'member certificate expired: cut off')
      if (gone.length > 0) this.#notify()
    }
    for (const peer of this.#c.connected()) this.#maybeRenew(peer)
  }

  status(): DiscoveryStatus {
    const run = this.#run
    const cert = this.#cert
    return {
      enabled: Boolean(run?.keys && cert && this.#own),
      problem: this.#problem,
      certificate: cert ? { name: cert.name, notAfter: cert.notAfter, groups: cert.groups } : null,
      members: (run?.store?.list() ?? []).map((m) => ({
        name: m.cert.name,
        key: m.key,
        via: m.via,
        endpoints: m.endpoints.map(formatEndpoint),
        lan: m.lan.map(formatEndpoint),
        certificateExpires: m.cert.notAfter,
        since: m.since,
      })),
      revocations: this.#revocations ? { seq: this.#revocations.seq, revoked: this.#revocations.revoked.length } : null,
      refusals: { ...(run?.store?.refusals ?? emptyRefusals()), revocations: this.#revocationRefusals },
      dht: run?.dht ? { port: run.dht.port, bootstrap: run.bootstrap.map(formatEndpoint), rendezvous: run.gen.config.node.bootstrapMode, stats: { ...run.dht.stats() } } : null,
      lan: run?.lan ? { ...run.lan.stats() } : null,
      join: this.#join ? { ...this.#join.stats() } : null,
    }
  }

  /**
   * A new invite (`quicether invite`): a token for one device, valid for
   * `ttlMs`. Only a node holding the CA (network.ca-dir) with its discovery
   * port open can answer the join.
   */
  async createInvite(req: { name: string; groups: readonly string[]; ttlMs: number }): Promise<{ token: string; expiresAt: number; name: string }> {
    const run = this.#run
    if (!run?.ca || !this.#invites || !run.dht) {
      throw new InviteUnavailableError('this node holds no CA: invites are issued by the node whose config names network.ca-dir (or sign a certificate by hand: quicether ca sign)')
    }
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(req.name)) throw new InviteUnavailableError(`'${req.name}' is not a node name (lowercase letters, digits and dashes)`)
    const taken = [run.gen.config.node.name, ...run.gen.config.peers.map((p) => p.name), ...(run.store?.list().map((m) => m.cert.name) ?? [])]
    if (taken.includes(req.name)) throw new InviteUnavailableError(`a node named '${req.name}' is already in the network: choose another name`)
    const endpoints = this.discoveryEndpoints().filter((e) => !e.host.includes(':'))
    if (endpoints.length === 0) throw new InviteUnavailableError('this node has no address to put in a token (no IPv4 address on any interface, and no discovery.public-address)')
    const inv = await this.#invites.create({ name: req.name, groups: req.groups, ttlMs: req.ttlMs, now: this.#now() })
    const token = encodeToken({ network: run.gen.config.network.name, id: inv.id, secret: inv.secret, expiresAt: inv.expiresAt, inviterKey: run.gen.selfKey, endpoints })
    this.#c.log.info({ name: req.name, groups: req.groups, expires: new Date(inv.expiresAt).toISOString() }, 'issued an invite')
    return { token, expiresAt: inv.expiresAt, name: req.name }
  }

  /** What a redeemed invite gives the new device: its certificate and how to find the network. */
  async #grant(req: { key: string; name: string; groups: readonly string[] }): Promise<JoinGrant> {
    const run = this.#run
    if (!run?.ca) throw new InviteUnavailableError('the CA is no longer loaded')
    const cfg = run.gen.config
    const cert = await run.ca.sign({ key: req.key, name: req.name, groups: req.groups })
    this.#c.onJoin?.({ key: req.key, name: req.name, groups: req.groups })
    return {
      cert,
      secret: (await run.ca.secret()).toString('base64'),
      network: { name: cfg.network.name, ca: run.ca.info.publicKey, overlay: { ipv4: cfg.network.overlay.ipv4, ipv6: cfg.network.overlay.ipv6 } },
      bootstrap: this.bootstrapEndpoints().map(formatEndpoint),
      inviter: { name: cfg.node.name, key: run.gen.selfKey, endpoints: this.tunnelEndpoints().map(formatEndpoint) },
    }
  }

  /** The discovery endpoints of this node (what an invite token names), preferred first. */
  discoveryEndpoints(): Endpoint[] {
    const run = this.#run
    if (!run?.dht) return []
    return localEndpoints(run.gen.config, run.dht.port)
  }

  /** The running CA (admin node), for invites and the join server. */
  get ca(): Ca | null {
    return this.#run?.ca ?? null
  }

  /** This node's tunnel endpoints (what its record says). */
  tunnelEndpoints(): Endpoint[] {
    const run = this.#run
    if (!run) return []
    const out = localEndpoints(run.gen.config, this.#c.listenPort())
    for (const e of this.#c.extraEndpoints?.() ?? []) if (!out.some((x) => sameEndpoint(x, e))) out.push(e)
    return out.slice(0, MAX_ENDPOINTS)
  }

  /** This node's local tunnel endpoints only (interfaces, listen address, public-address). */
  localTunnelEndpoints(): Endpoint[] {
    const run = this.#run
    return run ? localEndpoints(run.gen.config, this.#c.listenPort()) : []
  }

  /** The endpoints changed outside discovery's view (a reflexive address): republish now if the record differs. */
  endpointsChanged(): void {
    if (this.#run && this.#endpointsText() !== this.#ownEndpoints) this.#publish('endpoints changed')
  }

  /** The bootstrap nodes this node knows: configured, and members that advertise themselves as one. */
  bootstrapEndpoints(): Endpoint[] {
    const run = this.#run
    if (!run) return []
    const out = [...run.bootstrap]
    for (const m of run.store?.list() ?? []) if (m.bootstrap && !out.some((e) => sameEndpoint(e, m.bootstrap as Endpoint))) out.push(m.bootstrap)
    const cfg = run.gen.config
    if (cfg.node.bootstrapMode && run.dht) for (const e of localEndpoints(cfg, run.dht.port)) if (!out.some((x) => sameEndpoint(x, e))) out.push(e)
    return out
  }

  // ---- internals ----

  #publish(why: string): void {
    const run = this.#run
    const cert = this.#cert
    if (!run?.keys || !cert) return
    const cfg = run.gen.config
    const now = this.#now()
    const endpoints = this.tunnelEndpoints()
    const advertise = cfg.discovery.advertiseAsBootstrap && run.dht !== null
    const bootstrapHost = cfg.discovery.publicAddress ?? endpoints[0]?.host
    const bootstrap = advertise && bootstrapHost !== undefined && run.dht ? { host: bootstrapHost, port: run.dht.port } : null
    let item: SignedItem
    try {
      item = sealRecord({ cert, endpoints, bootstrap }, run.keys, run.privateKey, Math.max(now, (this.#own?.seq ?? 0) + 1))
    } catch (err) {
      this.#fail(`cannot build this node's record: ${(err as Error).message}`)
      return
    }
    this.#own = item
    this.#ownEndpoints = this.#endpointsText()
    this.#lastPublish = now
    this.#c.log.info({ why, seq: item.seq, endpoints: endpoints.map(formatEndpoint), bootstrap: bootstrap ? formatEndpoint(bootstrap) : null }, 'published this node\'s record')
    try {
      run.lan?.announce(encodeItem(item))
    } catch (err) {
      this.#c.log.warn({ err: (err as Error).message }, 'cannot announce this node\'s record on the LAN')
    }
    for (const peer of this.#c.connected()) this.#sendRecords(peer, [item])
    if (run.dht) {
      const seq = item.seq
      run.dht.put(item).then(
        (r) => {
          // No bootstrap node took it (it was starting too, or unreachable): announce again soon, backing off.
          if (r.announced === 0 && run.bootstrap.length > 0 && this.#own?.seq === seq) {
            this.#announceRetry = { at: this.#now() + this.#announceBackoff, seq }
            this.#announceBackoff = Math.min(this.#announceBackoff * 2, POLL_SLOW_MS)
          } else if (r.announced > 0) this.#announceBackoff = ANNOUNCE_RETRY_MIN_MS
        },
        (err: Error) => this.#c.log.warn({ err: err.message }, 'cannot store this node\'s record in the DHT'),
      )
    }
  }

  #endpointsText(): string {
    const run = this.#run
    return run ? this.tunnelEndpoints().map(formatEndpoint).join(',') : ''
  }

  /** Offers a record; a new or newer one is passed on to every connected peer but its sender. */
  #offer(item: SignedItem, via: RecordSource, from?: string, lanFrom?: string): void {
    const run = this.#run
    if (!run?.store) return
    const r = run.store.offer(item, via, this.#now(), lanFrom)
    if (r.outcome === 'refused') {
      const id = `${r.key}|${r.refusal}`
      const last = this.#refusalLogged.get(id) ?? -Infinity
      if (this.#now() - last >= REFUSAL_LOG_MS) {
        this.#refusalLogged.set(id, this.#now())
        this.#c.log.warn({ key: r.key, via, from: from ?? lanFrom ?? null, refusal: r.refusal, reason: r.reason }, 'refused a member record')
      }
      return
    }
    if (r.outcome === 'same') return
    if (r.outcome === 'new') this.#c.log.info({ member: r.member.cert.name, key: r.member.key, via, endpoints: r.member.endpoints.map(formatEndpoint) }, 'found a member')
    else this.#c.log.debug({ member: r.member.cert.name, via, seq: r.member.seq }, 'member record updated')
    if (via !== 'lan' || r.outcome === 'new') for (const peer of this.#c.connected()) if (peer !== from && peer !== r.member.key) this.#sendRecords(peer, [item])
    this.#notify()
  }

  #onLan(payload: Buffer, address: string): void {
    const item = decodeItem(payload)
    if (!item) {
      const store = this.#run?.store
      if (store) store.refusals.malformed++
      const id = `lan|${address}|malformed`
      if (this.#now() - (this.#refusalLogged.get(id) ?? -Infinity) >= REFUSAL_LOG_MS) {
        this.#refusalLogged.set(id, this.#now())
        this.#c.log.warn({ from: address, via: 'lan' }, 'refused a LAN announcement that is no record')
      }
      return
    }
    this.#offer(item, 'lan', undefined, address)
  }

  async #poll(): Promise<void> {
    const run = this.#run
    this.#lastPoll = this.#now()
    if (!run?.keys || !run.dht || run.bootstrap.length === 0) return
    try {
      const items = await run.dht.members(run.keys.salt)
      for (const item of items) if (this.#run === run) this.#offer(item, 'rendezvous')
    } catch (err) {
      this.#c.log.debug({ err: (err as Error).message }, 'rendezvous poll failed')
    }
  }

  #refetch(): void {
    const run = this.#run
    this.#lastRefetch = this.#now()
    if (!run?.keys || !run.dht || !run.store) return
    const keys = run.keys
    const connected = new Set(this.#c.connected())
    for (const m of run.store.list()) {
      if (connected.has(m.key)) continue
      void run.dht.get(m.item.k, keys.salt).then(
        (item) => {
          if (item && this.#run === run) this.#offer(item, 'dht')
        },
        () => undefined,
      )
    }
  }

  #sendRecords(peer: string, items: readonly SignedItem[]): void {
    for (let i = 0; i < items.length; i += MAX_RECORDS_PER_MESSAGE) {
      const chunk = items.slice(i, i + MAX_RECORDS_PER_MESSAGE).map((it) => ({ k: it.k.toString('base64'), salt: it.salt.toString('base64'), seq: it.seq, sig: it.sig.toString('base64'), v: it.v.toString('base64') }))
      this.#sendTo(peer, { type: 'records', v: PROTOCOL_VERSION, items: chunk })
    }
  }

  #sendTo(peer: string, msg: ControlMessage): void {
    try {
      this.#c.send(peer, msg)
    } catch (err) {
      this.#c.log.debug({ peer, type: msg.type, err: (err as Error).message }, 'cannot send to peer')
    }
  }

  #notify(): void {
    if (this.#notifyQueued) return
    this.#notifyQueued = true
    setImmediate(() => {
      this.#notifyQueued = false
      if (this.#run) this.#c.onMembership(this.membership())
    })
  }

  // ---- certificates and revocation ----

  async #loadOwnCert(gen: Generation): Promise<Certificate | null> {
    const cfg = gen.config
    let cert: Certificate
    try {
      cert = await loadCertificate(cfg.network.certificate)
    } catch (err) {
      this.#fail(`certificate ${cfg.network.certificate}: ${(err as Error).message}; this node is not announced`)
      return null
    }
    const check = verifyCertificate(cert, { ca: cfg.network.ca as string, network: cfg.network.name, now: this.#now() })
    if (!check.ok) {
      this.#fail(`certificate ${cfg.network.certificate}: ${check.reason}; this node is not announced`)
      return null
    }
    if (cert.key !== gen.selfKey) {
      this.#fail(`certificate ${cfg.network.certificate} is for another key (${cert.key.slice(0, 8)}…); this node is not announced`)
      return null
    }
    return cert
  }

  async #loadRevocations(): Promise<void> {
    const run = this.#run
    if (!run) return
    const cfg = run.gen.config
    const fromFile = await loadRevocationList(cfg.network.revocations).catch((err: Error) => {
      this.#c.log.warn({ file: cfg.network.revocations, err: err.message }, 'cannot read the revocation list')
      return null
    })
    if (fromFile) await this.#adoptRevocations(fromFile, cfg.network.revocations, null, false)
    if (run.ca) await this.#adoptRevocations(await run.ca.revocations(), `${cfg.network.caDir}/revoked.json`, null)
  }

  /** A revocation list from a peer or a file: adopted (saved, applied, passed on) when it verifies and is newer. */
  async #adoptRevocations(input: unknown, source: string, from: string | null, save = true): Promise<void> {
    const run = this.#run
    const cfg = run?.gen.config
    if (!run || !cfg || cfg.network.ca === null) return
    const parsed = parseRevocationList(input)
    const check = parsed.ok ? verifyRevocationList(parsed.list, { ca: cfg.network.ca, network: cfg.network.name }) : null
    if (!parsed.ok || !check?.ok) {
      this.#revocationRefusals++
      this.#c.log.warn({ source, reason: parsed.ok ? (check as { reason: string }).reason : parsed.reason }, 'refused a revocation list')
      return
    }
    const list = parsed.list
    if (this.#revocations && list.seq <= this.#revocations.seq) return
    this.#revocations = list
    const revoked = revokedKeys(list)
    const gone = run.store?.setRevoked(revoked) ?? []
    this.#c.log.warn({ source, seq: list.seq, revoked: list.revoked.length, cut: gone.length }, 'adopted a newer revocation list')
    if (save) await saveRevocationList(cfg.network.revocations, list).catch((err: Error) => this.#c.log.warn({ err: err.message }, 'cannot save the revocation list'))
    this.#mtimes.set(cfg.network.revocations, await mtime(cfg.network.revocations))
    for (const peer of this.#c.connected()) if (peer !== from) this.#sendTo(peer, { type: 'revocations', v: PROTOCOL_VERSION, list })
    if (this.#cert && revoked.has(this.#cert.key)) this.#fail('this node\'s own key is revoked')
    this.#notify()
  }

  /** A renewed certificate pushed by a node holding the CA: taken when it is for this key and lasts longer. */
  async #adoptRenewal(input: unknown, from: string): Promise<void> {
    const run = this.#run
    const cfg = run?.gen.config
    if (!run || !cfg || cfg.network.ca === null) return
    const parsed = parseCertificate(input)
    if (!parsed.ok) return void this.#c.log.warn({ from, reason: parsed.reason }, 'refused a certificate push')
    const cert = parsed.cert
    const check = verifyCertificate(cert, { ca: cfg.network.ca, network: cfg.network.name, now: this.#now() })
    if (!check.ok || cert.key !== run.gen.selfKey) return void this.#c.log.warn({ from, reason: check.ok ? 'for another key' : check.reason }, 'refused a certificate push')
    if (this.#cert && cert.notAfter <= this.#cert.notAfter) return
    await saveCertificate(cfg.network.certificate, cert)
    this.#mtimes.set(cfg.network.certificate, await mtime(cfg.network.certificate))
    this.#cert = cert
    this.#c.log.info({ from, notAfter: new Date(cert.notAfter).toISOString() }, 'certificate renewed online')
    this.#publish('certificate renewed')
  }

  /** On the admin node: a connected member whose certificate nears its end gets a renewed one. */
  #maybeRenew(peer: string): void {
    const run = this.#run
    if (!run?.ca || !run.store) return
    const m: Member | undefined = run.store.get(peer)
    const now = this.#now()
    if (!m || !certificateNeedsRenewal(m.cert, now)) return
    if (now - (this.#renewed.get(peer) ?? -Infinity) < RENEW_RETRY_MS) return
    this.#renewed.set(peer, now)
    try {
      const cert = renewCertificate(m.cert, run.ca.privateKey, { now })
      this.#sendTo(peer, { type: 'cert', v: PROTOCOL_VERSION, cert })
      this.#c.log.info({ member: m.cert.name, notAfter: new Date(cert.notAfter).toISOString() }, 'pushed a renewed certificate')
    } catch (err) {
      this.#c.log.warn({ member: m.cert.name, err: (err as Error).message }, 'cannot renew a certificate')
    }
  }

  /** Files an operator may replace while the node runs: its certificate, the revocation list, the CA's list. */
  async #watchFiles(): Promise<void> {
    const run = this.#run
    const cfg = run?.gen.config
    if (!run || !cfg || cfg.network.ca === null) return
    if (await this.#changed(cfg.network.certificate)) {
      const cert = await this.#loadOwnCert(run.gen)
      if (cert && cert.serial !== this.#cert?.serial) {
        this.#cert = cert
        this.#problem = null
        this.#publish('certificate file changed')
      }
    }
    if (await this.#changed(cfg.network.revocations)) {
      const list = await loadRevocationList(cfg.network.revocations).catch(() => null)
      if (list) await this.#adoptRevocations(list, cfg.network.revocations, null, false)
    }
    if (run.ca && cfg.network.caDir !== null && (await this.#changed(`${cfg.network.caDir}/revoked.json`))) {
      await this.#adoptRevocations(await run.ca.revocations(), `${cfg.network.caDir}/revoked.json`, null)
    }
  }

  async #changed(path: string): Promise<boolean> {
    const m = await mtime(path)
    const before = this.#mtimes.get(path)
    this.#mtimes.set(path, m)
    return before !== undefined && before !== m
  }

  #fail(problem: string): null {
    this.#problem = problem
    this.#c.log.error(problem)
    return null
  }
}

async function readSecret(path: string): Promise<Buffer> {
  const text = (await readFile(path, 'utf8')).trim()
  const secret = Buffer.from(text, 'base64')
  if (secret.length < 16 || secret.toString('base64') !== text) throw new Error('not the base64 of a secret (quicether ca init writes one; quicether join fetches it)')
  return secret
}

async function mtime(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs
  } catch {
    return 0
  }
}

/** Bootstrap nodes as IP literals (a configured name is resolved once, at start). */
async function resolveBootstrap(list: readonly Endpoint[], log: Logger): Promise<Endpoint[]> {
  const out: Endpoint[] = []
  for (const e of list) {
    if (isIP(e.host) !== 0) {
      out.push(e)
      continue
    }
    try {
      out.push({ host: (await lookup(e.host, { family: 4 })).address, port: e.port })
    } catch (err) {
      log.warn({ bootstrap: `${e.host}:${e.port}`, err: (err as Error).message }, 'cannot resolve a bootstrap node')
    }
  }
  return out
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.host === b.host && a.port === b.port
}

/** The config keys discovery reads; when none changed, a reload only republishes. */
function sameDiscovery(a: Config, b: Config): boolean {
  const pick = (c: Config) => JSON.stringify([c.discovery, c.network, c.node.bootstrapMode, c.listen, c.interfaces.map((u) => u.name)])
  return pick(a) === pick(b)
}

function emptyRefusals(): Record<RecordRefusal, number> {
  return { 'bad-signature': 0, 'other-network': 0, malformed: 0, 'key-mismatch': 0, 'cert-invalid': 0, 'cert-expired': 0, revoked: 0, replayed: 0 }
}
