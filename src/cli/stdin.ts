/**
 * Reading a config from stdin (`quicether validate -`), bounded: a config is
 * small, so reading stops once `limit` bytes are exceeded instead of buffering
 * whatever is piped in (`cat /dev/zero | quicether validate -` ends at once).
 */

export interface StdinText {
  /** The bytes read, at most `limit + 1` of them, decoded as UTF-8. */
  text: string
  /** More than `limit` bytes arrived (the rest was not read). */
  tooLarge: boolean
  bytes: number
}

export async function readStdinText(stdin: AsyncIterable<Buffer | string>, limit: number): Promise<StdinText> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk
    chunks.push(buf)
    bytes += buf.length
    // Leaving the loop early calls the iterator's return(), which destroys a stream.
    if (bytes > limit) break
  }
  const all = Buffer.concat(chunks)
  return { text: all.subarray(0, limit + 1).toString('utf8'), tooLarge: bytes > limit, bytes }
}
