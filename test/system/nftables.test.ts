import t from 'tap'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readListening } from '../../src/system/nftables.js'

t.test('listening sockets from /proc/net: TCP in LISTEN, bound UDP, both families', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'qe-procnet-'))
  const head = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
  await writeFile(join(dir, 'tcp'), head +
    '   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n' +
    '   1: 0100007F:1F90 0200007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n')
  await writeFile(join(dir, 'udp6'), head + '   0: 00000000000000000000000000000000:1D13 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0 0\n')
  t.same(await readListening(dir), [
    { proto: 'tcp', family: 4, address: '127.0.0.1', port: 22 },
    { proto: 'udp', family: 6, address: '::', port: 7443 },
  ], 'an established connection is not a listener')
})
