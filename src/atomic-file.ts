/**
 * The one way QuicEther writes a file a reader may be reading: a temporary
 * file beside it (pid and random in its name, opened exclusively), fsync,
 * rename over the old one, so a reader sees the old file or the new one,
 * never half; a crash leaves at most a stray `.tmp`. A missing parent
 * directory is created with mode 0700. Errors are the system's own (errno);
 * callers wrap them in their QeError.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const dir = dirname(path)
  const created = await mkdir(dir, { recursive: true, mode: 0o700 })
  // mkdir's mode is filtered by the umask: make the directory we created exactly 0700.
  if (created !== undefined) await chmod(dir, 0o700)
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fh = await open(tmp, 'wx', mode)
    try {
      await fh.writeFile(text, 'utf8')
      await fh.chmod(mode)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
}
