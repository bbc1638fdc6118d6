/**
 * The loader: text or file → `LoadResult`. See index.ts for the pipeline.
 */
import { open } from 'node:fs/promises'
import { ConfigReadError } from '../errors.js'
import type { Diagnostic } from './diagnostics.js'
import { hasErrors, sortDiagnostics } from './diagnostics.js'
import type { LoadOptions, LoadResult } from './index.js'
import { clearIpCaches } from '../net/index.js'
import { normalize } from './normalize.js'
import { writeOverrides } from './overrides.js'
import { formatBytes, MAX_CONFIG_BYTES, parseConfigText } from './parse.js'
import { formatPath } from './positions.js'
import type { Path } from './positions.js'
import { checkRules } from './rules.js'
import { checkSchema } from './schema.js'
import { checkPolicyTests } from '../policy/tests.js'

export { MAX_CONFIG_BYTES }

/** Parse, validate and normalize config text. Never throws for bad content. */
export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  clearIpCaches()
  const parsed = parseConfigText(text, file)
  if (!parsed.ok) return { ok: false, diagnostics: sortDiagnostics(parsed.diagnostics) }
  const { data, positions } = parsed
  const diagnostics: Diagnostic[] = [...parsed.diagnostics]
  writeOverrides(data, opts.overrides ?? [], positions)

  const make = (path: Path, at: 'key' | 'value', severity: 'error' | 'warning', code: string, message: string): Diagnostic => {
    const loc = positions.locate(path, at)
    return { file: loc.file, line: loc.line, col: loc.col, path: formatPath(path), severity, code, message }
  }

  // Schema first; then the rules, except where the schema already found something at or above
  // the same place (one problem, one message).
  const flagged = new Set<string>()
  for (const p of checkSchema(data)) {
    flagged.add(formatPath(p.path))
    diagnostics.push(make(p.path, p.at, 'error', p.code, p.message))
  }
  for (const d of parsed.diagnostics) flagged.add(d.path)
  for (const p of checkRules(data, positions)) {
    if (coveredBy(p.path, flagged)) continue
    diagnostics.push(make(p.path, p.at, p.severity, p.code, p.message))
  }
  sortDiagnostics(diagnostics)
  if (hasErrors(diagnostics)) return { ok: false, diagnostics }
  const config = normalize(data)
  // The policy's own tests: a config whose policy breaks what they promise is not applied.
  const failed = checkPolicyTests(config)
  if (failed.length > 0) {
    for (const p of failed) diagnostics.push(make([...p.path], 'value', 'error', p.code, p.message))
    sortDiagnostics(diagnostics)
    return { ok: false, diagnostics }
  }
  return { ok: true, config, raw: data, diagnostics }
}

function coveredBy(path: Path, flagged: ReadonlySet<string>): boolean {
  if (flagged.size === 0) return false
  for (let n = path.length; n >= 1; n--) if (flagged.has(formatPath(path.slice(0, n)))) return true
  return false
}

/**
 * Read and load a config file. Throws `ConfigReadError` (src/errors.ts) when the file cannot
 * be read (missing, a directory, no permission). `-` (stdin) is the caller's business.
 * Reads at most MAX_CONFIG_BYTES + 1 bytes, so a huge file or a device is refused fast.
 */
export async function loadConfigFile(file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const read = await readConfigFile(file)
  return read.ok ? loadConfigText(read.text, file, opts) : read
}

/**
 * Read a config file's text, for a loader of one's own (`makeLoader`). A file too large
 * or not UTF-8 is a failed load with its diagnostic; one that cannot be read at all
 * throws `ConfigReadError`, as for `loadConfigFile`.
 */
export async function readConfigFile(file: string): Promise<{ ok: true; text: string } | { ok: false; diagnostics: Diagnostic[] }> {
  const read = await readLimited(file)
  if (read.tooLarge) {
    const size = read.size > MAX_CONFIG_BYTES ? formatBytes(read.size) : `more than ${formatBytes(MAX_CONFIG_BYTES)}`
    return { ok: false, diagnostics: [{ file, line: 1, col: 1, path: '', severity: 'error', code: 'too-large', message: `file is too large (${size}; the limit is ${formatBytes(MAX_CONFIG_BYTES)})` }] }
  }
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(read.bytes) }
  } catch {
    return { ok: false, diagnostics: [{ file, line: 1, col: 1, path: '', severity: 'error', code: 'not-text', message: 'not a text file (it is not valid UTF-8)' }] }
  }
}

async function readLimited(file: string): Promise<{ bytes: Uint8Array; size: number; tooLarge: boolean }> {
  let fh
  try {
    fh = await open(file, 'r')
  } catch (err) {
    throw readError(file, err)
  }
  try {
    const st = await fh.stat()
    if (st.isDirectory()) throw new ConfigReadError(`cannot read ${file}: it is a directory`)
    if (st.isFile() && st.size > MAX_CONFIG_BYTES) return { bytes: new Uint8Array(), size: st.size, tooLarge: true }
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1)
    let got = 0
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, null)
      if (bytesRead === 0) break
      got += bytesRead
    }
    if (got > MAX_CONFIG_BYTES) return { bytes: new Uint8Array(), size: st.isFile() ? st.size : got, tooLarge: true }
    return { bytes: buf.subarray(0, got), size: got, tooLarge: false }
  } catch (err) {
    if (err instanceof ConfigReadError) throw err
    throw readError(file, err)
  } finally {
    await fh.close()
  }
}

function readError(file: string, err: unknown): ConfigReadError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  const why =
    code === 'ENOENT' ? 'no such file' :
    code === 'EACCES' || code === 'EPERM' ? 'permission denied' :
    code === 'EISDIR' ? 'it is a directory' :
    code === 'ENOTDIR' ? 'a parent of it is not a directory' :
    code === 'ELOOP' ? 'too many symbolic links' :
    (err as Error | undefined)?.message ?? String(err)
  return new ConfigReadError(`cannot read ${file}: ${why}`, { cause: err })
}
