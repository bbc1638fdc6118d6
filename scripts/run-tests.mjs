#!/usr/bin/env node
// Runs the whole suite and ends with one plain line, "suites: N passed, N failed, N skipped",
// counted over test files, so any CI can read the result. Exit code: 0 only if every file passed.
//
// Each test file is a tap test that runs on its own: this compiles test/ and bench/ to plain
// JavaScript first (compileTests, below: esbuild, under a second), starts each file as `node
// build/tests/test/.../FILE.js`, reads the TAP it prints and its exit code, and prints one line per
// file as it ends (a failed file's whole TAP output after its line). It does not go through tap's
// runner: tap starts each file with its ts-node loader and its plugins' hooks, ~3 CPU-s a file
// beside the test itself (a file of one `t.pass`: 3.8 s and 4.7 CPU-s under `tap`, 1.0 s and 1.4
// CPU-s under `node --import tsx`, less again compiled). Measured on this 2-core machine, `npm
// test` from a clone: 440 s with each file under `node --import tsx` (unit lane 228 s), 345-372 s
// compiled (unit lane 128-138 s; the e2e lanes, 260-276 s and 94-102 s, are now the whole of it),
// 317 s once the e2e files' own children (peers, TCP ends, drivers) ran compiled too
// (test/e2e/fixtures/node-script.ts: e2e lane 233 s, alone 84 s).
// tap's own per-file timeout still holds (TAP_TIMEOUT, 300 s, as in .taprc); a file still alive
// 30 s after it has its process group killed.
//
// With no arguments it runs three lanes, each a queue of files:
//   unit       everything outside test/e2e, two at a time, under `nice -n 19`: it takes what the
//              e2e files leave of the CPU and gives it back to them at once;
//   e2e        test/e2e but ALONE (below), one at a time beside the unit lane, two at a time once
//              it has ended; FIRST (below) first, as the longest (40-57 s each here), so that the
//              short files fill the end. Each builds namespaces, daemons and delay lines of its
//              own run, so two of them side by side do not meet;
//   e2e-alone  then ALONE, one at a time, with nothing of ours beside them.
// ALONE are the files whose checks hold only while their daemons get the CPU within a second or
// two: a peer noticed dead at its 4 s idle timeout under a flood, a failover that must not touch
// the backup, a `confirm` CLI that must start inside a 2 s window. Beside tap's own runner's unit
// lane at nice 10 reload.test.ts failed; beside this one at nice 19 they passed in four runs
// (~40 s sooner in all) and failed in the fifth (engine.test.ts: the tunnel did not come back
// from its blackout check, 98 s against 31 alone), so they stay alone.
// Measured on this 2-core machine, `npm test` from a fresh clone: 669 s through tap's runner
// (unit lane 523 s, e2e 547 s, then ALONE 122 s); 415 s this way (before FIRST).
// With arguments (files, flags), it is plain `tap` with those arguments.
//
// After the run it lists processes started from this checkout that are still alive: a test that
// leaves one behind (a delay line, a daemon) is a bug, and such a leftover slows every later file.
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { stop, transform } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
/** tap's per-file timeout (.taprc `timeout`), in seconds; the kill comes this much later. */
const TIMEOUT = 300
const KILL_AFTER = 30

/** Every test file, relative to the root, sorted (the .taprc `include` pattern: test/**\/*.test.ts). */
function testFiles() {
  return readdirSync(join(root, 'test'), { recursive: true })
    .map((f) => join('test', f))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
}

/**
 * A file's result from its exit code and the TAP it printed: tap ends a file's output with a
 * comment `# { total: N, pass: N, fail: N, skip: N, todo: N }` (the keys it has), and a file that
 * skips everything (an e2e file without root) prints `1..0 # reason` or counts skips only. Output
 * without that comment is a failure even at exit 0: the file stopped before tap ended it.
 */
