import t from 'tap'
import { readSysctl, sysctlPath, writeSysctl } from '../../src/system/sysctl.js'
import { SysctlError } from '../../src/system/errors.js'

t.test('dotted keys map to /proc/sys paths; malformed keys are refused before any I/O', async (t) => {
  t.equal(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward')
  t.equal(sysctlPath('net.ipv6.conf.all.forwarding'), '/proc/sys/net/ipv6/conf/all/forwarding')
  for (const bad of ['../../etc/passwd', 'net/ipv4/ip_forward', 'net..x', 'net', 'net.ipv4.ip_forward/../x', '']) {
    t.throws(() => sysctlPath(bad), SysctlError, JSON.stringify(bad))
  }
})

t.test('reading a real sysctl returns its trimmed value', async (t) => {
  t.match(await readSysctl('net.ipv4.ip_forward'), /^[01]$/)
})

t.test('a missing key is a SysctlError, not retryable', async (t) => {
  const err = await readSysctl('net.ipv4.no_such_key_qe').catch((e: unknown) => e)
  t.ok(err instanceof SysctlError)
  t.equal((err as SysctlError).retryable, false)
  t.equal((err as SysctlError).errno, 'ENOENT')
})

t.test('a value with a newline is refused before any write', async (t) => {
  // A key that does not exist: should the check ever break, nothing on the host changes.
  await t.rejects(writeSysctl('net.ipv4.no_such_key_qe', '1\n0'), { name: 'SysctlError', message: /malformed value/ })
})
