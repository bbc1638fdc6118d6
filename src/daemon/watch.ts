/**
 * Watches the config file and says when its content changed.
 *
 * Editors save by writing in place or by rename-replace, Ansible moves a temp
 * file over it, Kubernetes swaps a `..data` symlink beside it: so we watch the
 * file's directory (inotify, through fs.watch), debounce, then compare the
 * content's hash with what we last loaded. Any event in the directory may be
 * the one; the hash decides. A slow periodic check catches what events miss
 * (network file systems), at the cost of one small read per interval.
 *
 * Only the directory: a watch on the file itself follows its inode, and a
 * rename over the file leaves it on the old one. chokidar (used before) keeps
 * such a per-file watch beside the directory's: after the daemon's own atomic
 * write (`apply --confirm`), later in-place edits went unheard until the
 * periodic check, 10 s on, in 5 of 13 runs of test/e2e/reload.test.ts.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { Logger } from '../log.js'
import type { Subsystem } from './subsystem.js'

export interface ConfigWatcherInit {
  readonly path: string
  /** Quiet time after the last event, ms (default 150). */
  readonly debounceMs?: number
  /** Periodic content check, ms (default 10,000; 0 = off). */
  readonly periodicMs?: number
}

export class ConfigWatcher {
  readonly #path: string
  readonly #init: ConfigWatcherInit
  readonly #onChange: (text: string) => void
  readonly #log: Logger
  #watcher: FSWatcher | null = null
  #debounce: NodeJS.Timeout | null = null
  #periodic: NodeJS.Timeout | null = null
  #lastHash = ''

  constructor(init: ConfigWatcherInit, components: { onChange: (text: string) => void; log: Logger }) {
    this.#path = resolve(init.path)
    this.#init = init
    this.#onChange = components.onChange
    this.#log = components.log
  }

  /** Records the content the daemon runs now, so only a different content counts as a change. */
  setLoaded(text: string): void {
    this.#lastHash = hash(text)
  }

  async start(): Promise<void> {
    const w = watch(dirname(this.#path), () => this.poke())
    w.on('error', (err) => this.#log.warn({ err: err.message }, 'config watcher error'))
    this.#watcher = w
    const every = this.#init.periodicMs ?? 10_000
    if (every > 0) {
      this.#periodic = setInterval(() => this.poke(), every)
      this.#periodic.unref()
    }
  }

  async stop(): Promise<void> {
    if (this.#debounce) clearTimeout(this.#debounce)
    if (this.#periodic) clearInterval(this.#periodic)
    this.#debounce = this.#periodic = null
    this.#watcher?.close()
    this.#watcher = null
  }

  /** Something may have changed (a file event, SIGHUP): check after the debounce. */
  poke(): void {
    if (this.#debounce) clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => void this.#check(), this.#init.debounceMs ?? 150)
  }

  async #check(): Promise<void> {
    this.#debounce = null
    let text: string
    try {
      text = await readFile(this.#path, 'utf8')
    } catch (err) {
      // Mid-rename the file may be missing for a moment; the next event brings it back.
      this.#log.debug({ err: (err as Error).message }, 'config not readable yet')
      return
    }
    const h = hash(text)
    if (h === this.#lastHash) return
    this.#lastHash = h
    this.#onChange(text)
  }
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The watcher as a daemon subsystem: a changed file's text goes to `onChange`. */
export class WatchHost implements Subsystem<{ readonly file: string } | null> {
  readonly name = 'watch'
  readonly #path: string | null
  readonly #components: { onChange: (text: string) => void; log: Logger }
  #watcher: ConfigWatcher | null = null
  #loaded: string | null

  /** `path` null: no file (stdin, tests): nothing to watch. `loaded`: the text the node runs now. */
  constructor(init: { path: string | null; loaded: string | null }, components: { onChange: (text: string) => void; log: Logger }) {
    this.#path = init.path
    this.#loaded = init.loaded
    this.#components = components
  }

  /** Records the content the node runs now, so only a different content counts as a change. */
  setLoaded(text: string): void {
    this.#loaded = text
    this.#watcher?.setLoaded(text)
  }

  async start(): Promise<void> {
    if (this.#path === null) return
    const w = new ConfigWatcher({ path: this.#path }, this.#components)
    if (this.#loaded !== null) w.setLoaded(this.#loaded)
    await w.start()
    this.#watcher = w
  }

  async stop(): Promise<void> {
    const w = this.#watcher
    this.#watcher = null
    await w?.stop().catch(() => undefined)
  }

  async onReload(): Promise<void> {}

  status(): { readonly file: string } | null {
    return this.#path === null ? null : { file: this.#path }
  }
}
