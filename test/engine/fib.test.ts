/**
 * The native LPM trie (through the addon) against a naive TypeScript model
 * on random prefixes and addresses: the "fast table has a slow twin" check,
 * here from the JS side so the packing of routes is covered as well.
 */
import t from 'tap'
import fc from 'fast-check'
import { loadNative } from '../../src/engine/native.js'

interface Entry {
  family: 4 | 6
  plen: number
  addr: number[]
  value: number
}

function masked(addr: number[], plen: number): number[] {
  return addr.map((b, i) => {
    const bits = Math.max(0, Math.min(8, plen - i * 8))
    return bits === 0 ? 0 : b & ((0xff << (8 - bits)) & 0xff)
  })
}

function naiveLookup(entries: Entry[], family: 4 | 6, addr: number[]): number {
  let best = -1
  let bestLen = -1
  for (const e of entries) {
    if (e.family !== family) continue
    const a = masked(addr, e.plen)
    const p = masked(e.addr, e.plen)
    if (a.every((b, i) => b === p[i]) && e.plen >= bestLen) {
      best = e.value
      bestLen = e.plen
    }
  }
  return best
}

function pack(entries: Entry[]): Buffer {
  const buf = Buffer.alloc(entries.length * 22)
  entries.forEach((e, i) => {
    const o = i * 22
    buf[o] = e.family
    buf[o + 1] = e.plen
    Buffer.from(e.addr).copy(buf, o + 2)
    buf.writeUInt32LE(e.value, o + 18)
  })
  return buf
}

// Addresses drawn near a few bases so that prefixes nest and share branches.
const bases4 = [[10, 0, 0, 0], [10, 77, 3, 0], [192, 168, 1, 0]]
const bases6 = [[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0]]

const arbAddr = (family: 4 | 6): fc.Arbitrary<number[]> =>
  fc
    .tuple(fc.nat(family === 4 ? bases4.length - 1 : bases6.length - 1), fc.nat(family === 4 ? 4 : 16), fc.array(fc.nat(255), { minLength: family === 4 ? 4 : 16, maxLength: family === 4 ? 4 : 16 }))
    .map(([b, keep, rnd]) => {
      const base = (family === 4 ? bases4 : bases6)[b] as number[]
      return rnd.map((x, i) => (i < keep ? (base[i] as number) : x))
    })

const arbEntry: fc.Arbitrary<Entry> = fc.oneof(fc.constant(4 as const), fc.constant(6 as const)).chain((family) =>
  fc.record({
    family: fc.constant(family),
    plen: fc.nat(family === 4 ? 32 : 128),
    addr: arbAddr(family),
    value: fc.nat(1000),
  }),
)

t.test('trie agrees with the naive model on random tables', (t) => {
  const native = loadNative()
  fc.assert(
    fc.property(
      fc.array(arbEntry, { maxLength: 120 }),
      fc.array(fc.oneof(fc.constant(4 as const), fc.constant(6 as const)).chain((f) => fc.tuple(fc.constant(f), arbAddr(f))), { minLength: 1, maxLength: 60 }),
      (entries, queries) => {
        const fib = native.fibNew(pack(entries))
        for (const [family, addr] of queries) {
          const want = naiveLookup(entries, family, addr)
          const got = native.fibLookup(fib, Buffer.from(addr))
          if (want !== got) return false
        }
        return true
      },
    ),
    { numRuns: 300 },
  )
  t.pass('300 random tables agree')
  t.end()
})

t.test('longest prefix wins, default route catches the rest', (t) => {
  const native = loadNative()
  const fib = native.fibNew(
    pack([
      { family: 4, plen: 0, addr: [0, 0, 0, 0], value: 1 },
      { family: 4, plen: 8, addr: [10, 0, 0, 0], value: 2 },
      { family: 4, plen: 24, addr: [10, 1, 2, 0], value: 3 },
      { family: 6, plen: 64, addr: [0xfd, 0x77, ...Array(14).fill(0)], value: 4 },
    ]),
  )
  t.equal(native.fibLookup(fib, Buffer.from([10, 1, 2, 3])), 3)
  t.equal(native.fibLookup(fib, Buffer.from([10, 1, 3, 3])), 2)
  t.equal(native.fibLookup(fib, Buffer.from([8, 8, 8, 8])), 1)
  t.equal(native.fibLookup(fib, Buffer.from([0xfd, 0x77, ...Array(13).fill(0), 1])), 4)
  t.equal(native.fibLookup(fib, Buffer.from([0xfd, 0x78, ...Array(14).fill(0)])), -1, 'no IPv6 default: no route')
  t.end()
})

t.test('invalid entries are refused, not half-built', (t) => {
  const native = loadNative()
  t.throws(() => native.fibNew(pack([{ family: 4, plen: 33, addr: [1, 2, 3, 4], value: 0 }])), { code: 'QE_ENGINE_INVALID' })
  t.throws(() => native.fibNew(Buffer.alloc(21)), { code: 'QE_ENGINE_INVALID' })
  t.end()
})
