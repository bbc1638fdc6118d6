import t from 'tap'
import { checkNodeName, isLabName, isRunId, linkIfname, newRunId, nodeNetns, routerNetns, runDir, runIdOf } from '../../src/lab/names.js'

t.test('run ids are 4 hex digits and differ between runs', async (t) => {
  const ids = new Set(Array.from({ length: 50 }, () => newRunId()))
  for (const id of ids) t.ok(isRunId(id), id)
  t.ok(ids.size > 40, 'random ids rarely repeat')
  t.notOk(isRunId('12345'))
  t.notOk(isRunId('ABCD'))
})

t.test('every name carries the prefix and the run id', async (t) => {
  t.equal(nodeNetns('3f2a', 'alpha'), 'qel-3f2a-alpha')
  t.equal(routerNetns('3f2a', 7), 'qel-3f2a-r7')
  t.equal(linkIfname('3f2a', 0, 'a'), 'qel-3f2a-l0a')
  t.equal(runDir('3f2a', '/tmp'), '/tmp/qel-3f2a')
  for (const n of [nodeNetns('3f2a', 'alpha'), routerNetns('3f2a', 1), linkIfname('3f2a', 255, 'rb')]) {
    t.equal(runIdOf(n), '3f2a')
    t.ok(isLabName(n, '3f2a'))
    t.notOk(isLabName(n, '0000'), 'not another run')
    t.ok(isLabName(n), 'any run')
  }
})

t.test('interface names fit the kernel limit of 15 characters for every link and end', async (t) => {
  for (const end of ['a', 'b', 'ra', 'rb', 'da', 'db'] as const) t.ok(linkIfname('ffff', 255, end).length <= 15, end)
  t.throws(() => linkIfname('ffff', 256, 'a'), { code: 'QE_LAB_SPEC' })
  t.throws(() => linkIfname('ffff', -1, 'a'), { code: 'QE_LAB_SPEC' })
})

t.test('foreign names are not lab names', async (t) => {
  for (const n of ['qet-1234-a', 'eth0', 'qe0', 'qel-', 'qel-xyz1-a', 'qel-12345-a']) t.notOk(isLabName(n), n)
})

t.test('node names: lowercase, start with a letter, not a router name', async (t) => {
  for (const ok of ['alpha', 'site-2', 'a', 'x123456789012345678z']) t.doesNotThrow(() => checkNodeName(ok), ok)
  for (const bad of ['Alpha', '2site', 'a_b', '', 'site-', 'x1234567890123456789zz', 'r0', 'r12']) {
    t.throws(() => checkNodeName(bad), { code: 'QE_LAB_SPEC' }, bad)
  }
})
