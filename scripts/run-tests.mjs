#!/usr/bin/env node
// Runs the whole suite with tap and ends with one plain line, "N passed, N failed, N skipped",
// counted over test files (suites), so any CI can read the result. Exit code is tap's.
import { spawn } from 'node:child_process'

const child = spawn('npx', ['--no-install', 'tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] })
let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString('utf8')).slice(-8192)
})
child.on('close', (code, signal) => {
  // tap's base reporter ends with e.g. "Suites:   12 pass  1 fail  1 skip  14 of 14 complete".
  // eslint-disable-next-line no-control-regex -- stripping the reporter's terminal escape codes
  const clean = tail.replace(/\x1b\[[0-9;]*m/g, '')
  const m = [...clean.matchAll(/Suites:\s+(.*)/g)].at(-1)
  const count = (word) => Number((m?.[1].match(new RegExp(`(\\d+) ${word}`)) ?? [])[1] ?? 0)
  if (m) {
    const skipped = count('skip') + count('todo')
    process.stdout.write(`\nsuites: ${count('pass')} passed, ${count('fail')} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  }
  process.exit(code ?? (signal ? 1 : 0))
})
