/**
 * Network namespaces of a lab run. A new namespace gets loopback up,
 * forwarding on (nodes may route, routers must), reverse-path filtering off
 * (packets re-enter from delay TUNs with foreign sources) and IPv6 duplicate
 * address detection off (addresses are usable at once) — all inside the
 * namespace; the host's settings are never touched.
 */
import { readdir } from 'node:fs/promises'
import { run, runIn } from './exec.js'
import { isLabName } from './names.js'

const SYSCTLS = [
  'net.ipv4.ip_forward=1',
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
  'net.ipv6.conf.all.forwarding=1',
  'net.ipv6.conf.default.forwarding=1',
  'net.ipv6.conf.all.accept_dad=0',
  'net.ipv6.conf.default.accept_dad=0',
]

/** Creates namespace `name` and prepares it (see above). */
export async function createNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'add', name])
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  await runIn(name, 'sysctl', ['-q', '-w', ...SYSCTLS])
}

/** Deletes a namespace; a missing one is fine. */
export async function deleteNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'delete', name], { allowFail: true })
}

/** Namespaces whose names belong to run `runId` (or to any lab run when null). */
export async function listLabNetns(runId: string | null = null): Promise<string[]> {
  let entries: string[]
  try {
    entries = await readdir('/run/netns')
  } catch {
    return []
  }
  return entries.filter((n) => isLabName(n, runId)).sort()
}

/** Pids of processes whose network namespace is `name`. */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', name], { allowFail: true })
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^[0-9]+$/.test(s))
    .map(Number)
}
