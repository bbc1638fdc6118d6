/**
 * The discovery subsystem with a scripted DHT and hand-carried control
 * messages: members found through the rendezvous, records passed between
 * peers, a refused key looked up at once, a revocation list spread and
 * applied, a certificate renewed online, and bad input refused and counted.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import type { Generation } from '../../src/daemon/generation.js'
import { encodeItem, itemTarget, type SignedItem } from '../../src/discovery/bep44.js'
import { Discovery, type DhtLike } from '../../src/discovery/discovery.js'
import { silentLogger } from '../../src/log.js'
import type { ControlMessage, RecordsMessage, RevocationsMessage, CertMessage } from '../../src/mesh/messages.js'
import { deriveOverlayAddresses, generateIdentity, publicKeyBase64 } from '../../src/mesh/identity.js'
import { initCa, openCa, saveCertificate, parseCertificate } from '../../src/pki/index.js'
import type { Membership } from '../../src/state/members.js'

/** One shared store stands for the DHT and its rendezvous. */
class FakeNet {
  items = new Map<string, SignedItem>()
  gets = 0
  dht(): DhtLike {
    const items = this.items
    const count = () => this.gets++
    return {
      port: 7444,
      async start() {},
      async stop() {},
      async put(item: SignedItem) {
        const id = itemTarget(item.k, item.salt).toString('hex')
        const held = items.get(id)
        if (!held || held.seq < item.seq) items.set(id, item)
        return { stored: 1 }
      },
      async get(k: Buffer, salt: Buffer) {
        count()
        return items.get(itemTarget(k, salt).toString('hex')) ?? null
      },
      async members(salt: Buffer) {
        return [...items.values()].filter((i) => i.salt.equals(salt))
      },
      onOther() {},
      sendRaw() {},
      stats: () => ({}) as ReturnType<DhtLike['stats']>,
    } as unknown as DhtLike
  }
}

interface Node {
  name: string
  key: string
  discovery: Discovery
  sent: { to: string; msg: ControlMessage }[]
  memberships: Membership[]
  connected: string[]
  dir: string
  gen: Generation
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'qe-disc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const caDir = join(dir, 'ca')
  await initCa(caDir, { network: 'homelab' })
  const ca = await openCa(caDir)
  const secret = (await ca.secret()).toString('base64')
  const net = new FakeNet()
  const nodes: Node[] = []
  const clock = { now: Date.now() }

  const lans: ((a: { payload: Buffer; from: { address: string; port: number }; interface: string }) => void)[] = []
  async function node(name: string, opts: { admin?: boolean; lifetime?: { lifetimeMs: number; agoMs: number }; lan?: boolean } = {}): Promise<Node> {
    const home = join(dir, name)
    const id = generateIdentity()
    const key = publicKeyBase64(id)
    const cert = await ca.sign({ key, name, ...(opts.lifetime ? { lifetimeMs: opts.lifetime.lifetimeMs, now: Date.now() - opts.lifetime.agoMs } : {}) })
    await saveCertificate(join(home, 'node.crt'), cert)
    await writeFile(join(home, 'network.secret'), secret + '\n', { mode: 0o600 })
    const r = loadConfigText(
      `node: { name: ${name}, state-dir: ${home} }
network: { name: homelab, ca: "${ca.info.publicKey}"${opts.admin ? `, ca-dir: ${caDir}` : ''} }
listen: { address: 192.0.2.${nodes.length + 1} }
discovery: { dht: true, bootstrap: [192.0.2.100:7444], lan: ${opts.lan ? 'true' : 'false'} }
`,
      `${name}.yaml`,
    )
    if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
    const self = deriveOverlayAddresses(id.publicKey, r.config.network.overlay.ipv4, r.config.network.overlay.ipv6)
    const gen: Generation = { config: r.config, identity: id, selfKey: key, self, tunMtu: 1420 }
    const n: Node = { name, key, sent: [], memberships: [], connected: [], dir: home, gen, discovery: null as unknown as Discovery }
    n.discovery = new Discovery({
      log: silentLogger,
      onMembership: (m) => n.memberships.push(m),
      send: (to, msg) => n.sent.push({ to, msg }),
      connected: () => n.connected,
      listenPort: () => 7443,
      createDht: () => net.dht(),
      createLan: (_init, c) => {
        lans.push(c.onAnnouncement)
        return { start: async () => undefined, stop: async () => undefined, announce: () => undefined, stats: () => ({ sent: 0, received: 0, ownDropped: 0, malformed: 0, oversize: 0, sendErrors: 0, unplaced: 0 }) }
      },
      now: () => clock.now,
    })
    nodes.push(n)
    return n
  }
  t.teardown(async () => {
    for (const n of nodes) await n.discovery.stop()
  })
  /** Moves the shared clock past the rendezvous poll period and runs each node's housekeeping. */
  async function tickAll(...ns: Node[]) {
    clock.now += 1000
    for (const n of ns) await n.discovery.tick()
    await settle()
  }
  return { node, net, caDir, ca, tickAll, lans }
}

