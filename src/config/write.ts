/**
 * Writing a config file: into a temporary file beside it, fsync, rename over
 * it. A crash never leaves half a config, and a watcher (our own daemon's,
 * an editor's) sees one complete replacement. An existing file keeps its
 * mode; a new one is 0644 (configs hold public keys only; the identity key
 * is a separate 0600 file).
 */
import { stat } from 'node:fs/promises'
import { writeFileAtomic } from '../atomic-file.js'
import { ConfigWriteError } from '../errors.js'

export async function writeConfigFile(path: string, text: string): Promise<void> {
  try {
    const mode = await stat(path).then((s) => s.mode & 0o777, () => 0o644)
    await writeFileAtomic(path, text, mode)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigWriteError(`cannot write ${path}: ${code ? `${(err as Error).message.replace(/^E[A-Z]+: /, '').split(',')[0]} (${code})` : String(err)}`, { cause: err })
  }
}
