/**
 * Node certificates: a network's CA (one Ed25519 key) vouches that a node key
 * belongs to the network, under a name, in some groups, with overlay
 * addresses and subnets it may advertise, for a time. Nebula's model, in
 * JSON.
 *
 * A certificate is a plain JSON object. What is signed is the UTF-8 of
 * `"quicether-cert-v1\n" + JSON.stringify(body)` with the body's keys in the
 * order of `CertificateBody`; verification rebuilds that object from the
 * parsed fields, so the key order of a file never matters. Every field has
 * one spelling (canonical base64, canonical IPs and CIDRs, sorted lists), so
 * two equal certificates are byte-equal once encoded.
 *
 * Parsing never throws: text or objects from disk or from a peer come back as
 * `{ ok: false, reason }`. Only node:crypto is used.
 */
import { createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { Ajv } from 'ajv'
import { writeFileAtomic as writeAtomic } from '../atomic-file.js'
import { QeError } from '../errors.js'
import { parseAddress, parsePrefix } from '../net/index.js'

export interface CertificateBody {
  readonly v: 1
  /** Network name (the config's network.name). */
  readonly network: string
  /** 16 random bytes, lowercase hex (32 characters). */
  readonly serial: string
  /** The node's public key: standard base64 of 32 raw bytes (44 characters). */
  readonly key: string
  /** Node name: a DNS label, 1-63 characters of [a-z0-9-], like the config's node.name. */
  readonly name: string
  /** Sorted (by UTF-16 code unit), unique; each 1-63 characters of [A-Za-z0-9_.-]. */
  readonly groups: readonly string[]
  /** Overlay address, plain IP in canonical text; null = none of this family. */
  readonly ipv4: string | null
  readonly ipv6: string | null
  /** Canonical CIDRs (host bits clear) the node may advertise; sorted (by UTF-16 code unit), unique. */
  readonly subnets: readonly string[]
  /** Milliseconds since the epoch, integers; valid from notBefore (minus CLOCK_SKEW_MS) through notAfter. */
  readonly notBefore: number
  readonly notAfter: number
  /** The CA's public key, base64 of 32 raw bytes. */
  readonly issuer: string
}

export interface Certificate extends CertificateBody {
  /** Base64 of the 64-byte Ed25519 signature over the signed bytes. */
  readonly sig: string
}

export type CertCheck =
  | { ok: true }
  | {
      ok: false
      code: 'QE_CERT_SIGNATURE' | 'QE_CERT_ISSUER' | 'QE_CERT_NETWORK' | 'QE_CERT_EXPIRED' | 'QE_CERT_NOT_YET_VALID' | 'QE_CERT_REVOKED'
      reason: string
    }

export type ParsedCertificate = { ok: true; cert: Certificate } | { ok: false; reason: string }

/** Largest certificate file (its pretty JSON encoding), in bytes. Every valid certificate fits. */
export const MAX_CERTIFICATE_BYTES = 4 * 1024
/** How far a certificate's notBefore may be in the future and still be accepted (clocks differ). */
export const CLOCK_SKEW_MS = 5 * 60_000
const CERT_DOMAIN = 'quicether-cert-v1\n'

/** The certificate file does not exist. */
export class CertificateMissingError extends QeError {
  override readonly code = 'QE_CERT_MISSING'
  constructor(message = 'the certificate file does not exist', options?: ErrorOptions) {
    super(message, options)
    this.name = 'CertificateMissingError'
  }
}

/** The certificate file exists but is not a well-formed certificate (the signature is not checked here). */
export class CertificateInvalidError extends QeError {
  override readonly code = 'QE_CERT_INVALID'
  constructor(message = 'the certificate is not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'CertificateInvalidError'
  }
}

/** A request to sign (or a body to sign) has a bad field; the message names it. */
export class CertificateRequestError extends QeError {
  override readonly code = 'QE_CERT_REQUEST'
  constructor(message = 'the certificate request is not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'CertificateRequestError'
  }
}

/** A certificate, revocation list or CA file could not be written. */
export class PkiWriteError extends QeError {
  override readonly code = 'QE_PKI_WRITE'
  constructor(message = 'cannot write a certificate or CA file', options?: ErrorOptions) {
    super(message, options)
    this.name = 'PkiWriteError'
  }
}

// ---------------------------------------------------------------- shapes

/** A node or network name: the config schema's `$defs.name`. */
export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
export const GROUP_PATTERN = '^[A-Za-z0-9_.-]{1,63}$'
const KEY_PATTERN = '^[A-Za-z0-9+/]{43}=$'
const SIG_PATTERN = '^[A-Za-z0-9+/]{86}==$'
const NAME_RE = new RegExp(NAME_PATTERN)
const GROUP_RE = new RegExp(GROUP_PATTERN)

/** Shared by the PKI parsers; union types are how `null` fields are written. */
export const pkiAjv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true })