function verdict(code, out) {
  const counts = [...out.matchAll(/^# \{ total: \d+[^}]*\}$/gm)].at(-1)
  const n = (key) => Number((counts?.[0].match(new RegExp(`\\b${key}: (\\d+)`)) ?? [])[1] ?? 0)
  if (code !== 0 || n('fail') > 0) return 'fail'
  if (!counts) return 'fail' // it stopped before tap's end of file: a process.exit, a crash
  if (/^1\.\.0\b/m.test(out) || (n('pass') === 0 && n('skip') + n('todo') > 0)) return 'skip'
  return 'pass'
}

/** Where compileTests() writes: the checkout's layout, one level down (build/tests/test/..., build/tests/bench/...). */
const COMPILED = join(root, 'build', 'tests')

/**
 * Compiles test/ and bench/ (test files import the bench's generators) to JavaScript under
 * COMPILED, so that each test file runs on plain node, without a loader: esbuild strips the types
 * of each file on its own, as tsx would, in well under a second for all of them. A file's
 * `import.meta.url` is set to its source's URL, so what it finds beside itself (fixtures, scripts,
 * the checkout's root) it finds where it always did. Its imports of src/ reach dist/, the tree `npm
 * run build` compiled (setup.sh runs it before every `npm test`): COMPILED/src is a link to dist,
 * and the checkout's other top-level entries (schemas, scripts, examples...) are linked beside it.
 * Stack traces map back to the .ts lines (inline source maps, --enable-source-maps).
 * Why: under `node --import tsx` each file spent ~1.3 CPU-s more (test/config/render.test.ts: 3.2
 * CPU-s against 1.9 compiled), over 136 files the largest share of `npm test`'s time on 2 cores.
 */
async function compileTests() {
  rmSync(COMPILED, { recursive: true, force: true })
  const sources = ['test', 'bench'].flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true })
      .map((f) => join(dir, f))
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
  )
  await Promise.all(
    sources.map(async (f) => {
      const abs = join(root, f)
      const r = await transform(readFileSync(abs, 'utf8'), {
        loader: 'ts',
        format: 'esm',
        target: 'es2022',
        sourcemap: 'inline',
        sourcefile: abs,
        define: { 'import.meta.url': JSON.stringify(pathToFileURL(abs).href) },
      })
      const out = join(COMPILED, f.replace(/\.ts$/, '.js'))
      mkdirSync(dirname(out), { recursive: true })
      writeFileSync(out, r.code)
    }),
  )
  await stop() // its service process, which would outlive the run otherwise
  const own = new Set(['test', 'bench', 'src', 'build', 'node_modules', '.git'])
  symlinkSync(relative(COMPILED, join(root, 'dist')), join(COMPILED, 'src'))
  for (const e of readdirSync(root).filter((e) => !own.has(e))) symlinkSync(relative(COMPILED, join(root, e)), join(COMPILED, e))
}

/** Runs one file in a process group of its own; resolves with its verdict, its output and its time. */
function runFile(file, nice) {
  const started = Date.now()
  const compiled = join(COMPILED, file.replace(/\.ts$/, '.js'))
  const cmd = [...(nice ? ['nice', '-n', String(nice)] : []), process.execPath, '--enable-source-maps', compiled]
  const env = { ...process.env, TAP_TIMEOUT: String(TIMEOUT) }
  const child = spawn(cmd[0], cmd.slice(1), { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  child.stdout.on('data', (c) => (out += c.toString('utf8')))
  child.stderr.on('data', (c) => (out += c.toString('utf8')))
  const kill = setTimeout(() => {
    out += `\n# killed: still running ${TIMEOUT + KILL_AFTER} s after it started\n`
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }, (TIMEOUT + KILL_AFTER) * 1000)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(kill)
      const status = verdict(code ?? (signal ? 1 : 0), out)
      resolve({ file, status, out, seconds: (Date.now() - started) / 1000 })
    })
  })
}

/**
 * One lane: its files, `jobs` at a time, and one more from when `widenAfter` (a promise) settles;
 * prints a line per file as it ends.
 */
async function lane({ name, files, jobs, nice, widenAfter }) {
  const started = Date.now()
  const queue = [...files]
  const results = []
  const worker = async () => {
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      const r = await runFile(f, nice)
      results.push(r)
      const mark = { pass: 'ok     ', fail: 'not ok ', skip: 'skip   ' }[r.status]
      process.stdout.write(`${mark}${r.seconds.toFixed(1).padStart(6)} s  ${f}  (${name})\n`)
      if (r.status === 'fail') process.stdout.write(r.out.replace(/^/gm, '    | ') + '\n')
    }
  }
  let extra = null
  widenAfter?.then(() => (extra = worker()))
  await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker))
  await extra // the queue is empty: at most the file it runs
  return { name, results, seconds: (Date.now() - started) / 1000 }
}

/**
 * A failed file's failing assertions, for the summary at the end: each `not ok` line (innermost
 * first, as TAP prints them) with its line, its diff (expected -, actual +) or error, and the runner's
 * kill notice. Whatever shows a long output may cut its middle (a CI page keeps its start and its
 * end): which assertion failed must be in the end too. (A CI run of traversal.test.ts showed its
 * first three subtests passing and nothing of the one that failed.)
 */
