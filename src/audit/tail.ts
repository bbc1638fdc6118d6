/** The first and last line of a file without reading all of it (audit files grow to `rotate.size`). */
import { open } from 'node:fs/promises'

const CHUNK = 64 * 1024

export interface FileEnds {
  readonly size: number
  /** The first line (no newline); null for an empty file. */
  readonly first: string | null
  /** The last line (no newline); null for an empty file. */
  readonly last: string | null
  /** False when the file does not end in a newline: its last line was cut short. */
  readonly complete: boolean
}

/** The ends of `path`; null when it does not exist. */
export async function readEnds(path: string): Promise<FileEnds | null> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  try {
    const { size } = await fh.stat()
    if (size === 0) return { size, first: null, last: null, complete: true }
    // Last line: read backwards until a newline before the final byte.
    let tail = Buffer.alloc(0)
    let pos = size
    let cut = -1
    while (pos > 0) {
      const len = Math.min(CHUNK, pos)
      pos -= len
      const b = Buffer.alloc(len)
      await fh.read(b, 0, len, pos)
      tail = Buffer.concat([b, tail])
      cut = tail.lastIndexOf(0x0a, tail.length - 2)
      if (cut >= 0) break
    }
    const complete = tail[tail.length - 1] === 0x0a
    const lastBuf = tail.subarray(cut + 1, complete ? tail.length - 1 : tail.length)
    // First line: read forwards until a newline.
    let head = Buffer.alloc(0)
    let at = 0
    let nl = -1
    while (at < size && nl < 0) {
      const len = Math.min(CHUNK, size - at)
      const b = Buffer.alloc(len)
      await fh.read(b, 0, len, at)
      at += len
      head = Buffer.concat([head, b])
      nl = head.indexOf(0x0a)
    }
    const first = head.subarray(0, nl < 0 ? head.length : nl).toString('utf8')
    return { size, first, last: lastBuf.toString('utf8'), complete }
  } finally {
    await fh.close()
  }
}
