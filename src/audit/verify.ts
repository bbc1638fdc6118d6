/**
 * Checks audit files, oldest first, line by line: valid JSON, the canonical
 * text (`line.ts`), `seq` going up by one, `prev` the hash of the line before
 * (across files), and the mac when a key is given. Stops at the first broken
 * line and names it. This catches a changed line (its mac, or the next line's
 * prev), a deleted or inserted line (seq and prev), files swapped or given out
 * of order (seq at the start of a file), and a last line cut short.
 *
 * The first line checked may start after seq 1 when older files were rotated
 * away (`keep`): its own prev cannot be checked, and `firstSeq` says so. A
 * first line with seq 1 must have the zero hash as prev.
 */
import { readFile } from 'node:fs/promises'
import { canonicalBody, hashOf, macOf, parseLine, recanonical, ZERO_HASH } from './line.js'

export interface AuditBreak {
  readonly file: string
  /** 1-based line number in that file. */
  readonly line: number
  readonly reason: string
}

export interface AuditVerifyResult {
  readonly ok: boolean
  /** Lines checked and found intact (before the broken one). */
  readonly lines: number
  readonly broken: AuditBreak | null
  /** The first line's seq (1 for a log that starts at its beginning); null when there were no lines. */
  readonly firstSeq: number | null
  /** The hash of the last intact line (what the next line's prev must be). */
  readonly lastHash: string
  /** False when no key was given: only the chain was checked. */
  readonly macChecked: boolean
}

export async function verifyAudit(files: readonly string[], key: Buffer | null): Promise<AuditVerifyResult> {
  let lines = 0
  let prevHash: string | null = null
  let prevSeq: number | null = null
  let firstSeq: number | null = null
  const done = (broken: AuditBreak | null): AuditVerifyResult => ({ ok: broken === null, lines, broken, firstSeq, lastHash: prevHash ?? ZERO_HASH, macChecked: key !== null })
  for (const file of files) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      return done({ file, line: 0, reason: `cannot read the file: ${(err as Error).message}` })
    }
    if (text === '') continue
    const rows = text.split('\n')
    const complete = rows[rows.length - 1] === ''
    if (complete) rows.pop()
    for (let i = 0; i < rows.length; i++) {
      const at = (reason: string) => done({ file, line: i + 1, reason })
      const row = rows[i]!
      if (i === rows.length - 1 && !complete) return at('the last line is cut short (no newline at its end)')
      const p = parseLine(row)
      if (!p.record) return at(p.error)
      const r = p.record
      if (recanonical(r) !== row) return at('not in canonical form (keys reordered, spaces added, or a value rewritten)')
      if (prevSeq === null) {
        firstSeq = r.seq
        if (r.seq === 1 && r.prev !== ZERO_HASH) return at('seq 1 but prev is not the zero hash (a fresh log starts with 64 zeros)')
      } else {
        if (r.seq !== prevSeq + 1) {
          const why = r.seq <= prevSeq ? 'a line inserted or repeated, or files out of order' : 'lines deleted, or files out of order or missing'
          return at(`seq ${r.seq} where ${prevSeq + 1} was expected (${why})`)
        }
        if (r.prev !== prevHash) return at(`prev does not match the hash of the line before (that line was changed, or lines were removed or inserted)`)
      }
      if (key) {
        if (r.mac === undefined) return at('no mac, but a key was given')
        const { mac: _mac, ...body } = r
        if (macOf(canonicalBody(body), key) !== r.mac) return at('mac does not match (the line was changed, or this is not its key)')
      }
      prevSeq = r.seq
      prevHash = hashOf(row)
      lines++
    }
  }
  return done(null)
}