const settle = () => new Promise((r) => setTimeout(r, 20))
/** Waits until `cond` holds (file writes and the coalesced notification are asynchronous); a hang guard, not a timing bar. */
async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const t0 = Date.now()
  while (!(await cond())) {
    if (Date.now() - t0 > ms) return
    await new Promise((r) => setTimeout(r, 10))
  }
}
const names = (n: Node) => (n.memberships.at(-1)?.members ?? []).map((m) => m.name).sort()

/** Delivers what `from` sent to `to` (records, revocations, certificates). */
function carry(from: Node, to: Node): void {
  for (const s of from.sent.splice(0)) {
    if (s.to !== to.key) continue
    if (s.msg.type === 'records' || s.msg.type === 'revocations' || s.msg.type === 'cert') to.discovery.onMessage(from.key, s.msg as RecordsMessage | RevocationsMessage | CertMessage)
  }
}

t.test('members are found through the rendezvous; the membership names them with their endpoints', async (t) => {
  const { node, tickAll } = await setup(t)
  const a = await node('alpha')
  const b = await node('beta')
  await a.discovery.start(a.gen)
  await b.discovery.start(b.gen)
  await tickAll(a)
  t.same(names(b), ['alpha'], 'beta found alpha at its start')
  t.same(names(a), ['beta'], 'alpha found beta on its next poll')
  const alpha = b.memberships.at(-1)?.members[0]
  t.same(alpha?.endpoints, [{ host: '192.0.2.1', port: 7443 }])
  t.equal(a.discovery.status().enabled, true)
})

t.test('peer exchange: a tunnel coming up passes every record; a newer one is passed on', async (t) => {
  const { node, net } = await setup(t)
  const a = await node('alpha')
  const b = await node('beta')
  const c = await node('gamma')
  for (const n of [a, b, c]) await n.discovery.start(n.gen)
  await settle()
  net.items.clear() // from here on, only peers carry records
  b.connected = [c.key]
  c.connected = [b.key]
  b.discovery.onPeerUp(c.key)
  carry(b, c)
  await settle()
  t.same(names(c), ['alpha', 'beta'], 'gamma learned alpha through beta')
})

t.test('a refused key is looked up in the DHT at once', async (t) => {
  const { node, net } = await setup(t)
  const a = await node('alpha')
  const b = await node('beta')
  await b.discovery.start(b.gen)
  await a.discovery.start(a.gen)
  await settle()
  t.same(names(b), [], 'beta started first and has not polled again')
  const before = net.gets
  b.discovery.onRefused(a.key)
  await settle()
  t.ok(net.gets > before, 'a DHT get for the key')
  t.same(names(b), ['alpha'])
})

t.test('bad records from a peer are refused, counted, and change nothing', async (t) => {
  const { node } = await setup(t)
  const a = await node('alpha')
  await a.discovery.start(a.gen)
  const forged = { k: Buffer.alloc(32, 7).toString('base64'), salt: Buffer.alloc(16).toString('base64'), seq: 1, sig: Buffer.alloc(64).toString('base64'), v: Buffer.from('x').toString('base64') }
  a.discovery.onMessage('someone', { type: 'records', v: 1, items: [forged] })
  await settle()
  t.same(names(a), [])
  t.equal(a.discovery.status().refusals['other-network'], 1, 'another salt: another network')
})

