import t from 'tap'
import { SystemError } from '../../src/errors.js'
import { InvalidRecordError, LinkNotFoundError, NetlinkError, SysctlError, isTransientErrno } from '../../src/system/errors.js'

t.test('netlink errors are retryable only for transient errno', async (t) => {
  for (const e of ['EBUSY', 'EAGAIN', 'ENOBUFS', 'EINTR']) t.equal(new NetlinkError('add route', e).retryable, true, e)
  for (const e of ['EINVAL', 'EEXIST', 'ESRCH', 'ENODEV', 'EPERM', 'ENETUNREACH']) t.equal(new NetlinkError('add route', e).retryable, false, e)
  t.notOk(isTransientErrno('EINVAL'))
})

t.test('every error is a SystemError with a stable code, name and message', async (t) => {
  const errs = [new NetlinkError('del rule', 'ESRCH'), new LinkNotFoundError('qe9'), new SysctlError('net.x'), new InvalidRecordError()]
  t.same(
    errs.map((e) => e.code),
    ['QE_NETLINK', 'QE_LINK_NOT_FOUND', 'QE_SYSCTL', 'QE_INVALID_RECORD'],
  )
  for (const e of errs) {
    t.ok(e instanceof SystemError)
    t.equal(e.name, e.constructor.name)
    t.ok(e.message.length > 0)
  }
  const n = new NetlinkError('add route 10.0.0.0/8', 'EEXIST')
  t.equal(n.errno, 'EEXIST')
  t.equal(n.message, 'add route 10.0.0.0/8: EEXIST')
  t.equal(new LinkNotFoundError('qe9').retryable, false, 'a missing link is not a transient condition')
  t.equal(new InvalidRecordError().retryable, false, 'a bug is never retryable')
})
