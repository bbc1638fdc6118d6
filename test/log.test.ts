import t from 'tap'
import { mkdtempSync, openSync, closeSync, fstatSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger, journalPriority, journalWanted } from '../src/log.js'

const tmp = mkdtempSync(join(tmpdir(), 'qe-log-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

function logAll(file: string, journal?: boolean): string[] {
  const log = createLogger({ level: 'trace', destination: file, ...(journal === undefined ? {} : { journal }) })
  log.trace('t')
  log.debug('d')
  log.info({ peer: 'x' }, 'i')
  log.child({ component: 'engine' }).warn('w')
  log.error('e')
  log.fatal('f')
  log.flush()
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
}

t.test('journal: each line gets the priority of its level, and the JSON after it is intact', async (t) => {
  const lines = logAll(join(tmp, 'journal.log'), true)
  t.same(lines.map((l) => /^<(\d)>/.exec(l)?.[1]), ['7', '7', '6', '4', '3', '2'])
  const parsed = lines.map((l) => JSON.parse(l.replace(/^<\d>/, '')) as { level: number; msg: string; component?: string; peer?: string })
  t.same(parsed.map((p) => p.msg), ['t', 'd', 'i', 'w', 'e', 'f'])
  t.equal(parsed[2]?.peer, 'x')
  t.equal(parsed[3]?.component, 'engine', 'children too')
})

t.test('not journal: plain pino JSON lines, as before', async (t) => {
  const lines = logAll(join(tmp, 'plain.log'), false)
  t.equal(lines.length, 6)
  for (const l of lines) t.match(l, /^\{"level":\d+,"time":"[^"]+","pid":\d+,/)
})

t.test('priorities', async (t) => {
  t.same([60, 50, 40, 30, 20, 10].map(journalPriority), [2, 3, 4, 6, 7, 7])
})

t.test('when: QUICETHER_LOG_FORMAT, or JOURNAL_STREAM naming the very fd', async (t) => {
  t.equal(journalWanted(2, {}), false)
  t.equal(journalWanted('/var/log/qe.log', { QUICETHER_LOG_FORMAT: 'journal' }), true)
  t.equal(journalWanted(2, { QUICETHER_LOG_FORMAT: 'json', JOURNAL_STREAM: '1:1' }), false)
  t.equal(journalWanted('/var/log/qe.log', { JOURNAL_STREAM: '1:1' }), false, 'a file is not the journal')
  const fd = openSync(join(tmp, 'stream'), 'w')
  t.teardown(() => closeSync(fd))
  const st = fstatSync(fd)
  t.equal(journalWanted(fd, { JOURNAL_STREAM: `${st.dev}:${st.ino}` }), false, 'only stdout and stderr')
  const err = fstatSync(2)
  t.equal(journalWanted(2, { JOURNAL_STREAM: `${err.dev}:${err.ino}` }), true, 'stderr is the journal stream')
  t.equal(journalWanted(2, { JOURNAL_STREAM: `${err.dev}:${err.ino + 1}` }), false, 'inherited, but stderr goes elsewhere')
  t.equal(journalWanted(1, { JOURNAL_STREAM: `${err.dev}:${err.ino}` }), fstatSync(1).ino === err.ino && fstatSync(1).dev === err.dev)
})
