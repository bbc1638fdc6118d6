#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled tree (npm run build).
import { main } from '../dist/cli/main.js'

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err) => {
    // Only a bug reaches here: every expected failure is a QeError the CLI prints itself.
    process.stderr.write(`quicether: internal error: ${err && err.stack ? err.stack : String(err)}\n`)
    process.exitCode = 70
  },
)
