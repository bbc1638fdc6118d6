/**
 * `quicether schema`: print the JSON Schema of the config file, for editors
 * (yaml-language-server) and other tools. It is the schema the loader
 * validates with; the published copy is `schemas/quicether.schema.json`
 * in the package (found from the package root, never the cwd).
 */
import type { Command } from 'commander'
import { SCHEMA } from '../config/index.js'
import { EXIT_OK, PACKAGE_ROOT, type CliContext } from './context.js'

/** The published schema file, for `$schema` references (init's starter config). */
export const SCHEMA_FILE = new URL('schemas/quicether.schema.json', PACKAGE_ROOT)

export function registerSchema(program: Command, ctx: CliContext): void {
  program
    .command('schema')
    .summary('print the JSON Schema of the config file')
    .description('Print the JSON Schema (2020-12) that config files are validated against.')
    .addHelpText(
      'after',
      `
Examples:
  $ quicether schema > quicether.schema.json
  # then, as the first line of a config, for editor completion and checks:
  # yaml-language-server: $schema=./quicether.schema.json`,
    )
    .action(() => {
      ctx.io.stdout.write(JSON.stringify(SCHEMA, null, 2) + '\n')
      ctx.exitCode = EXIT_OK
    })
}
