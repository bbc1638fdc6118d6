#!/usr/bin/env node
// Runs the whole suite with tap and ends with one plain line, "suites: N passed, N failed, N skipped",
// counted over test files, so any CI can read the result. Exit code: 0 only if every lane passed.
//
// With no arguments the suite runs in three lanes at once, each its own tap process:
//   unit         everything outside test/e2e, `--jobs=2`: short files whose cost is mostly the
//                start of a node process with the TypeScript loader, so they pay off side by side;
//   e2e-1, e2e-2 test/e2e split in two, one file at a time in each: real daemons, delay lines and
//                transfers, each file in network namespaces of its own (random prefixes), mostly
//                waiting on the network, not the CPU.
// tap runs a lane's files in name order whatever the command line says, so the split is what
// balances: longest first onto the lane with less work, by the time= tap recorded for each file on
// the last run (.tap/test-results); a file never run counts as the longest.
// tap's own default on a 2-core machine is one file at a time for everything (it leaves a core
// free), which made `npm test` about 10 minutes here. One lane's output is shown live, the other's
// is held and shown after it, so the log reads file by file. With arguments (files, flags), it is
// plain `tap` with those arguments.
//
// After the run it lists processes started from this checkout that are still alive: a test that
// leaves one behind (a delay line, a daemon) is a bug, and such a leftover slows every later file.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)

/** Every test file, relative to the root, sorted (the .taprc `include` pattern: test/**\/*.test.ts). */
function testFiles() {
  return readdirSync(join(root, 'test'), { recursive: true })
    .map((f) => join('test', f))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
}

/** Splits the files into `n` lists of about equal recorded duration (longest first onto the lightest). */
function balance(files, n) {
  const last = (f) => {
    try {
      const tail = readFileSync(join(root, '.tap', 'test-results', `${f}.tap`), 'utf8').slice(-200)
      return Number((/# time=([0-9.]+)ms\s*$/.exec(tail) ?? [])[1] ?? Infinity)
    } catch {
      return Infinity
    }
  }
  const ms = new Map(files.map((f) => [f, last(f)]))
  const known = [...ms.values()].filter(Number.isFinite)
  const guess = known.length > 0 ? Math.max(...known) : 1
  const lanes = Array.from({ length: n }, () => ({ files: [], ms: 0 }))
  for (const f of [...files].sort((a, b) => ms.get(b) - ms.get(a) || a.localeCompare(b))) {
    const lightest = lanes.reduce((a, b) => (b.ms < a.ms ? b : a))
    lightest.files.push(f)
    lightest.ms += Number.isFinite(ms.get(f)) ? ms.get(f) : guess
  }
  return lanes.map((l) => l.files).filter((l) => l.length > 0)
}

/** One tap process; resolves with its exit code, its output and how long it took. */
function lane(name, tapArgs, sink) {
  const started = Date.now()
  const child = spawn('npx', ['--no-install', 'tap', ...tapArgs], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  const take = (chunk) => {
    text += chunk.toString('utf8')
    sink.write(name, chunk)
  }
  child.stdout.on('data', take)
  child.stderr.on('data', take)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ name, code: code ?? (signal ? 1 : 0), text, seconds: (Date.now() - started) / 1000 }))
  })
}

/** Shows the first lane live; holds the others' output until the lanes before them end. */
function sequencedSink(names) {
  const held = new Map(names.map((n) => [n, []]))
  const finished = new Set()
  let live = 0
  return {
    write(name, chunk) {
      if (name === names[live]) process.stdout.write(chunk)
      else held.get(name).push(chunk)
    },
    done(name) {
      finished.add(name)
      if (name !== names[live]) return
      while (++live < names.length) {
        for (const c of held.get(names[live])) process.stdout.write(c)
        held.set(names[live], [])
        if (!finished.has(names[live])) break
      }
    },
  }
}
/** Test files passed / failed / skipped, from tap's summary line or, failing that, its top-level results. */
function count(text) {
  // eslint-disable-next-line no-control-regex -- stripping the reporter's terminal escape codes
  const clean = text.replace(/\x1b\[[0-9;]*m/g, '')
  const m = [...clean.matchAll(/Suites:\s+(.*)/g)].at(-1)
  if (m) {
    const n = (word) => Number((m[1].match(new RegExp(`(\\d+) ${word}`)) ?? [])[1] ?? 0)
    return { pass: n('pass'), fail: n('fail'), skip: n('skip') + n('todo') }
  }
  const top = [...clean.matchAll(/^(not ok|ok) \d+ - \S+(.*)$/gm)]
  const skip = top.filter((r) => r[1] === 'ok' && /# (SKIP|TODO)/i.test(r[2])).length
  return { pass: top.filter((r) => r[1] === 'ok').length - skip, fail: top.filter((r) => r[1] === 'not ok').length, skip }
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

/** Pids, other than ours and our ancestors', whose program or working directory lies inside this checkout. */
function leftovers() {
  const out = []
  const mine = ancestors()
  for (const pid of readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e) && !mine.has(Number(e)))) {
    try {
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
  const sink = { write: (_name, chunk) => process.stdout.write(chunk) }
  const r = await lane('tap', args, sink)
  const c = count(r.text)
  process.stdout.write(`\nsuites: ${c.pass} passed, ${c.fail} failed${c.skip ? `, ${c.skip} skipped` : ''}\n`)
  process.exit(r.code)
}

const files = testFiles()
const e2e = files.filter((f) => f.startsWith(join('test', 'e2e') + sep))
const unit = files.filter((f) => !e2e.includes(f))
const lanes = [
  { name: 'unit', args: ['--jobs=2', ...unit] },
  ...balance(e2e, 2).map((files, i) => ({ name: `e2e-${i + 1}`, args: ['--jobs=1', ...files] })),
].filter((l) => l.args.length > 1)
const sink = sequencedSink(lanes.map((l) => l.name))
const started = Date.now()
const results = await Promise.all(lanes.map((l) => lane(l.name, l.args, sink)).map((p) => p.then((r) => {
  sink.done(r.name)
  return r
})))
const total = { pass: 0, fail: 0, skip: 0 }
for (const r of results) {
  const c = count(r.text)
  total.pass += c.pass
  total.fail += c.fail
  total.skip += c.skip
  process.stdout.write(`\nlane ${r.name}: ${c.pass} passed, ${c.fail} failed, ${c.skip} skipped in ${r.seconds.toFixed(0)} s (exit ${r.code})`)
}
const left = leftovers()
if (left.length > 0) process.stdout.write(`\n\nprocesses from ${root} still running after the suite (a test left them):\n  ${left.join('\n  ')}\n`)
process.stdout.write(`\n\nsuites: ${total.pass} passed, ${total.fail} failed${total.skip ? `, ${total.skip} skipped` : ''} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
process.exit(results.some((r) => r.code !== 0) ? 1 : 0)
