import t from 'tap'
import { ConfigReadError, QeError, SystemError, isQeError } from '../src/errors.js'

t.test('errors carry a stable code, a name and a default message', async (t) => {
  const e = new ConfigReadError()
  t.ok(e instanceof QeError)
  t.equal(e.code, 'QE_CONFIG_READ')
  t.equal(e.name, 'ConfigReadError')
  t.ok(e.message.length > 0)
  t.equal(e.retryable, false)
  t.ok(isQeError(e))
  t.notOk(isQeError(new Error('x')))
})

t.test('retryable is set by the thrower, false by default', async (t) => {
  t.equal(new SystemError('EBUSY', { retryable: true }).retryable, true)
  t.equal(new SystemError().retryable, false)
})
