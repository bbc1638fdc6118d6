/**
 * The node identity: one Ed25519 key pair per node.
 *
 * On disk the private key is PKCS#8 PEM, mode 0600, in a directory of mode
 * 0700 (default `<state-dir>/identity.key`). Everywhere else (config, logs,
 * wire) a public key is the standard base64 of its raw 32 bytes: 44
 * characters, like WireGuard. The node's overlay addresses, when the config
 * does not pin them, are derived from the public key, so every peer computes
 * the same address for a node from its key alone.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmod, mkdir, readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import ipaddr from 'ipaddr.js'
import { writeFileAtomic } from '../atomic-file.js'
import { QeError } from '../errors.js'

/** Length of a raw Ed25519 public key, in bytes. */
export const PUBLIC_KEY_LENGTH = 32

/** A node's key pair. `publicKey` is the raw 32-byte key; callers must not mutate it. */
export interface Identity {
  /** PKCS#8 PEM of the Ed25519 private key (what is written to disk). */
  readonly privateKeyPem: string
  /** Raw Ed25519 public key, exactly 32 bytes. */
  readonly publicKey: Buffer
}

/** The identity file does not exist. */
export class IdentityMissingError extends QeError {
  override readonly code = 'QE_IDENTITY_MISSING'
  constructor(message = 'the identity key file does not exist', options?: ErrorOptions) {
    super(message, options)
    this.name = 'IdentityMissingError'
  }
}

/** The identity file exists but is not a readable Ed25519 PKCS#8 PEM key. */
export class IdentityInvalidError extends QeError {
  override readonly code = 'QE_IDENTITY_INVALID'
  constructor(message = 'the identity key file is not a valid Ed25519 private key', options?: ErrorOptions) {
    super(message, options)
    this.name = 'IdentityInvalidError'
  }
}

/** The identity could not be written (the file already exists, or the directory is not writable). */
export class IdentityWriteError extends QeError {
  override readonly code = 'QE_IDENTITY_WRITE'
  constructor(message = 'cannot write the identity key file', options?: ErrorOptions) {
    super(message, options)
    this.name = 'IdentityWriteError'
  }
}

/** A public key string is not the base64 of 32 raw bytes. */
export class PublicKeyInvalidError extends QeError {
  override readonly code = 'QE_PUBLIC_KEY_INVALID'
  constructor(message = 'not a valid public key (expected base64 of 32 bytes, 44 characters)', options?: ErrorOptions) {
    super(message, options)
    this.name = 'PublicKeyInvalidError'
  }
}

/** An overlay range is not a CIDR of the right family, or leaves no room for a host. */
export class OverlayRangeError extends QeError {
  override readonly code = 'QE_OVERLAY_RANGE'
  constructor(message = 'the overlay address range is not usable', options?: ErrorOptions) {
    super(message, options)
    this.name = 'OverlayRangeError'
  }
}

/** Creates a fresh Ed25519 identity (in memory; `saveIdentity` writes it). */
export function generateIdentity(): Identity {
  const { privateKey } = generateKeyPairSync('ed25519')
  return identityFromPrivateKey(privateKey)
}

/** Builds an Identity from a PKCS#8 PEM string; throws IdentityInvalidError if it is not Ed25519. */
export function identityFromPem(pem: string, source = 'the identity key'): Identity {
  let key: KeyObject
  try {
    key = createPrivateKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw new IdentityInvalidError(`${source} is not a PEM private key`, { cause: err })
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new IdentityInvalidError(`${source} is a ${key.asymmetricKeyType ?? 'unknown'} key, expected Ed25519`)
  }
  return identityFromPrivateKey(key)
}

function identityFromPrivateKey(key: KeyObject): Identity {
  const privateKeyPem = key.export({ format: 'pem', type: 'pkcs8' }).toString()
  const jwk = createPublicKey(key).export({ format: 'jwk' })
  if (typeof jwk.x !== 'string') throw new IdentityInvalidError('cannot extract the Ed25519 public key')
  const publicKey = Buffer.from(jwk.x, 'base64url')
  if (publicKey.length !== PUBLIC_KEY_LENGTH) throw new IdentityInvalidError('the Ed25519 public key is not 32 bytes')
  return Object.freeze({ privateKeyPem, publicKey })
}

