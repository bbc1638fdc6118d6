/**
 * Discovery end to end, with real daemons in namespaces that know only their
 * network (CA, certificate, secret) and one lab bootstrap node: the mesh
 * forms, a late joiner and an invited device join, a certificate is renewed
 * online without dropping a tunnel, a revoked member is cut off, and on a
 * LAN segment members find each other by multicast. Deadlines here are hang
 * guards, not performance bars (`quicether lab mesh` measures).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { main } from '../../src/cli/main.js'
import { MeshLab } from '../../src/lab/mesh.js'
import { parseCertificate } from '../../src/pki/index.js'

const isRoot = process.getuid?.() === 0
const GUARD_MS = 30_000

const quiet = { stdout: { write: () => true }, stderr: { write: () => true }, stdin: process.stdin } as unknown as Parameters<typeof main>[1]

async function serial(lab: MeshLab, name: string): Promise<string> {
  const r = parseCertificate(await readFile(join(lab.node(name).dir, 'node.crt'), 'utf8'))
  return r.ok ? r.cert.serial : ''
}

t.test('a mesh from a bootstrap node alone: late joiner, invite, online renewal, revocation', { skip: !isRoot && 'needs root' }, async (t) => {
  // n2's certificate has two minutes of life, 90 s of it gone: n1 (the CA) must renew it.
  const lab = new MeshLab({ members: 3, lan: false, join: true, certLifetime: (n) => (n === 'n2' ? { lifetimeMs: 120_000, agoMs: 90_000 } : null) })
  t.teardown(() => lab.stop())
  await lab.start()
  const n2Before = await serial(lab, 'n2')
  lab.startDaemon('boot')
  t.not(await lab.timeUntil(async () => (await lab.status('boot')) !== null, GUARD_MS), null, 'the bootstrap node runs')
  const members = lab.memberNames
  for (const n of members) lab.startDaemon(n)
  const formed = await lab.timeUntil(() => lab.allUp(members), GUARD_MS)
  t.not(formed, null, `every pair of ${members.length} members is up, with no connect-to and no peer endpoints${formed === null ? `\n${lab.logs(['boot', ...members])}` : ''}`)

  lab.startDaemon('late')
  const late = await lab.timeUntil(() => lab.allUp([...members, 'late']), GUARD_MS)
  t.not(late, null, `a node started later joins every member${late === null ? `\n${lab.logs([...members, 'late'])}` : ''}`)

  const spread = await lab.spreadNewAddress('n1', ['n2', 'n3', 'late'], GUARD_MS)
  t.not(spread, null, 'a new address of n1 is in its record at every member')
  t.comment(`new endpoint reached every member after ${spread} ms`)

  await lab.join()
  lab.startDaemon('joiner')
  const everyone = [...members, 'late', 'joiner']
  const joined = await lab.timeUntil(() => lab.allUp(everyone), GUARD_MS)
  t.not(joined, null, `the invited device is up with every member${joined === null ? `\n${lab.logs(everyone)}` : ''}`)

  // Online renewal: n1 holds the CA and pushes n2 a new certificate; no tunnel of n2 went down.
  const renewed = await lab.timeUntil(async () => (await serial(lab, 'n2')) !== n2Before, GUARD_MS)
  t.not(renewed, null, 'n2\'s certificate file was replaced by a renewed one')
  const pairs = await lab.measurePairs(everyone, false)
  t.ok(pairs.every((p) => p.up), 'every pair is up after the renewal')
  const n1Log = await readFile(join(lab.node('n1').dir, 'daemon.log'), 'utf8')
  const n2Key = (await lab.status('n2'))?.node?.key
  // Failed once under CI's load (session 27, not reproduced in 6 runs alone): the message carries
  // the log lines, with their reason, so the next failure says why.
  const drops = n1Log.split('\n').filter((l) => l.includes('peer disconnected') && n2Key !== undefined && l.includes(n2Key))
  t.same(drops, [], 'the tunnel n1 - n2 never went down')
  t.ok(pairs.every((p) => p.rtt_ms !== null), 'every pair pings through the overlay')

  // Revocation: the CA revokes 'late'; n1 reads the list, spreads it, and every member cuts 'late' off.
  const lateKey = (await lab.status('late'))?.node?.key
  t.ok(lateKey, 'late has a key')
  t.equal(await main(['ca', 'revoke', '--dir', lab.caDir, '--key', lateKey as string], quiet), 0, 'quicether ca revoke')
  const cut = await lab.timeUntil(async () => {
    for (const n of [...members, 'joiner']) {
      const s = await lab.status(n)
      if (!s || s.peers.some((p) => p.key === lateKey) || s.discovery?.members.some((m) => m.key === lateKey)) return false
    }
    return true
  }, GUARD_MS)
  t.not(cut, null, 'every member cut the revoked node off and forgot it')
  const still = await lab.timeUntil(() => lab.allUp(everyone.filter((n) => n !== 'late')), GUARD_MS)
  t.not(still, null, 'the others stay up')
  t.equal(await lab.leaked(['boot', ...everyone]), 0, 'no node sent a packet anywhere but the lab: the DHT never reached for a public router')
})

t.test('on one LAN segment members find each other by multicast, and the tunnel runs over the LAN', { skip: !isRoot && 'needs root' }, async (t) => {
  const lab = new MeshLab({ members: 3, lan: true, join: false })
  t.teardown(() => lab.stop())
  await lab.start()
  lab.startDaemon('boot')
  t.not(await lab.timeUntil(async () => (await lab.status('boot')) !== null, GUARD_MS), null, 'the bootstrap node runs')
  const members = lab.memberNames
  for (const n of members) lab.startDaemon(n)
  t.not(await lab.timeUntil(() => lab.allUp(members), GUARD_MS), null, 'the mesh forms')
  const lanSeen = await lab.timeUntil(async () => {
    const pairs = await lab.measurePairs(members, true)
    return pairs.every((p) => p.up && p.path === 'lan')
  }, GUARD_MS)
  t.not(lanSeen, null, `every pair runs over an address a LAN announcement confirmed${lanSeen === null ? `\n${lab.logs(members)}` : ''}`)
  const s = await lab.status('n1')
  t.ok(s?.discovery?.members.every((m) => m.lan.length > 0), 'n1 saw every member on the LAN')
  t.equal(await lab.leaked(['boot', ...members]), 0, 'nothing left the lab')
})
