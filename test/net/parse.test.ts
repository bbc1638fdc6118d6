import t from 'tap'
import { findOverlaps, parseAddress, parsePrefix, prefixContains } from '../../src/net/index.js'
import type { Prefix } from '../../src/net/index.js'

t.test('prefixes are canonical, host bits are refused with the intended prefix', async (t) => {
  t.equal(parsePrefix('10.0.0.0/16').value?.cidr, '10.0.0.0/16')
  t.equal(parsePrefix('2001:DB8:0:0::/32').value?.cidr, '2001:db8::/32')
  t.equal(parsePrefix('0.0.0.0/0').value?.prefixLen, 0)
  const hb = parsePrefix('10.0.0.5/16')
  t.equal(hb.code, 'host-bits-set')
  t.match(hb.error, /did you mean 10\.0\.0\.0\/16\?/)
  t.match(parsePrefix('fd00::1/64').error, /did you mean fd00::\/64\?/)
  t.equal(parsePrefix('10.0.0.0/33').code, 'bad-cidr')
  t.equal(parsePrefix('10.0.0.0/016').code, 'bad-cidr', 'no leading zeros in the length')
  t.equal(parsePrefix('10.1/16').code, 'bad-cidr', 'no shorthand dotted forms')
  t.equal(parsePrefix('010.0.0.0/8').code, 'bad-cidr', 'no octal-looking octets')
  t.match(parsePrefix('10.0.0.1').error, /write 10\.0\.0\.1\/32/)
  t.equal(parsePrefix('fe80::1%eth0/64').code, 'bad-cidr', 'no zone ids')
})

t.test('addresses', async (t) => {
  t.equal(parseAddress('100.88.0.1').value?.family, 4)
  t.equal(parseAddress('FD00:0::1').value?.text, 'fd00::1')
  t.equal(parseAddress('1.2.3').code, 'bad-ip')
  t.equal(parseAddress('0x0a.0.0.1').code, 'bad-ip')
  t.match(parseAddress('10.0.0.0/8').error, /prefix/)
  const p = parsePrefix('100.88.0.0/16').value!
  t.ok(prefixContains(p, parseAddress('100.88.255.1').value!))
  t.notOk(prefixContains(p, parseAddress('100.89.0.1').value!))
  t.notOk(prefixContains(p, parseAddress('::1').value!), 'families never contain each other')
})

t.test('overlaps are found by sorting, once per offending prefix', async (t) => {
  const items = ['10.0.0.0/8', '192.168.1.0/24', '10.1.0.0/16', 'fd00::/8', '172.16.0.0/12', '10.1.2.0/24', 'fd12::/16', '192.168.2.0/24']
    .map((s, i) => ({ prefix: parsePrefix(s).value as Prefix, i }))
  const found = findOverlaps(items).map(({ item, other }) => `${item.prefix.cidr}<${other.prefix.cidr}`).sort()
  t.same(found, ['10.1.0.0/16<10.0.0.0/8', '10.1.2.0/24<10.0.0.0/8', 'fd12::/16<fd00::/8'])

  // Slow twin: every pair, n².
  const rnd = (n: number): number => Math.floor(Math.random() * n)
  for (let round = 0; round < 50; round++) {
    const list = Array.from({ length: 30 }, (_, i) => {
      const bits = 8 + rnd(17)
      const addr = (rnd(4) << 24) >>> 0
      const n = (addr | (rnd(1 << 16) << 8)) >>> 0
      const masked = bits === 0 ? 0 : (n & (~0 << (32 - bits))) >>> 0
      const text = `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${bits}`
      return { prefix: parsePrefix(text).value as Prefix, i }
    })
    const fast = new Set(findOverlaps(list).flatMap((o) => [o.item.i, o.other.i]))
    const slow = new Set<number>()
    for (let a = 0; a < list.length; a++) {
      for (let b = 0; b < a; b++) {
        const x = list[a]!.prefix
        const y = list[b]!.prefix
        if (x.first <= y.last && y.first <= x.last) slow.add(a).add(b)
      }
    }
    // Prefixes are nested or disjoint, so naming each overlapping prefix once in some pair is enough.
    t.same([...fast].sort((x, y) => x - y), [...slow].sort((x, y) => x - y), `round ${round}: the same prefixes overlap`)
  }
})