const time = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const

const certSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'network', 'serial', 'key', 'name', 'groups', 'ipv4', 'ipv6', 'subnets', 'notBefore', 'notAfter', 'issuer', 'sig'],
  properties: {
    v: { const: 1 },
    network: { type: 'string', pattern: NAME_PATTERN },
    serial: { type: 'string', pattern: '^[0-9a-f]{32}$' },
    key: { type: 'string', pattern: KEY_PATTERN },
    name: { type: 'string', pattern: NAME_PATTERN },
    groups: { type: 'array', maxItems: 64, items: { type: 'string', pattern: GROUP_PATTERN } },
    ipv4: { type: ['string', 'null'], maxLength: 15 },
    ipv6: { type: ['string', 'null'], maxLength: 45 },
    subnets: { type: 'array', maxItems: 128, items: { type: 'string', maxLength: 49 } },
    notBefore: time,
    notAfter: time,
    issuer: { type: 'string', pattern: KEY_PATTERN },
    sig: { type: 'string', pattern: SIG_PATTERN },
  },
} as const

const validateCertShape = pkiAjv.compile<Certificate>(certSchema)

/** True when `s` is the one canonical base64 spelling of `bytes` raw bytes. */
export function isCanonicalBase64(s: string, bytes: number): boolean {
  const raw = Buffer.from(s, 'base64')
  return raw.length === bytes && raw.toString('base64') === s
}

function sortedUnique(list: readonly string[]): boolean {
  for (let i = 1; i < list.length; i++) if (!(list[i - 1]! < list[i]!)) return false
  return true
}

/** What is wrong with a certificate that has the right shape, or null. Checks what a schema cannot. */
function canonicalProblem(c: Certificate): string | null {
  if (!isCanonicalBase64(c.key, 32)) return 'key is not canonical base64'
  if (!isCanonicalBase64(c.issuer, 32)) return 'issuer is not canonical base64'
  if (!isCanonicalBase64(c.sig, 64)) return 'sig is not canonical base64'
  if (!sortedUnique(c.groups)) return 'groups are not sorted and unique'
  for (const [field, family] of [['ipv4', 4], ['ipv6', 6]] as const) {
    const text = c[field]
    if (text === null) continue
    const p = parseAddress(text)
    if (p.value === undefined) return `${field}: ${p.error}`
    if (p.value.family !== family) return `${field}: '${text}' is not an IPv${family} address`
    if (p.value.text !== text) return `${field}: '${text}' is not canonical (write ${p.value.text})`
  }
  for (const s of c.subnets) {
    const p = parsePrefix(s)
    if (p.value === undefined) return `subnets: ${p.error}`
    if (p.value.cidr !== s) return `subnets: '${s}' is not canonical (write ${p.value.cidr})`
  }
  if (!sortedUnique(c.subnets)) return 'subnets are not sorted and unique'
  if (c.notAfter <= c.notBefore) return 'notAfter is not after notBefore'
  return null
}

// ---------------------------------------------------------------- encoding

/** The body in signing order, copied (arrays too) from whatever object holds the fields. */
function bodyOf(c: CertificateBody): CertificateBody {
  return {
    v: c.v,
    network: c.network,
    serial: c.serial,
    key: c.key,
    name: c.name,
    groups: [...c.groups],
    ipv4: c.ipv4,
    ipv6: c.ipv6,
    subnets: [...c.subnets],
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    issuer: c.issuer,
  }
}

function signedBytes(c: CertificateBody): Buffer {
  return Buffer.from(CERT_DOMAIN + JSON.stringify(bodyOf(c)), 'utf8')
}

