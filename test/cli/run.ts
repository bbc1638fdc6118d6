// Shared by the CLI tests: run `main()` in-process with captured output.
import { Readable } from 'node:stream'
import { main } from '../../src/cli/main.js'

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export async function run(args: string[], stdin: string | Buffer = ''): Promise<RunResult> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    stdin: Readable.from([Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin)]),
  })
  return { code, stdout, stderr }
}

/** 1-based line and column of the first occurrence of `needle` in `text`. */
export function positionOf(text: string, needle: string): { line: number; col: number } {
  const i = text.indexOf(needle)
  if (i < 0) throw new Error(`'${needle}' is not in the text`)
  const before = text.slice(0, i).split('\n')
  return { line: before.length, col: (before[before.length - 1] ?? '').length + 1 }
}

export function lines(s: string): string[] {
  return s.split('\n').filter((l) => l !== '')
}
