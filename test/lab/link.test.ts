import t from 'tap'
import { delayed, linkAddressing, linkRttMs, needsRouter } from '../../src/lab/link.js'
import { delayLineArgs, delayRoutes } from '../../src/lab/delay.js'
import type { LinkSpec } from '../../src/lab/types.js'

const plain: LinkSpec = { name: 'l', a: 'x', b: 'y', aToB: { rate: null, delay: 0, jitter: 0, loss: 0 }, bToA: { rate: null, delay: 0, jitter: 0, loss: 0 }, queue: null, nat: 'none' }

t.test('a router is needed for any rate, delay, jitter, loss or NAT, in either direction', async (t) => {
  t.notOk(needsRouter(plain))
  t.ok(needsRouter({ ...plain, nat: 'cone' }))
  t.ok(needsRouter({ ...plain, aToB: { rate: 1e6, delay: 0, jitter: 0, loss: 0 } }))
  t.ok(needsRouter({ ...plain, bToA: { rate: null, delay: 5, jitter: 0, loss: 0 } }))
  t.ok(needsRouter({ ...plain, bToA: { rate: null, delay: 0, jitter: 0, loss: 0.01 } }))
  t.ok(needsRouter({ ...plain, aToB: { rate: null, delay: 0, jitter: 3, loss: 0 } }), 'jitter alone')
})

t.test('jitter alone goes through the delay line; the tbf queue counts it in the round trip', async (t) => {
  t.ok(delayed({ rate: null, delay: 0, jitter: 3, loss: 0 }))
  t.ok(delayed({ rate: null, delay: 3, jitter: 0, loss: 0 }))
  t.notOk(delayed({ rate: 1e6, delay: 0, jitter: 0, loss: 0.1 }))
  t.equal(linkRttMs({ ...plain, aToB: { rate: null, delay: 10, jitter: 4, loss: 0 }, bToA: { rate: null, delay: 20, jitter: 0, loss: 0 } }), 34)
  t.equal(linkRttMs(plain), 0)
})

t.test('plain links share a /24; routed links use two /25s with the router in the middle', async (t) => {
  const p = linkAddressing(3, false)
  t.same([p.a.ipv4, p.a.prefix4, p.b.ipv4], ['10.251.3.1', 24, '10.251.3.2'])
  t.equal(p.ra, null)
  const r = linkAddressing(200, true)
  t.same([r.a.ipv4, r.ra?.ipv4, r.rb?.ipv4, r.b.ipv4], ['10.251.200.1', '10.251.200.2', '10.251.200.129', '10.251.200.130'])
  t.equal(r.a.prefix4, 25)
  t.equal(r.a.ipv6, 'fdc5:1ab:1:c8::1')
  t.equal(r.b.ipv6, 'fdc5:1ab:2:c8::2')
})

t.test('links never share addresses', async (t) => {
  // A lab mixes plain and routed links, so no address may repeat across both kinds.
  const seen4 = new Map<string, string>()
  const seen6 = new Map<string, string>()
  const clashes: string[] = []
  for (let i = 0; i < 256; i++) {
    for (const routed of [false, true]) {
      const ad = linkAddressing(i, routed)
      for (const a of [ad.a, ad.b, ad.ra, ad.rb]) {
        if (!a) continue
        const who = `link ${i}${routed ? ' (routed)' : ''}`
        // The same index is never both plain and routed, so only clashes between indexes count.
        for (const [seen, addr] of [[seen4, a.ipv4], [seen6, a.ipv6]] as const) {
          const prev = seen.get(addr)
          if (prev !== undefined && prev.split(' ')[1] !== String(i)) clashes.push(`${addr}: ${prev} and ${who}`)
          seen.set(addr, who)
        }
      }
    }
  }
  t.same(clashes, [])
})

t.test('delay line arguments and the policy routes that feed it', async (t) => {
  const dirs = [
    { from: 'ra', tun: 'da', delayMs: 10, table: 100 },
    { from: 'rb', tun: 'db', delayMs: 0.25, table: 101 },
  ]
  t.same(delayLineArgs(dirs, 7), ['--seed', '7', 'da:10000', 'db:250'])
  const r = delayRoutes(dirs)
  for (const lines of [r.ipv4, r.ipv6]) {
    t.ok(lines.includes('route add default dev da table 100'))
    t.ok(lines.includes('rule add iif ra lookup 100 pref 1000'))
    t.ok(lines.includes('rule add iif rb lookup 101 pref 1000'))
  }
  t.ok(r.ipv4.includes('link set da up'))
})
