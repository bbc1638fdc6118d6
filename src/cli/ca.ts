/**
 * `quicether ca`: the network's certificate authority, run by the admin.
 *
 *   ca init    create the CA directory (key, network secret, empty revocation list)
 *   ca sign    issue a node certificate
 *   ca revoke  add a node key to the signed revocation list
 *   ca show    print a certificate or revocation list, and whether it verifies
 *
 * Expected failures are QeErrors, printed by `main` as one line. `ca sign`
 * without --out writes the certificate to stdout and everything else to
 * stderr, so `quicether ca sign ... > node.crt` works.
 */
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { DEFAULT_OVERLAY_IPV4, defaultOverlayIpv6 } from '../config/defaults.js'
import { parseDuration } from '../config/units.js'
import { UsageError } from '../errors.js'
import { loadIdentity, publicKeyBase64 } from '../mesh/identity.js'
import { parsePrefix } from '../net/index.js'
// The PKI is imported by each command that uses it (`pki()`): it loads ajv and compiles its
// schemas at import, which `--help` and every other command can do without.
import type * as Pki from '../pki/index.js'
import type { Certificate, RevocationList } from '../pki/index.js'
import { describeFsError, EXIT_INVALID, EXIT_OK, type CliContext } from './context.js'
import { readStdinText } from './stdin.js'

export const DEFAULT_CA_DIR = './quicether-ca'
/** The schema's `$defs.name`: what node.name and network.name must look like. */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
/** Enough for any revocation list `ca show` may be given. */
const MAX_SHOW_BYTES = 1024 * 1024

function pki(): Promise<typeof Pki> {
  return import('../pki/index.js')
}

interface InitFlags {
  network: string
  dir: string
  overlayIpv4?: string
  overlayIpv6?: string
}

interface SignFlags {
  dir: string
  key?: string
  identity?: string
  name: string
  groups?: string
  ipv4?: string
  ipv6?: string
  subnets?: string
  expires: string
  out?: string
}

interface RevokeFlags {
  dir: string
  key: string
  name?: string
}

interface ShowFlags {
  dir?: string
  ca?: string
  network?: string
}

