import t from 'tap'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from '../../src/auth/totp.js'
import {
  AlreadyEnrolledError, GLOBAL_FAILURE_LIMIT, LOCKOUT_MAX_MS, SecondFactorStore, SecondFactorStoreError, type SecondFactorStoreInit, type SessionChange,
} from '../../src/auth/store.js'

const T0 = 1_700_000_010_000 // 10 s into a 30 s step
const HOUR = 3_600_000

async function fresh(t: { teardown(fn: () => unknown): void }, init: Partial<SecondFactorStoreInit> = {}) {
  const stateDir = await mkdtemp(join(tmpdir(), 'qe-2fa-'))
  t.teardown(() => rm(stateDir, { recursive: true, force: true }))
  const changes: SessionChange[] = []
  const store = await SecondFactorStore.open({ stateDir, sessionMs: HOUR, onChange: (c) => changes.push(c), ...init })
  const { secret } = await store.enrol('alice', T0)
  return { stateDir, store, secret, changes }
}

/** A six-digit code that is not `secret`'s at any step near `now`. */
function wrongCode(secret: string, now: number): string {
  const near = new Set([-1, 0, 1].map((d) => generate(secret, now + d * 30_000)))
  for (let i = 0; ; i++) {
    const c = String(i).padStart(6, '0')
    if (!near.has(c)) return c
  }
}

t.test('a right code gives a session; a wrong one does not', async (t) => {
  const { store, secret, changes } = await fresh(t)
  t.same(await store.verify('alice', wrongCode(secret, T0), T0), { ok: false, reason: 'wrong-code' })
  t.equal(store.hasSession('alice', T0), false)
  const r = await store.verify('alice', generate(secret, T0), T0)
  t.same(r, { ok: true, session: { peer: 'alice', expiresAt: T0 + HOUR } })
  t.equal(store.hasSession('alice', T0), true)
  t.same(changes, [{ peer: 'alice', kind: 'started', session: { peer: 'alice', expiresAt: T0 + HOUR } }])
  t.same(await store.verify('bob', generate(secret, T0), T0), { ok: false, reason: 'not-enrolled' })
})

t.test('a used code is replayed, even within its window, and so is an older one', async (t) => {
  const { store, secret } = await fresh(t)
  const code = generate(secret, T0)
  t.equal((await store.verify('alice', code, T0)).ok, true)
  t.same(await store.verify('alice', code, T0), { ok: false, reason: 'replayed' })
  t.same(await store.verify('alice', code, T0 + 30_000), { ok: false, reason: 'replayed' }, 'a step later, still in the window')
  const next = generate(secret, T0 + 30_000)
  t.equal((await store.verify('alice', next, T0 + 30_000)).ok, true, 'the next step\'s code is fine')
  t.same(await store.verify('alice', code, T0 + 30_000), { ok: false, reason: 'replayed' }, 'an older step than the last used')
})

t.test('5 failures in 5 minutes lock the peer out, even for a right code; the lockout doubles', async (t) => {
  const { store, secret } = await fresh(t)
  let now = T0
  const bad = () => wrongCode(secret, now)
  for (let i = 0; i < 4; i++) t.same(await store.verify('alice', bad(), now += 1000), { ok: false, reason: 'wrong-code' }, `failure ${i + 1}`)
  t.same(await store.verify('alice', bad(), now += 1000), { ok: false, reason: 'wrong-code', retryAfterMs: 30_000 }, 'the 5th failure starts a lockout')
  t.same(await store.verify('alice', generate(secret, now + 1000), now += 1000), { ok: false, reason: 'rate-limited', retryAfterMs: 29_000 }, 'the 6th attempt, a right code, is refused')
  t.same(store.list(now)[0]?.lockedUntil, now + 29_000)
  now += 29_000
  t.same(await store.verify('alice', bad(), now), { ok: false, reason: 'wrong-code', retryAfterMs: 60_000 }, 'a failure after the lockout: 60 s')
  t.same(await store.verify('alice', generate(secret, now + 59_999), now + 59_999), { ok: false, reason: 'rate-limited', retryAfterMs: 1 })
  now += 60_000
  t.same(await store.verify('alice', bad(), now), { ok: false, reason: 'wrong-code', retryAfterMs: 120_000 }, 'then 120 s')
  now += 120_000
  t.equal((await store.verify('alice', generate(secret, now), now)).ok, true, 'a right code once the lockout ends')
  for (let i = 0; i < 5; i++) await store.verify('alice', bad(), now += 1000)
  t.equal(store.list(now)[0]?.lockedUntil, now + 30_000, 'a success starts the doubling over')
})

t.test('the lockout stops doubling at 15 minutes', async (t) => {
  const { store, secret } = await fresh(t)
  let now = T0
  const locks: number[] = []
  // Keep guessing, waiting out each lockout: the locks go 30 s, 60 s, … and stay at 15 min.
  while (locks.length < 8) {
    const r = await store.verify('alice', wrongCode(secret, now), now)
    t.equal(r.ok, false)
    const ms = r.ok ? 0 : r.retryAfterMs ?? 0
    if (ms > 0) locks.push(ms)
    now += ms + 1000
  }
  t.same(locks, [30_000, 60_000, 120_000, 240_000, 480_000, LOCKOUT_MAX_MS, LOCKOUT_MAX_MS, LOCKOUT_MAX_MS])
  now += LOCKOUT_MAX_MS
  for (let i = 0; i < 4; i++) t.same(await store.verify('alice', wrongCode(secret, now), now += 1000), { ok: false, reason: 'wrong-code' }, 'quiet for 15 min: five guesses again')
})