export interface LoadIdentityOptions {
  /**
   * Called with a one-line message when the file is readable by group or
   * others. Default: `process.emitWarning`. The daemon passes its logger.
   */
  onWarning?: (message: string) => void
}

/** Identity files larger than this are not keys; refuse them before reading. */
const MAX_IDENTITY_FILE_BYTES = 64 * 1024

/**
 * Reads the identity at `path`. Throws IdentityMissingError when there is no
 * file, IdentityInvalidError when it is not an Ed25519 PKCS#8 PEM key. A file
 * mode that lets group or others read the key is reported through `onWarning`
 * (not an error: the key still works, and refusing would take a node offline).
 */
export async function loadIdentity(path: string, opts: LoadIdentityOptions = {}): Promise<Identity> {
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, { code: 'QE_IDENTITY_MODE' }))
  let st
  try {
    st = await stat(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
      throw new IdentityMissingError(`identity key ${path} does not exist (run 'quicether init' to create one)`, { cause: err })
    }
    throw new IdentityInvalidError(`cannot read identity key ${path}: ${errMessage(err)}`, { cause: err })
  }
  if (!st.isFile()) throw new IdentityInvalidError(`identity key ${path} is not a regular file`)
  if (st.size > MAX_IDENTITY_FILE_BYTES) throw new IdentityInvalidError(`identity key ${path} is too large to be a key (${st.size} bytes)`)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new IdentityInvalidError(`cannot read identity key ${path}: ${errMessage(err)}`, { cause: err })
  }
  const id = identityFromPem(text, `identity key ${path}`)
  // Only a real key is worth a warning about who can read it.
  if ((st.mode & 0o077) !== 0) {
    warn(`identity key ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it should be 0600 (chmod 600 ${path})`)
  }
  return id
}

export interface SaveIdentityOptions {
  /** Replace an existing file. Default false: an existing file is an IdentityWriteError. */
  overwrite?: boolean
}

/**
 * Writes the private key to `path` with mode 0600, creating missing parent
 * directories with mode 0700. The write goes to a temporary file that is
 * renamed into place, so a crash never leaves a half-written key.
 */
export async function saveIdentity(path: string, id: Identity, opts: SaveIdentityOptions = {}): Promise<void> {
  const dir = dirname(path)
  try {
    const created = await mkdir(dir, { recursive: true, mode: 0o700 })
    // mkdir's mode is filtered by the umask; make the directory we created exactly 0700.
    if (created !== undefined) await chmod(dir, 0o700)
  } catch (err) {
    throw new IdentityWriteError(`cannot create directory ${dir}: ${errMessage(err)}`, { cause: err })
  }
  if (!opts.overwrite && (await exists(path))) {
    throw new IdentityWriteError(`identity key ${path} already exists; refusing to overwrite it`)
  }
  try {
    await writeFileAtomic(path, id.privateKeyPem, 0o600)
  } catch (err) {
    throw new IdentityWriteError(`cannot write identity key ${path}: ${errMessage(err)}`, { cause: err })
  }
}

/** The public key as written everywhere: standard base64 of the raw 32 bytes (44 characters). */
export function publicKeyBase64(id: Identity | Buffer): string {
  const raw = Buffer.isBuffer(id) ? id : id.publicKey
  return raw.toString('base64')
}

const BASE64_32_BYTES = /^[A-Za-z0-9+/]{43}=$/

/** Parses a public key written as standard base64 of 32 bytes; throws PublicKeyInvalidError otherwise. */
export function parsePublicKey(b64: string): Buffer {
  const s = b64.trim()
  if (!BASE64_32_BYTES.test(s)) throw new PublicKeyInvalidError(`'${truncate(s)}' is not a public key (expected base64 of 32 bytes, 44 characters)`)
  const raw = Buffer.from(s, 'base64')
  // Reject non-canonical encodings (stray low bits in the last character): one key, one spelling.
  if (raw.length !== PUBLIC_KEY_LENGTH || raw.toString('base64') !== s) {
    throw new PublicKeyInvalidError(`'${truncate(s)}' is not a canonical base64 public key`)
  }
  return raw
}

