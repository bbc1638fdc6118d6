import t from 'tap'
import { iperfClientArgs } from '../../src/lab/bond-transfer.js'

t.test('iperf3 client: 0.1 s intervals, JSON, congestion control and source address when asked', async (t) => {
  t.same(iperfClientArgs({ to: '10.252.0.2', port: 5201, seconds: 10, streams: 4, congestion: 'cubic' }), ['-c', '10.252.0.2', '-p', '5201', '-t', '10', '-P', '4', '-i', '0.1', '-J', '-C', 'cubic'])
  t.same(iperfClientArgs({ to: '10.251.1.130', port: 5211, seconds: 5, streams: 1, congestion: null, bind: '10.251.1.1' }), ['-c', '10.251.1.130', '-p', '5211', '-t', '5', '-P', '1', '-i', '0.1', '-J', '-B', '10.251.1.1'])
})
