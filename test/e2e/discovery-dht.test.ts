/**
 * The private DHT across network namespaces (root; skips otherwise).
 *
 * A hub namespace holds a bridge (10.77.0.254/24); four node namespaces each
 * hang off it by a veth pair (10.77.0.1-4) and have a default route via the
 * hub, so a packet for any other address would reach the output hook (and be
 * counted) instead of failing the route lookup. Each node namespace runs one
 * Dht in a child (fixtures/dht-node.ts); all are seeded from node 1 alone.
 * An nftables table in every node namespace counts output: to the lab's
 * addresses (`lab`), UDP or TCP of either family to anywhere else
 * (`outside`, then dropped), DNS on either transport (`dns`, then dropped);
 * the kernel's own ICMPv6 (neighbour discovery, MLD) is not ours to count. The test puts and
 * gets across, reads members from the rendezvous, and requires `outside` and
 * `dns` to be 0 everywhere. Every namespace is deleted in teardown, also on
 * failure.
 */
import t from 'tap'
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { isRoot } from '../system/netns.js'
import { nodeArgs } from './fixtures/node-script.js'

const FIXTURE = fileURLToPath(new URL('fixtures/dht-node.ts', import.meta.url))
const LAB = '10.77.0.0/24'
const PORT = 6881
const NODES = 4

interface Child {
  readonly proc: ChildProcessWithoutNullStreams
  ask(cmd: Record<string, unknown>): Promise<Record<string, unknown>>
}

const NFT = `
table inet qe_dht_test {
  counter lab { }
  counter outside { }
  counter dns { }
  chain out {
    type filter hook output priority 0; policy accept;
    udp dport 53 counter name "dns" drop
    tcp dport 53 counter name "dns" drop
    ip daddr ${LAB} counter name "lab" accept
    meta l4proto { udp, tcp } counter name "outside" drop
  }
}
`

function counters(ns: string): Record<string, number> {
  const json = JSON.parse(execFileSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'counters', 'table', 'inet', 'qe_dht_test'], { encoding: 'utf8' })) as {
    nftables: { counter?: { name: string; packets: number } }[]
  }
  return Object.fromEntries(json.nftables.flatMap((x) => (x.counter ? [[x.counter.name, x.counter.packets]] : [])))
}