/**
 * The node's overlay addresses, derived from SHA-256 of its raw public key:
 * the same key and ranges always give the same addresses. The IPv4 address is
 * never the network or broadcast address of `ipv4Cidr`; the IPv6 address is
 * never the all-zero host of `ipv6Cidr`. Host bits set in a CIDR are ignored.
 * Throws OverlayRangeError for a bad CIDR, the wrong family, or a range with
 * no usable host (an IPv4 /31 or /32, an IPv6 /128).
 */
export function deriveOverlayAddresses(publicKey: Buffer, ipv4Cidr: string, ipv6Cidr: string): { ipv4: string; ipv6: string } {
  if (!Buffer.isBuffer(publicKey) || publicKey.length !== PUBLIC_KEY_LENGTH) {
    throw new PublicKeyInvalidError(`a public key is ${PUBLIC_KEY_LENGTH} bytes, got ${Buffer.isBuffer(publicKey) ? publicKey.length : typeof publicKey}`)
  }
  const digest = BigInt('0x' + createHash('sha256').update(publicKey).digest('hex'))
  const v4 = parseRange(ipv4Cidr, 'ipv4')
  const v6 = parseRange(ipv6Cidr, 'ipv6')
  return {
    // IPv4: hosts 1 .. 2^h - 2 (skip network and broadcast).
    ipv4: pickHost(v4, digest, 2n, 1n),
    // IPv6: hosts 1 .. 2^h - 1 (skip the all-zero host, the subnet-router anycast address).
    ipv6: pickHost(v6, digest, 1n, 1n),
  }
}

interface Range {
  readonly network: bigint
  readonly hostBits: number
  readonly bits: 32 | 128
  readonly cidr: string
}

function parseRange(cidr: string, family: 'ipv4' | 'ipv6'): Range {
  const label = family === 'ipv4' ? 'IPv4' : 'IPv6'
  const valid = family === 'ipv4' ? ipaddr.IPv4.isValidCIDRFourPartDecimal(cidr) : ipaddr.IPv6.isValidCIDR(cidr)
  if (!valid) throw new OverlayRangeError(`'${truncate(cidr)}' is not an ${label} CIDR range`)
  const [addr, prefix] = ipaddr.parseCIDR(cidr)
  const bits = family === 'ipv4' ? 32 : 128
  const hostBits = bits - prefix
  const value = bytesToBigInt(addr.toByteArray())
  const network = (value >> BigInt(hostBits)) << BigInt(hostBits)
  return { network, hostBits, bits, cidr }
}

function pickHost(range: Range, digest: bigint, reserved: bigint, firstHost: bigint): string {
  const size = 1n << BigInt(range.hostBits)
  const usable = size - reserved
  if (usable < 1n) throw new OverlayRangeError(`overlay range ${range.cidr} has no room for a node address`)
  const host = firstHost + (digest % usable)
  return bigIntToAddress(range.network + host, range.bits)
}

function bytesToBigInt(bytes: number[]): bigint {
  let v = 0n
  for (const b of bytes) v = (v << 8n) | BigInt(b)
  return v
}

function bigIntToAddress(v: bigint, bits: 32 | 128): string {
  const bytes: number[] = []
  for (let i = bits / 8 - 1; i >= 0; i--) bytes.push(Number((v >> BigInt(i * 8)) & 0xffn))
  const addr = ipaddr.fromByteArray(bytes)
  return addr.toString()
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false
    throw new IdentityWriteError(`cannot check ${path}: ${errMessage(err)}`, { cause: err })
  }
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

/** "permission denied (EACCES)" from Node's "EACCES: permission denied, open '/x'". */
function errMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as NodeJS.ErrnoException).code
  const m = /^E[A-Z]+: ([^,]+)/.exec(err.message)
  return m?.[1] && code ? `${m[1]} (${code})` : err.message
}

function truncate(s: string): string {
  return s.length > 60 ? s.slice(0, 57) + '...' : s
}