function failures(out) {
  const lines = out.split('\n')
  const keep = []
  for (let i = 0; i < lines.length && keep.length < 30; i++) {
    const l = lines[i]
    if (/^# killed:/.test(l)) keep.push(l)
    if (!/^\s*not ok \d+/.test(l)) continue
    keep.push(l.trim())
    const indent = l.length - l.trimStart().length
    let inDiff = false
    for (let j = i + 1; j < lines.length && j < i + 40; j++) {
      const d = lines[j]
      if (d.trim() === '...' || /^\s*(not )?ok \d+/.test(d)) break
      const t = d.trim()
      if (t === '') continue
      if (d.length - d.trimStart().length <= indent) break
      if (/^(lineNumber|found|wanted|message|error|code|signal|expired): /.test(t) || (/^[-+][^-+]/.test(t) && inDiff)) keep.push(`  ${t}`.slice(0, 200))
      if (/^diff: /.test(t)) inDiff = true
    }
  }
  return keep.length > 0 ? keep : ['(no failing assertion printed: it stopped before its end)']
}

/** This process and its ancestors (the shell that ran `npm test` may well sit in the checkout). */
function ancestors() {
  const out = new Set()
  for (let pid = process.pid; pid > 1 && !out.has(pid); ) {
    out.add(pid)
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    pid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1).split(' ')[1])
  }
  return out
}

/** When a process started, in clock ticks since boot (/proc/<pid>/stat field 22). */
function startTicks(pid) {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1).split(' ')[19])
}

/**
 * Pids, other than ours and our ancestors', whose program or working
 * directory lies inside this checkout and that started after this runner
 * (one started before it, such as the `tail` that `npm test | tail` pipes
 * into, cannot have been left by a test).
 */
function leftovers() {
  const out = []
  const mine = ancestors()
  const since = startTicks(process.pid)
  for (const pid of readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e) && !mine.has(Number(e)))) {
    try {
      if (startTicks(pid) < since) continue
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
      const cwd = readlinkSync(`/proc/${pid}/cwd`)
      const inside = (p) => p === root || p.startsWith(root + sep)
      if (cmd.length > 0 && (inside(cwd) || cmd.some((a) => inside(a)))) out.push(`${pid} ${cmd.join(' ').slice(0, 120)}`)
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out
}

if (args.length > 0) {
  const env = { TS_NODE_PROJECT: join(root, 'scripts', 'tsconfig.tap.json'), ...process.env }
  const child = spawn('npx', ['--no-install', 'tap', ...args], { cwd: root, env, stdio: 'inherit' })
  child.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
} else {
  await compileTests()
  const files = testFiles()
  const e2e = files.filter((f) => f.startsWith(join('test', 'e2e') + sep))
  const unit = files.filter((f) => !e2e.includes(f))
  const posix = (f) => join(...f.split('/'))
  const ALONE = ['test/e2e/engine.test.ts', 'test/e2e/multipath.test.ts', 'test/e2e/reload.test.ts'].map(posix)
  const FIRST = ['test/e2e/traversal.test.ts', 'test/e2e/lab-pair.test.ts', 'test/e2e/lab-bond.test.ts', 'test/e2e/lab-personas.test.ts'].map(posix)
  const started = Date.now()
  const unitLane = lane({ name: 'unit', files: unit, jobs: 2, nice: 19 })
  const rest = e2e.filter((f) => !ALONE.includes(f))
  const ordered = [...FIRST.filter((f) => rest.includes(f)), ...rest.filter((f) => !FIRST.includes(f))]
  const e2eLane = lane({ name: 'e2e', files: ordered, jobs: 1, nice: 0, widenAfter: unitLane })
  const lanes = await Promise.all([unitLane, e2eLane])
  lanes.push(await lane({ name: 'e2e-alone', files: e2e.filter((f) => ALONE.includes(f)), jobs: 1, nice: 0 }))
  const total = { pass: 0, fail: 0, skip: 0 }
  for (const l of lanes.filter((l) => l.results.length > 0)) {
    const c = { pass: 0, fail: 0, skip: 0 }
    for (const r of l.results) c[r.status]++
    for (const k of Object.keys(total)) total[k] += c[k]
    process.stdout.write(`\nlane ${l.name}: ${c.pass} passed, ${c.fail} failed, ${c.skip} skipped in ${l.seconds.toFixed(0)} s`)
  }
  const failed = lanes.flatMap((l) => l.results).filter((r) => r.status === 'fail')
  if (failed.length > 0) process.stdout.write(`\n\nfailed (their whole output is above):\n  ${failed.map((r) => [r.file, ...failures(r.out).map((l) => `  ${l}`)].join('\n  ')).join('\n  ')}`)
  const left = leftovers()
  if (left.length > 0) process.stdout.write(`\n\nprocesses from ${root} still running after the suite (a test left them):\n  ${left.join('\n  ')}\n`)
  process.stdout.write(`\n\nsuites: ${total.pass} passed, ${total.fail} failed${total.skip ? `, ${total.skip} skipped` : ''} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  process.exit(failed.length > 0 ? 1 : 0)
}