export function registerCaCommands(program: Command, ctx: CliContext): void {
  const ca = program
    .command('ca')
    .summary("the network's certificate authority: init, sign, revoke, show")
    .description(
      'Membership by certificates: one CA key per network signs each node\'s key, name, groups and\n' +
        'addresses. Nodes admit any peer with a valid certificate from the CA named in network.ca.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ quicether ca init --network home
  $ quicether ca sign --key <node public key> --name laptop --groups admin --out laptop.crt
  $ quicether ca revoke --key <node public key> --name laptop
  $ quicether ca show laptop.crt --dir ./quicether-ca`,
    )

  ca.command('init')
    .summary('create a CA directory: key, network secret, empty revocation list')
    .requiredOption('--network <name>', 'network name (the config\'s network.name)')
    .option('--dir <dir>', 'CA directory to create', DEFAULT_CA_DIR)
    .option('--overlay-ipv4 <cidr>', `IPv4 range node addresses come from (default ${DEFAULT_OVERLAY_IPV4})`)
    .option('--overlay-ipv6 <cidr>', 'IPv6 range node addresses come from (default: a ULA /48 derived from the network name)')
    .action(async (f: InitFlags) => {
      ctx.exitCode = await runCaInit(f, ctx)
    })

  ca.command('sign')
    .summary('issue a certificate for a node key')
    .option('--dir <dir>', 'CA directory', DEFAULT_CA_DIR)
    .option('--key <base64>', "the node's public key ('quicether init' prints it)")
    .option('--identity <file>', "read the public key from the node's private key file instead")
    .requiredOption('--name <name>', 'node name (lowercase letters, digits, dashes)')
    .option('--groups <list>', 'comma-separated groups, for policies (a,b)')
    .option('--ipv4 <address>', "overlay IPv4 address, or 'none' (default: derived from the key)")
    .option('--ipv6 <address>', "overlay IPv6 address, or 'none' (default: derived from the key)")
    .option('--subnets <list>', 'comma-separated CIDRs the node may advertise (its LANs)')
    .option('--expires <duration>', 'lifetime, like 365d, 30d or 12h', '365d')
    .option('--out <file>', 'write the certificate here (mode 0644) instead of stdout')
    .action(async (f: SignFlags) => {
      ctx.exitCode = await runCaSign(f, ctx)
    })

  ca.command('revoke')
    .summary('revoke a node key: it can no longer join, whatever certificate it holds')
    .option('--dir <dir>', 'CA directory', DEFAULT_CA_DIR)
    .requiredOption('--key <base64>', "the node's public key")
    .option('--name <name>', 'the node\'s name, recorded for people')
    .action(async (f: RevokeFlags) => {
      ctx.exitCode = await runCaRevoke(f, ctx)
    })

  ca.command('show')
    .summary('print a certificate or revocation list; with a CA, whether it verifies')
    .argument('<file>', "certificate or revocation list ('-' for stdin)")
    .option('--dir <dir>', 'verify against the CA in this directory (its revocation list too)')
    .option('--ca <key>', 'verify against this CA public key (with --network)')
    .option('--network <name>', 'network name to verify against (with --ca)')
    .action(async (file: string, f: ShowFlags) => {
      ctx.exitCode = await runCaShow(file, f, ctx)
    })
}

export async function runCaInit(f: InitFlags, ctx: CliContext): Promise<number> {
  if (!NAME.test(f.network)) throw new UsageError(`--network '${f.network}' is not a valid network name: use lowercase letters, digits and dashes (1-63)`)
  const overlay = {
    ipv4: flagRange(f.overlayIpv4, '--overlay-ipv4', 4) ?? DEFAULT_OVERLAY_IPV4,
    ipv6: flagRange(f.overlayIpv6, '--overlay-ipv6', 6) ?? defaultOverlayIpv6(f.network),
  }
  const dir = resolve(f.dir)
  const { CA_FILES, initCa } = await pki()
  const info = await initCa(dir, { network: f.network, overlay })
  const custom = overlay.ipv4 !== DEFAULT_OVERLAY_IPV4 || overlay.ipv6 !== defaultOverlayIpv6(f.network)
  const overlayLine = custom ? `, overlay: { ipv4: ${info.overlay.ipv4}, ipv6: '${info.overlay.ipv6}' }` : ''
  ctx.io.stdout.write(
    [
      `created CA ${dir} for network ${info.network} (mode 0700; ca.key and network.secret mode 0600)`,
      ``,
      `CA public key: ${info.publicKey}`,
      `overlay:       ${info.overlay.ipv4}, ${info.overlay.ipv6}`,
      ``,
      `Next:`,
      `  1. In every node's config:`,
      `       network: { name: ${info.network}, ca: ${info.publicKey}${overlayLine} }`,
      `  2. Copy ${join(dir, CA_FILES.secret)} to each node's state dir (mode 0600),`,
      `     or hand it out with 'quicether invite'.`,
      `  3. Sign each node's key and put the certificate at <state-dir>/node.crt on that node:`,
      `       quicether ca sign --dir ${dir} --key <node public key> --name <node name> --out node.crt`,
      `  4. Keep ${join(dir, CA_FILES.key)} offline, or only on an admin node (network.ca-dir in its config).`,
      ``,
    ].join('\n'),
  )
  return EXIT_OK
}

export async function runCaSign(f: SignFlags, ctx: CliContext): Promise<number> {
  const { stdout, stderr } = ctx.io
  if ((f.key === undefined) === (f.identity === undefined)) throw new UsageError('give the node key with exactly one of --key and --identity')
  if (!NAME.test(f.name)) throw new UsageError(`--name '${f.name}' is not a valid node name: use lowercase letters, digits and dashes (1-63, no leading or trailing dash)`)
  const lifetimeMs = parseLifetime(f.expires)
  const key =
    f.key ?? publicKeyBase64(await loadIdentity(resolve(f.identity!), { onWarning: (m) => stderr.write(`quicether: warning: ${m}\n`) }))
  const { certificateSummary, encodeCertificate, openCa, saveCertificate } = await pki()
  const ca = await openCa(resolve(f.dir))
  const cert = await ca.sign({
    key,
    name: f.name,
    groups: list(f.groups),
    subnets: list(f.subnets),
    ...(f.ipv4 !== undefined ? { ipv4: f.ipv4 === 'none' ? null : f.ipv4 } : {}),
    ...(f.ipv6 !== undefined ? { ipv6: f.ipv6 === 'none' ? null : f.ipv6 } : {}),
    lifetimeMs,
  })
  if (f.out !== undefined) {
    const out = resolve(f.out)
    await saveCertificate(out, cert)
    stderr.write(`signed ${certificateSummary(cert, Date.now())} → ${out}\n`)
  } else {
    stdout.write(encodeCertificate(cert))
    stderr.write(`signed ${certificateSummary(cert, Date.now())}\n`)
  }
  return EXIT_OK
}