t.test('revocation: the CA\'s list is adopted, saved, passed on, and cuts the member', async (t) => {
  const { node, ca, tickAll } = await setup(t)
  const admin = await node('admin', { admin: true })
  const b = await node('beta')
  const c = await node('gamma')
  for (const n of [admin, b, c]) await n.discovery.start(n.gen)
  await tickAll(admin, b)
  t.same(names(b), ['admin', 'gamma'])
  admin.connected = [b.key]
  await ca.revoke([{ key: c.key, name: 'gamma' }])
  // The admin's daemon notices the CA directory's list on its next tick (file mtime).
  await new Promise((r) => setTimeout(r, 15))
  await tickAll(admin)
  await until(() => names(admin).length === 1)
  t.same(names(admin), ['beta'], 'the admin cut gamma')
  carry(admin, b)
  await until(() => names(b).length === 1)
  t.same(names(b), ['admin'], 'beta cut gamma once the list reached it')
  t.same(b.memberships.at(-1)?.revoked, [c.key])
  const saved = JSON.parse(await readFile(b.gen.config.network.revocations, 'utf8')) as { seq: number }
  t.equal(saved.seq, 1, 'beta saved the list for its next start')
  b.discovery.onMessage(admin.key, { type: 'revocations', v: 1, list: { ...saved, seq: 9 } })
  await until(() => b.discovery.status().refusals.revocations === 1)
  t.equal(b.discovery.status().refusals.revocations, 1, 'a tampered list is refused and counted')
})

t.test('online renewal: the CA holder pushes a renewed certificate; the node saves it and republishes', async (t) => {
  const { node, tickAll } = await setup(t)
  const admin = await node('admin', { admin: true })
  const b = await node('beta', { lifetime: { lifetimeMs: 60_000, agoMs: 50_000 } })
  for (const n of [admin, b]) await n.discovery.start(n.gen)
  await tickAll(admin)
  const before = parseCertificate(await readFile(join(b.dir, 'node.crt'), 'utf8'))
  admin.discovery.onPeerUp(b.key)
  b.connected = [admin.key]
  carry(admin, b)
  await until(() => b.sent.some((s) => s.msg.type === 'records'))
  const after = parseCertificate(await readFile(join(b.dir, 'node.crt'), 'utf8'))
  t.ok(before.ok && after.ok && after.cert.serial !== before.cert.serial, 'a new certificate on disk')
  t.ok(after.ok && before.ok && after.cert.notAfter > before.cert.notAfter, 'it lasts longer')
  t.ok(b.sent.some((s) => s.to === admin.key && s.msg.type === 'records'), 'beta republished its record to its peers')
})

t.test('LAN: a member\'s announcement marks its address as a LAN path; a non-member\'s is refused and counted', async (t) => {
  const { node, net, lans } = await setup(t)
  const a = await node('alpha')
  const b = await node('beta', { lan: true })
  await a.discovery.start(a.gen)
  const alphaItem = [...net.items.values()][0] as SignedItem
  net.items.clear()
  await b.discovery.start(b.gen)
  const hear = lans[0]
  t.ok(hear, 'beta listens on the LAN')
  hear?.({ payload: encodeItem(alphaItem), from: { address: '192.0.2.1', port: 7447 }, interface: 'eth0' })
  await settle()
  t.same(names(b), ['alpha'])
  t.same(b.discovery.status().members[0]?.lan, ['192.0.2.1:7443'], 'the address it announced from, listed in its record, is a LAN path')
  // An outsider: a well-signed record of another network.
  const { node: otherNode, net: otherNet } = await setup(t)
  const x = await otherNode('mallory')
  await x.discovery.start(x.gen)
  const foreign = [...otherNet.items.values()][0] as SignedItem
  hear?.({ payload: encodeItem(foreign), from: { address: '192.0.2.66', port: 7447 }, interface: 'eth0' })
  hear?.({ payload: Buffer.from('not a record'), from: { address: '192.0.2.67', port: 7447 }, interface: 'eth0' })
  await settle()
  t.same(names(b), ['alpha'], 'no outsider admitted')
  t.equal(b.discovery.status().refusals['other-network'], 1, 'the outsider refused and counted')
  t.equal(b.discovery.status().refusals.malformed, 1, 'junk refused and counted')
})
