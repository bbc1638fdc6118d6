/**
 * The gate of the lab's root tests: they build network namespaces, so they
 * run as root with the tools they drive installed, and otherwise plan no
 * tests and say why (tap reports a skip, not a failure).
 */
import { spawnSync } from 'node:child_process'
import t from 'tap'

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0

/** Runs `tests` as root when every command in `tools` is installed; else plans 0 with the reason. */
export async function whenRootWith(tools: readonly string[], tests: () => Promise<void>): Promise<void> {
  if (process.getuid?.() !== 0) {
    t.plan(0, 'needs root')
    return
  }
  if (!tools.every(have)) {
    t.plan(0, `needs ${tools.slice(0, -1).join(', ')} and ${tools[tools.length - 1]}`)
    return
  }
  await tests()
}