export async function runCaRevoke(f: RevokeFlags, ctx: CliContext): Promise<number> {
  if (f.name !== undefined && !NAME.test(f.name)) throw new UsageError(`--name '${f.name}' is not a valid node name`)
  const dir = resolve(f.dir)
  const { CA_FILES, openCa } = await pki()
  const ca = await openCa(dir)
  const before = await ca.revocations()
  const after = await ca.revoke([{ key: f.key, name: f.name ?? null }])
  const path = join(dir, CA_FILES.revocations)
  const lines =
    after.seq === before.seq
      ? [`${f.key.trim()} was already revoked; ${path} stays at seq ${after.seq} (${count(after.revoked.length, 'key')})`]
      : [
          `revoked ${f.key.trim()}${f.name ? ` (${f.name})` : ''}; ${path} is now seq ${after.seq} (${count(after.revoked.length, 'key')})`,
          `Nodes learn it from any node that holds it: the admin node's daemon (network.ca-dir) spreads it`,
          `to its peers and they pass it on. Without an admin node, copy ${path} into each node's state dir.`,
        ]
  ctx.io.stdout.write(lines.join('\n') + '\n')
  return EXIT_OK
}

export async function runCaShow(file: string, f: ShowFlags, ctx: CliContext): Promise<number> {
  if (f.dir !== undefined && (f.ca !== undefined || f.network !== undefined)) throw new UsageError('give either --dir or --ca with --network, not both')
  if ((f.ca === undefined) !== (f.network === undefined)) throw new UsageError('--ca and --network go together')
  const { source, value } = await readShown(file, ctx)
  const { CA_FILES, certificateValidity, CertificateInvalidError, loadRevocationList, parseCertificate, parseRevocationList, readCaInfo, RevocationListInvalidError, revokedKeys, verifyCertificate, verifyRevocationList } =
    await pki()
  const isList = typeof value === 'object' && value !== null && 'revoked' in value
  let against: { ca: string; network: string; revoked: ReadonlySet<string> | undefined } | null = null
  if (f.dir !== undefined) {
    const dir = resolve(f.dir)
    const info = await readCaInfo(dir)
    // The CA's own list, when it verifies, tells whether a certificate's key is revoked.
    let revoked: ReadonlySet<string> | undefined
    if (!isList) {
      const l = await loadRevocationList(join(dir, CA_FILES.revocations))
      if (l && verifyRevocationList(l, { ca: info.publicKey, network: info.network }).ok) revoked = revokedKeys(l)
    }
    against = { ca: info.publicKey, network: info.network, revoked }
  } else if (f.ca !== undefined && f.network !== undefined) {
    against = { ca: f.ca.trim(), network: f.network, revoked: undefined }
  }

  const now = Date.now()
  let out: string[]
  let check: { ok: true } | { ok: false; code: string; reason: string } | null = null
  if (isList) {
    const parsed = parseRevocationList(value)
    if (!parsed.ok) throw new RevocationListInvalidError(`${source}: ${parsed.reason}`)
    out = showList(source, parsed.list)
    if (against) check = verifyRevocationList(parsed.list, against)
  } else {
    const parsed = parseCertificate(value)
    if (!parsed.ok) throw new CertificateInvalidError(`${source}: ${parsed.reason}`)
    out = showCert(source, parsed.cert, certificateValidity(parsed.cert, now))
    if (against) check = verifyCertificate(parsed.cert, { ...against, now, ...(against.revoked ? { revoked: against.revoked } : {}) })
  }
  if (check === null) out.push('not verified (give --dir, or --ca and --network, to check it)')
  else if (check.ok) out.push(`verifies: signed by CA ${against!.ca} for network ${against!.network}`)
  else out.push(`does not verify: ${check.reason} (${check.code})`)
  ctx.io.stdout.write(out.join('\n') + '\n')
  return check === null || check.ok ? EXIT_OK : EXIT_INVALID
}