t.test('failures are counted across peers: 100 a minute refuse everyone', async (t) => {
  const { store, secret } = await fresh(t)
  const others: Record<string, string> = {}
  for (let p = 0; p < 25; p++) others[`p${p}`] = (await store.enrol(`p${p}`, T0)).secret
  let n = 0
  for (const [peer, s] of Object.entries(others)) {
    for (let i = 0; i < 4; i++, n++) await store.verify(peer, wrongCode(s, T0), T0 + n)
  }
  t.equal(n, GLOBAL_FAILURE_LIMIT)
  const r = await store.verify('alice', generate(secret, T0 + 200), T0 + 200)
  t.same(r, { ok: false, reason: 'rate-limited', retryAfterMs: 60_000 - 200 }, 'alice never failed, yet is refused')
  t.equal((await store.verify('alice', generate(secret, T0 + 60_000), T0 + 60_000)).ok, true, 'the minute passes')
})

t.test('the file is 0600, and a loose mode is made private again', async (t) => {
  const { stateDir, store } = await fresh(t)
  t.equal((await stat(store.path)).mode & 0o777, 0o600)
  t.equal(store.path, join(stateDir, '2fa.json'))
  const { chmod } = await import('node:fs/promises')
  await chmod(store.path, 0o644)
  await SecondFactorStore.open({ stateDir })
  t.equal((await stat(store.path)).mode & 0o777, 0o600)
})

t.test('sessions expire', async (t) => {
  const { store, secret, changes } = await fresh(t)
  await store.verify('alice', generate(secret, T0), T0)
  t.equal(store.hasSession('alice', T0 + HOUR - 1), true)
  t.equal(store.hasSession('alice', T0 + HOUR), false)
  t.same(store.sessionsExpiringBefore(T0 + HOUR - 1), [])
  t.same(store.sessionsExpiringBefore(T0 + HOUR), [{ peer: 'alice', expiresAt: T0 + HOUR }])
  t.same(store.list(T0 + HOUR)[0]?.sessionExpiresAt, null)
  t.same(await store.expire(T0 + HOUR), ['alice'])
  t.equal(store.sessions.size, 0)
  t.same(changes.at(-1), { peer: 'alice', kind: 'expired', session: null })
  t.same(await store.expire(T0 + HOUR), [], 'once')
})

t.test('a restart keeps enrolments, sessions and the replay guard', async (t) => {
  const { stateDir, store, secret } = await fresh(t)
  const code = generate(secret, T0)
  await store.verify('alice', code, T0)
  const again = await SecondFactorStore.open({ stateDir, sessionMs: HOUR })
  t.equal(again.isEnrolled('alice'), true)
  t.equal(again.hasSession('alice', T0 + 1), true)
  t.same(await again.verify('alice', code, T0 + 1000), { ok: false, reason: 'replayed' })
  const text = await readFile(store.path, 'utf8')
  t.match(text, secret)
})

t.test('a restart keeps a lockout', async (t) => {
  const { stateDir, store, secret } = await fresh(t)
  for (let i = 0; i < 5; i++) await store.verify('alice', wrongCode(secret, T0), T0 + i)
  const again = await SecondFactorStore.open({ stateDir })
  t.equal((await again.verify('alice', generate(secret, T0 + 10), T0 + 10)).ok, false)
})

t.test('enrol refuses to replace a secret without force; revoke ends the session', async (t) => {
  const { store, secret, changes } = await fresh(t)
  await t.rejects(store.enrol('alice', T0), AlreadyEnrolledError)
  await store.verify('alice', generate(secret, T0), T0)
  const replaced = await store.enrol('alice', T0, { force: true })
  t.not(replaced.secret, secret)
  t.equal(store.hasSession('alice', T0), false, 'a new secret ends the session')
  t.same(changes.at(-1), { peer: 'alice', kind: 'revoked', session: null })
  t.equal(await store.revoke('alice'), true)
  t.equal(await store.revoke('alice'), false)
  t.equal(store.isEnrolled('alice'), false)
})

t.test('another process\'s edit (the CLI) is seen by refresh and by verify', async (t) => {
  const { stateDir, store, secret, changes } = await fresh(t)
  await store.verify('alice', generate(secret, T0), T0)
  const cli = await SecondFactorStore.open({ stateDir })
  await cli.revoke('alice')
  t.same(await store.verify('alice', generate(secret, T0 + 30_000), T0 + 30_000), { ok: false, reason: 'not-enrolled' })
  t.same(changes.at(-1), { peer: 'alice', kind: 'revoked', session: null })
  t.equal(store.hasSession('alice', T0 + 30_000), false)
})

t.test('a damaged file is a named error, never a silent empty store', async (t) => {
  const { stateDir, store } = await fresh(t)
  await writeFile(store.path, '{"v":1,"peers":{"x":{"secret":"not base32!"}},"sessions":{}}')
  await t.rejects(SecondFactorStore.open({ stateDir }), SecondFactorStoreError)
  await writeFile(store.path, 'nope')
  await t.rejects(SecondFactorStore.open({ stateDir }), { code: 'QE_2FA_STORE' })
})

t.test('a peer named __proto__ is only a peer', async (t) => {
  const { stateDir, store } = await fresh(t)
  await store.enrol('__proto__', T0)
  const again = await SecondFactorStore.open({ stateDir })
  t.same(again.list(T0).map((p) => p.peer), ['__proto__', 'alice'])
})

t.test('expire does not undo an enrolment the CLI wrote meanwhile', async (t) => {
  const { stateDir, store, secret } = await fresh(t)
  await store.verify('alice', generate(secret, T0), T0)
  const cli = await SecondFactorStore.open({ stateDir })
  await cli.enrol('bob', T0)
  t.same(await store.expire(T0 + HOUR), ['alice'])
  const after = await SecondFactorStore.open({ stateDir })
  t.equal(after.isEnrolled('bob'), true)
})
