/**
 * Modules that another part of the build provides later (the lab commands,
 * the daemon) are imported on demand, so a build without them still has a
 * working CLI. Absent means neither the compiled `.js` nor, when running from
 * source, the `.ts` file exists; a module that exists but fails to load is a
 * bug and its error propagates.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** `url` names the `.js` module, as an import would. */
export async function importOptional<T>(url: URL): Promise<T | undefined> {
  const js = fileURLToPath(url)
  const ts = js.replace(/\.js$/, '.ts')
  if (!existsSync(js) && !existsSync(ts)) return undefined
  return (await import(url.href)) as T
}