/** The `.crt` file: pretty JSON, fields in signing order, and a newline. Compact `JSON.stringify(cert)` is the wire form. */
export function encodeCertificate(cert: Certificate): string {
  return JSON.stringify({ ...bodyOf(cert), sig: cert.sig }, null, 2) + '\n'
}

/**
 * Reads a certificate from text (a `.crt` file) or from a value already
 * parsed from JSON (a discovery record). Checks shape and canonical forms,
 * not the signature: `verifyCertificate` does that. Never throws.
 */
export function parseCertificate(input: string | unknown): ParsedCertificate {
  try {
    let value: unknown = input
    if (typeof input === 'string') {
      if (Buffer.byteLength(input, 'utf8') > MAX_CERTIFICATE_BYTES) return { ok: false, reason: `a certificate is at most ${MAX_CERTIFICATE_BYTES} bytes` }
      try {
        value = JSON.parse(input)
      } catch {
        return { ok: false, reason: 'not JSON' }
      }
    }
    if (!validateCertShape(value)) return { ok: false, reason: `bad certificate: ${pkiAjv.errorsText(validateCertShape.errors, { dataVar: 'cert' })}` }
    const problem = canonicalProblem(value)
    if (problem !== null) return { ok: false, reason: `bad certificate: ${problem}` }
    const cert = freeze(value)
    if (Buffer.byteLength(encodeCertificate(cert), 'utf8') > MAX_CERTIFICATE_BYTES) return { ok: false, reason: `a certificate is at most ${MAX_CERTIFICATE_BYTES} bytes` }
    return { ok: true, cert }
  } catch (err) {
    // A hostile object (getters, proxies) must not crash the caller either.
    return { ok: false, reason: `not a certificate (${err instanceof Error ? err.message : String(err)})` }
  }
}

function freeze(c: Certificate): Certificate {
  return Object.freeze({ ...bodyOf(c), groups: Object.freeze([...c.groups]), subnets: Object.freeze([...c.subnets]), sig: c.sig })
}

// ---------------------------------------------------------------- keys

/** Base64 of the raw 32-byte public key of an Ed25519 key (private or public). Throws CertificateRequestError for other keys. */
export function publicKeyOf(key: KeyObject): string {
  if (key.asymmetricKeyType !== 'ed25519') throw new CertificateRequestError(`the CA key is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, expected Ed25519`)
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' })
  if (typeof jwk.x !== 'string') throw new CertificateRequestError('cannot extract the Ed25519 public key')
  return Buffer.from(jwk.x, 'base64url').toString('base64')
}

/** A public KeyObject from a base64 raw key; throws on a bad key (callers catch). */
export function publicKeyObject(b64: string): KeyObject {
  const raw = Buffer.from(b64, 'base64')
  if (raw.length !== 32) throw new Error('not a 32-byte key')
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' })
}

/** Ed25519 signature check that never throws (a malformed key or signature is just `false`). */
export function verifySignature(data: Buffer, sig: string, issuer: string): boolean {
  try {
    const s = Buffer.from(sig, 'base64')
    return s.length === 64 && verify(null, data, publicKeyObject(issuer), s)
  } catch {
    return false
  }
}

// ---------------------------------------------------------------- sign, verify, renew

export type CertificateRequest = Omit<CertificateBody, 'v' | 'issuer' | 'serial'> & { serial?: string }

/**
 * Signs a body with the CA key: fills `v`, `serial` (16 random bytes when
 * absent) and `issuer`. Groups and subnets are sorted and deduplicated;
 * anything else not in canonical form (a non-canonical address, an IPv6
 * subnet with host bits set, an encoded size over MAX_CERTIFICATE_BYTES) is a
 * CertificateRequestError: a signed certificate always parses.
 */
