/**
 * The nftables adapter: the only code that runs `nft`. The node's table is
 * replaced whole by one script (one transaction: all of it or nothing), read
 * back by the hash in its comment, and deleted at a clean stop. The sockets
 * this machine listens on are read from /proc for the ingress port check.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { renderNft, type FirewallState, type ListeningSocket } from '../state/firewall.js'
import { NftablesError } from './errors.js'
import { parseAddress } from '../net/index.js'

export type { ListeningSocket }

export interface FirewallPort {
  /** Replaces the node's table with `s` (deletes it when `s.empty`); throws NftablesError with nft's message, nothing changed. */
  apply(s: FirewallState): Promise<void>
  /** The hash in the installed table's comment: null when there is no such table, '' when it has no `qe:` comment; throws NftablesError when nft cannot list (no permission, no nft). */
  readHash(table: string): Promise<string | null>
  /** TCP and UDP sockets this machine listens on (UDP: bound). */
  listening(): Promise<ListeningSocket[]>
}

/** Runs one process with `input` on stdin; a process that cannot start at all rejects with NftablesError. */
function runNft(nft: string, args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(nft, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.once('error', (err) => reject(new NftablesError(`cannot run ${nft}: ${err.message} (install nftables)`, { cause: err })))
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }))
    // A process that exits before reading its input (no permission, not found) makes the write fail: its exit code tells.
    child.stdin.on('error', () => undefined)
    child.stdin.end(input ?? '')
  })
}

export interface NftablesPortOptions {
  /** The nft binary. Default `nft` (from PATH). */
  readonly nft?: string
  /** Run nft inside this named network namespace (`ip netns exec <netns> nft …`): tests and the lab. Default: this one. */
  readonly netns?: string
}

/**
 * The real port. Every call runs one nft process (no shell): `apply` feeds
 * the script on stdin to `nft -f -`, one transaction; `readHash` lists the
 * table as text. `listening()` reads /proc/net of the same namespace.
 */
export function nftablesPort(opts: NftablesPortOptions = {}): FirewallPort {
  const nft = opts.nft ?? 'nft'
  const cmd = (args: readonly string[]): [string, string[]] => (opts.netns === undefined ? [nft, [...args]] : ['ip', ['netns', 'exec', opts.netns, nft, ...args]])
  return {
    async apply(s) {
      const r = await runNft(...cmd(['-f', '-']), renderNft(s))
      if (r.code !== 0) throw new NftablesError(`nft refused table ${s.table}: ${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}`, { stderr: r.stderr })
    },
    async readHash(table) {
      // Text, not -j: nft 1.0.6's JSON leaves the table's comment out.
      const r = await runNft(...cmd(['list', 'table', 'inet', table]))
      if (r.code !== 0) {
        if (/No such file or directory/.test(r.stderr)) return null
        throw new NftablesError(`nft cannot list table ${table}: ${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}`, { stderr: r.stderr })
      }
      // A table of that name without our comment is not ours as committed: '' never equals a hash.
      return /^\s*comment "qe:([0-9a-f]+)"/m.exec(r.stdout)?.[1] ?? ''
    },
    // /proc/net is the reading process's namespace: inside `netns`, a `cat` run there reads it.
    listening: () => readListening(opts.netns === undefined ? '/proc/net' : netnsReader(opts.netns)),
  }
}

/** Reads /proc/net/<file> from inside a named namespace (null: unreadable). */
function netnsReader(netns: string): (file: string) => Promise<string | null> {
  return async (file) => {
    const r = await runNft('ip', ['netns', 'exec', netns, 'cat', `/proc/net/${file}`])
    return r.code === 0 ? r.stdout : null
  }
}

/** Parses /proc/net/{tcp,tcp6,udp,udp6} (a directory, or a reader of those files): TCP in LISTEN, UDP bound to a port. */
export async function readListening(from: string | ((file: string) => Promise<string | null>) = '/proc/net'): Promise<ListeningSocket[]> {
  const read = typeof from === 'string' ? (file: string) => readFile(`${from}/${file}`, 'utf8').catch(() => null) : from
  const out: ListeningSocket[] = []
  for (const [file, proto, family] of [['tcp', 'tcp', 4], ['tcp6', 'tcp', 6], ['udp', 'udp', 4], ['udp6', 'udp', 6]] as const) {
    const text = await read(file)
    if (text === null) continue
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 4 || !f[1] || !f[3]) continue
      const [hexAddr, hexPort] = f[1].split(':') as [string, string]
      // TCP: only sockets in LISTEN (0A); UDP: any bound socket (07, unconnected).
      if (proto === 'tcp' && f[3] !== '0A') continue
      if (proto === 'udp' && f[3] !== '07') continue
      out.push({ proto, family, address: procAddress(hexAddr, family), port: parseInt(hexPort, 16) })
    }
  }
  return out
}

/** /proc/net addresses are 32-bit words in host (little-endian) order. */
function procAddress(hex: string, family: 4 | 6): string {
  const words = hex.match(/.{8}/g) ?? []
  const bytes = words.flatMap((w) => (w.match(/.{2}/g) ?? []).reverse().map((b) => parseInt(b, 16)))
  if (family === 4) return bytes.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
  const text = groups.join(':')
  return parseAddress(text).value?.text ?? text
}

/** A port that remembers what it was asked (tests, and nodes without nftables). */
export function memoryFirewallPort(opts: { failOn?: (s: FirewallState) => boolean; listening?: ListeningSocket[] } = {}): FirewallPort & { readonly applied: FirewallState[]; current: FirewallState | null } {
  const port = {
    applied: [] as FirewallState[],
    current: null as FirewallState | null,
    async apply(s: FirewallState) {
      if (opts.failOn?.(s)) throw new NftablesError(`nft refused table ${s.table}: injected failure`)
      port.applied.push(s)
      port.current = s.empty ? null : s
    },
    async readHash() {
      return port.current?.hash ?? null
    },
    async listening() {
      return opts.listening ?? []
    },
  }
  return port
}
