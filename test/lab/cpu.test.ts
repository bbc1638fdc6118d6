import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { CpuMeter, cpuPerGbit, cpuSecondsOf, parseProcStatTicks, parseSchedstatWaitNs, runqWaitSecondsOf, MachineMeter, machineTicks } from '../../src/lab/cpu.js'

t.test('utime + stime from a stat line, even when the name holds spaces and parentheses', async (t) => {
  const line = '4242 (node (lab) x) S 1 4242 4242 0 -1 4194560 2512 0 0 0 150 27 3 4 20 0 11 0 12345 1000000 5000 18446744073709551615'
  t.equal(parseProcStatTicks(line), 177)
  t.throws(() => parseProcStatTicks('garbage'))
})

t.test('this process has used some CPU; a missing pid has used none', async (t) => {
  let x = 0
  for (let i = 0; i < 3e7; i++) x += i
  t.ok(x > 0)
  t.ok(cpuSecondsOf(process.pid) > 0)
  t.equal(cpuSecondsOf(2 ** 22 + 12345), 0)
})

t.test('a meter counts CPU used between start and stop', async (t) => {
  const m = new CpuMeter([process.pid])
  m.start()
  let acc = 0
  for (let i = 0; i < 5e7; i++) acc += Math.sqrt(i)
  const used = m.stop()
  t.ok(acc > 0)
  t.ok(used > 0, `a fixed amount of work used ${used} s`)
})

t.test('seconds per Gbit', async (t) => {
  t.equal(cpuPerGbit(2, 125_000_000), 2)
  t.ok(Number.isNaN(cpuPerGbit(1, 0)))
})

t.test('machineTicks: busy and total over every core from /proc/stat, guest time counted once', async (t) => {
  const stat = 'cpu  100 5 50 800 20 3 2 0 10 0\ncpu0 50 2 25 400 10 1 1 0 5 0\nintr 1\n'
  // total 990 minus guest 10 = 980; idle+iowait 820; busy 160
  t.same(machineTicks(stat), { busy: 160, total: 980 })
  t.throws(() => machineTicks('intr 1\n'), /no cpu line/)
  const m = new MachineMeter()
  t.equal(m.stop(), null, 'not started: nothing measured')
  m.start()
  const spin = Date.now() + 30
  while (Date.now() < spin) Math.sqrt(Math.random())
  const busy = m.stop()
  t.ok(busy !== null && busy > 0 && busy <= 1, `a busy loop shows as busy time (${busy})`)
})

t.test('schedstat: the run-queue wait is its second field, in ns', async (t) => {
  t.equal(parseSchedstatWaitNs('123456789 987654 42\n'), 987654)
  t.throws(() => parseSchedstatWaitNs('garbage'))
  t.equal(runqWaitSecondsOf(2 ** 22 + 12345), null, 'a missing pid: not measured')
})

t.test('a meter sees threads wait for a core when there are more busy processes than cores', { skip: existsSync('/proc/self/schedstat') ? false : 'this kernel keeps no schedstat' }, async (t) => {
  // cores + 1 processes that each spin for 0.9 s: while they all spin, at least one of them is
  // runnable with no core free, so the meter must see them wait; how long exactly depends on the machine.
  const n = availableParallelism() + 1
  const kids = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'const end = Date.now() + 900; while (Date.now() < end) Math.sqrt(Math.random())'], { stdio: 'ignore' }))
  t.teardown(() => kids.forEach((k) => k.kill('SIGKILL')))
  const m = new CpuMeter(kids.map((k) => k.pid!))
  t.equal(m.waitPerSecond, null, 'nothing before stop()')
  m.start()
  await new Promise((r) => setTimeout(r, 500))
  m.stop()
  const w = m.waitPerSecond
  t.ok(w !== null && w > 0.2, `${n} spinning processes on ${n - 1} cores waited ${w?.toFixed(2)} s per second for a core`)
  await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.on('exit', r)))))
})