export function signCertificate(body: CertificateRequest, caPrivateKey: KeyObject): Certificate {
  if (caPrivateKey.type !== 'private') throw new CertificateRequestError('signing needs the CA private key')
  const issuer = publicKeyOf(caPrivateKey)
  const full: CertificateBody = {
    v: 1,
    network: body.network,
    serial: body.serial ?? randomBytes(16).toString('hex'),
    key: body.key,
    name: body.name,
    groups: [...new Set(body.groups)].sort(),
    ipv4: body.ipv4,
    ipv6: body.ipv6,
    subnets: [...new Set(body.subnets)].sort(),
    notBefore: body.notBefore,
    notAfter: body.notAfter,
    issuer,
  }
  const sig = sign(null, signedBytes(full), caPrivateKey).toString('base64')
  const parsed = parseCertificate({ ...full, sig })
  if (!parsed.ok) throw new CertificateRequestError(parsed.reason.replace(/^bad certificate: /, 'cannot sign: '))
  return parsed.cert
}

export interface VerifyCertificateOptions {
  /** The network's CA public key (base64), from the config's network.ca. */
  readonly ca: string
  readonly network: string
  /** Milliseconds since the epoch. */
  readonly now: number
  /** Revoked node keys (base64). */
  readonly revoked?: ReadonlySet<string>
}

/**
 * Checks, in this order: issuer, network, signature, validity time, revocation,
 * and reports the first failure. notBefore gets CLOCK_SKEW_MS of slack;
 * notAfter none (a certificate is valid through its notAfter millisecond).
 * Expects a parsed certificate (`parseCertificate`); never throws.
 */
export function verifyCertificate(cert: Certificate, opts: VerifyCertificateOptions): CertCheck {
  if (cert.issuer !== opts.ca) return { ok: false, code: 'QE_CERT_ISSUER', reason: `issued by ${short(cert.issuer)}, not by this network's CA ${short(opts.ca)}` }
  if (cert.network !== opts.network) return { ok: false, code: 'QE_CERT_NETWORK', reason: `for network '${cert.network}', not '${opts.network}'` }
  let data: Buffer
  try {
    data = signedBytes(cert)
  } catch {
    return { ok: false, code: 'QE_CERT_SIGNATURE', reason: 'the certificate cannot be encoded' }
  }
  if (!verifySignature(data, cert.sig, opts.ca)) return { ok: false, code: 'QE_CERT_SIGNATURE', reason: 'the signature does not verify' }
  if (opts.now < cert.notBefore - CLOCK_SKEW_MS) return { ok: false, code: 'QE_CERT_NOT_YET_VALID', reason: `not valid before ${iso(cert.notBefore)}` }
  if (opts.now > cert.notAfter) return { ok: false, code: 'QE_CERT_EXPIRED', reason: `expired at ${iso(cert.notAfter)}` }
  if (opts.revoked?.has(cert.key)) return { ok: false, code: 'QE_CERT_REVOKED', reason: `node key ${short(cert.key)} is revoked` }
  return { ok: true }
}

/** True once less than a third of the certificate's lifetime remains (and after it expired). */
export function certificateNeedsRenewal(cert: Certificate, now: number): boolean {
  return 3 * (cert.notAfter - now) < cert.notAfter - cert.notBefore
}

/**
 * The same key, name, groups, addresses and subnets under a new serial, valid
 * from `now` for `lifetimeMs` (default: the old certificate's lifetime). The
 * issuer is the signing key's, whatever the old certificate said.
 */
export function renewCertificate(cert: Certificate, caPrivateKey: KeyObject, opts: { now: number; lifetimeMs?: number }): Certificate {
  const lifetime = opts.lifetimeMs ?? cert.notAfter - cert.notBefore
  if (!Number.isSafeInteger(lifetime) || lifetime <= 0) throw new CertificateRequestError(`lifetime must be a positive whole number of milliseconds, got ${lifetime}`)
  return signCertificate(
    {
      network: cert.network,
      key: cert.key,
      name: cert.name,
      groups: cert.groups,
      ipv4: cert.ipv4,
      ipv6: cert.ipv6,
      subnets: cert.subnets,
      notBefore: opts.now,
      notAfter: opts.now + lifetime,
    },
    caPrivateKey,
  )
}

/** One line for people: `laptop (key AbCdEfGh…) groups admin,dev; 100.88.1.2, fd00::5; subnets 10.1.0.0/24; expires in 364 days`. */
export function certificateSummary(cert: Certificate, now: number): string {
  const parts = [`${cert.name} (key ${short(cert.key)})`]
  parts.push(cert.groups.length > 0 ? `groups ${cert.groups.join(',')}` : 'no groups')
  const addrs = [cert.ipv4, cert.ipv6].filter((a): a is string => a !== null)
  parts.push(addrs.length > 0 ? addrs.join(', ') : 'no overlay address')
  if (cert.subnets.length > 0) parts.push(`subnets ${cert.subnets.join(',')}`)
  parts.push(certificateValidity(cert, now))
  return parts.join('; ')
}