async function readShown(file: string, ctx: CliContext): Promise<{ source: string; value: unknown }> {
  const { CertificateInvalidError, CertificateMissingError } = await pki()
  let text: string
  let source: string
  if (file === '-') {
    source = 'stdin'
    const input = await readStdinText(ctx.io.stdin, MAX_SHOW_BYTES)
    if (input.tooLarge) throw new CertificateInvalidError(`stdin: more than ${MAX_SHOW_BYTES} bytes; not a certificate or revocation list`)
    text = input.text
  } else {
    source = resolve(file)
    try {
      const buf = await readFile(source)
      if (buf.length > MAX_SHOW_BYTES) throw new CertificateInvalidError(`${source}: ${buf.length} bytes; not a certificate or revocation list`)
      text = buf.toString('utf8')
    } catch (err) {
      if (err instanceof CertificateInvalidError) throw err
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CertificateMissingError(`${source} does not exist`, { cause: err })
      throw new CertificateInvalidError(`cannot read ${source}: ${describeFsError(err)}`, { cause: err })
    }
  }
  try {
    return { source, value: JSON.parse(text) }
  } catch (err) {
    throw new CertificateInvalidError(`${source} is not JSON: not a certificate or revocation list`, { cause: err })
  }
}

function showCert(source: string, c: Certificate, validity: string): string[] {
  const none = (xs: readonly string[]): string => (xs.length > 0 ? xs.join(', ') : '(none)')
  return [
    `certificate ${source}`,
    `  name        ${c.name}`,
    `  network     ${c.network}`,
    `  key         ${c.key}`,
    `  groups      ${none(c.groups)}`,
    `  ipv4        ${c.ipv4 ?? '(none)'}`,
    `  ipv6        ${c.ipv6 ?? '(none)'}`,
    `  subnets     ${none(c.subnets)}`,
    `  serial      ${c.serial}`,
    `  not before  ${new Date(c.notBefore).toISOString()}`,
    `  not after   ${new Date(c.notAfter).toISOString()} (${validity})`,
    `  issuer      ${c.issuer}`,
  ]
}

function showList(source: string, l: RevocationList): string[] {
  return [
    `revocation list ${source}`,
    `  network     ${l.network}`,
    `  issuer      ${l.issuer}`,
    `  seq         ${l.seq}`,
    `  issued at   ${new Date(l.issuedAt).toISOString()}`,
    `  revoked     ${count(l.revoked.length, 'key')}`,
    ...l.revoked.map((e) => `    ${e.key}  ${e.name ?? '-'}  ${new Date(e.at).toISOString()}`),
  ]
}

function flagRange(value: string | undefined, flag: string, family: 4 | 6): string | undefined {
  if (value === undefined) return undefined
  const p = parsePrefix(value)
  if (p.value === undefined) throw new UsageError(`${flag}: ${p.error}`)
  if (p.value.family !== family) throw new UsageError(`${flag}: '${value}' is not an IPv${family} range`)
  return p.value.cidr
}

/** A lifetime: whole days (`365d`), or a duration `parseDuration` reads (`12h`, `90m`), or both (`1d12h`). */
export function parseLifetime(text: string): number {
  const m = /^(?:([0-9]+)d)?(.*)$/.exec(text.trim())
  const days = m?.[1] === undefined ? 0 : Number(m[1]) * 86_400_000
  const rest = m?.[2] ?? ''
  const extra = rest === '' ? { value: 0 } : parseDuration(rest)
  if ((m?.[1] === undefined && rest === '') || extra.value === undefined) {
    throw new UsageError(`--expires '${text}' is not a duration; write it like 365d, 30d, 12h or 1d12h`)
  }
  const ms = Math.round(days + extra.value)
  if (ms <= 0 || !Number.isSafeInteger(ms)) throw new UsageError(`--expires '${text}' must be a positive duration`)
  return ms
}

function list(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}