function startChild(ns: string, init: Record<string, unknown>): Promise<Child> {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, ...nodeArgs(FIXTURE), JSON.stringify(init)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const waiting: ((m: Record<string, unknown>) => void)[] = []
  let ready: (() => void) | null = null
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const m = JSON.parse(line) as Record<string, unknown>
    if (m.event === 'ready') ready?.()
    else waiting.shift()?.(m)
  })
  const child: Child = {
    proc,
    ask: (cmd) =>
      new Promise((resolve) => {
        waiting.push(resolve)
        proc.stdin.write(`${JSON.stringify(cmd)}\n`)
      }),
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dht node in ${ns} did not start: ${stderr}`)), 20_000)
    ready = () => {
      clearTimeout(timer)
      resolve(child)
    }
    proc.on('exit', (code) => reject(new Error(`dht node in ${ns} exited (${code}): ${stderr}`)))
  })
}

if (!isRoot()) {
  t.plan(0, 'needs root')
} else {
  t.test('four namespaces seeded from one: put/get/members across, and not one packet for any other address', async (t) => {
    const run = randomBytes(3).toString('hex')
    const hub = `qet-${run}-hub`
    const nodes = Array.from({ length: NODES }, (_, i) => `qet-${run}-n${i + 1}`)
    const made: string[] = []
    const children: Child[] = []
    // One teardown: children first, then every namespace this test made (also on failure).
    t.teardown(async () => {
      for (const c of children) c.proc.kill('SIGTERM')
      await Promise.all(children.map((c) => (c.proc.exitCode === null ? new Promise((r) => c.proc.once('exit', r)) : null)))
      for (const ns of made) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
        } catch {
          // already gone
        }
      }
    })
    const ip = (ns: string, ...args: string[]): string => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' })
    for (const ns of [hub, ...nodes]) {
      execFileSync('ip', ['netns', 'add', ns])
      made.push(ns)
      ip(ns, 'link', 'set', 'lo', 'up')
    }
    ip(hub, 'link', 'add', 'br0', 'type', 'bridge')
    ip(hub, 'addr', 'add', '10.77.0.254/24', 'dev', 'br0')
    // The positive control's target: an address in the hub but outside the lab's range.
    ip(hub, 'addr', 'add', '10.78.0.1/32', 'dev', 'br0')
    ip(hub, 'link', 'set', 'br0', 'up')
    nodes.forEach((ns, i) => {
      execFileSync('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${i + 1}`, 'netns', hub])
      ip(hub, 'link', 'set', `p${i + 1}`, 'master', 'br0', 'up')
      ip(ns, 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', 'eth0')
      ip(ns, 'link', 'set', 'eth0', 'up')
      ip(ns, 'route', 'add', 'default', 'via', '10.77.0.254')
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: NFT })
    })

    const seed = { host: '10.77.0.1', port: PORT }
    children.push(await startChild(nodes[0]!, { address: seed.host, port: PORT, bootstrap: [], rendezvous: true }))
    for (let i = 1; i < NODES; i++) children.push(await startChild(nodes[i]!, { address: `10.77.0.${i + 1}`, port: PORT, bootstrap: [seed], rendezvous: false }))
    const [n1, n2, n3, n4] = children as [Child, Child, Child, Child]
    await new Promise((r) => setTimeout(r, 1000))

    const salt = 'lab-net'
    const p2 = await n2.ask({ cmd: 'put', salt, v: 'record of n2' })
    t.ok((p2.stored as number) >= 2, `n2's item stored at ${String(p2.stored)} nodes`)
    t.equal(p2.announced, 1, 'and announced to the rendezvous')
    const p4 = await n4.ask({ cmd: 'put', salt, v: 'record of n4' })
    t.ok((p4.stored as number) >= 2)
    t.same(await n3.ask({ cmd: 'get', k: p2.k, salt }), { event: 'get', v: 'record of n2', seq: p2.seq }, 'n3 gets n2’s record')
    t.same(await n1.ask({ cmd: 'get', k: p4.k, salt }), { event: 'get', v: 'record of n4', seq: p4.seq }, 'n1 gets n4’s record')
    const members = (await n3.ask({ cmd: 'members', salt })).items as { k: string; v: string }[]
    t.same(
      members.map((m) => m.v).sort(),
      ['record of n2', 'record of n4'],
      'members() from the rendezvous',
    )
    for (const [i, c] of children.entries()) {
      const s = (await c.ask({ cmd: 'stats' })).stats as Record<string, number>
      t.equal(s.blockedSends, 0, `node ${i + 1}: no send blocked`)
      t.ok((s.nodes ?? 0) >= 1, `node ${i + 1}: knows ${s.nodes} nodes`)
    }

    for (const [i, ns] of nodes.entries()) {
      const c = counters(ns)
      t.ok((c.lab ?? 0) > 0, `node ${i + 1}: ${c.lab} packets to the lab`)
      t.equal(c.outside, 0, `node ${i + 1}: no UDP or TCP packet for any other address`)
      t.equal(c.dns, 0, `node ${i + 1}: no DNS`)
    }
    // Positive control: the rule does count a datagram to an address outside the lab's range
    // (one the hub holds; the rule drops it before it leaves the namespace).
    execFileSync('ip', ['netns', 'exec', nodes[3]!, 'bash', '-c', 'echo x > /dev/udp/10.78.0.1/9 || true'])
    t.equal(counters(nodes[3]!).outside, 1, 'the outside counter sees a stray datagram')
  })
}