const DAY_MS = 86_400_000

/** "expires in 364 days", "expires in 5 hours", "expired 2 days ago", "not valid for 3 days more" (rounded). */
export function certificateValidity(cert: Pick<Certificate, 'notBefore' | 'notAfter'>, now: number): string {
  const days = (ms: number): string => {
    if (ms < DAY_MS) {
      const h = Math.round(ms / 3_600_000)
      return h === 1 ? '1 hour' : `${h} hours`
    }
    const d = Math.round(ms / DAY_MS)
    return d === 1 ? '1 day' : `${d} days`
  }
  if (now < cert.notBefore - CLOCK_SKEW_MS) return `not valid for ${days(cert.notBefore - now)} more`
  if (now > cert.notAfter) return `expired ${days(now - cert.notAfter)} ago`
  return `expires in ${days(cert.notAfter - now)}`
}

function short(key: string): string {
  return `${key.slice(0, 8)}…`
}

function iso(ms: number): string {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString()
}

// ---------------------------------------------------------------- files

/**
 * Reads and parses the certificate at `path` (the signature is not checked).
 * Throws CertificateMissingError when there is no file, CertificateInvalidError otherwise.
 */
export async function loadCertificate(path: string): Promise<Certificate> {
  const text = await readSmallFile(path, MAX_CERTIFICATE_BYTES, {
    missing: (cause) =>
      new CertificateMissingError(
        `certificate ${path} does not exist (the network admin makes one with 'quicether ca sign --key <this node's public key> --name <name> --out node.crt')`,
        { cause },
      ),
    invalid: (message, cause) => new CertificateInvalidError(`certificate ${path}: ${message}`, { cause }),
  })
  const parsed = parseCertificate(text)
  if (!parsed.ok) throw new CertificateInvalidError(`certificate ${path}: ${parsed.reason}`)
  return parsed.cert
}

/** Writes `encodeCertificate(cert)` to `path` atomically, mode 0644; a missing parent directory is created 0700. */
export async function saveCertificate(path: string, cert: Certificate): Promise<void> {
  await writeFileAtomic(path, encodeCertificate(cert), 0o644)
}

/**
 * The PKI module's one file writer: a temporary file beside `path`, fsync,
 * rename over it, so readers see the old file or the new one, never half.
 * The parent directory is created with mode 0700 when missing.
 */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  try {
    await writeAtomic(path, text, mode)
  } catch (err) {
    throw new PkiWriteError(`cannot write ${path}: ${describe(err)}`, { cause: err })
  }
}

/**
 * Reads a text file of at most `limit` bytes. A missing file (or a missing
 * directory on the way) is `errors.missing`; a directory, an oversize file or
 * an unreadable one is `errors.invalid`.
 */
export async function readSmallFile(
  path: string,
  limit: number,
  errors: { missing: (cause: unknown) => Error; invalid: (message: string, cause?: unknown) => Error },
): Promise<string> {
  let st
  try {
    st = await stat(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw errors.missing(err)
    throw errors.invalid(`cannot read it: ${describe(err)}`, err)
  }
  if (!st.isFile()) throw errors.invalid('not a regular file')
  if (st.size > limit) throw errors.invalid(`too large (${st.size} bytes, at most ${limit})`)
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw errors.invalid(`cannot read it: ${describe(err)}`, err)
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

/** "permission denied (EACCES)" from Node's "EACCES: permission denied, open '/x'". */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as NodeJS.ErrnoException).code
  const m = /^E[A-Z]+: ([^,]+)/.exec(err.message)
  return m?.[1] && code ? `${m[1]} (${code})` : err.message
}

/** True when `name` is a valid node or network name. */
export function isValidName(name: string): boolean {
  return NAME_RE.test(name)
}

/** True when `group` is a valid group name. */
export function isValidGroup(group: string): boolean {
  return GROUP_RE.test(group)
}
