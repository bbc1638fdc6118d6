import t from 'tap'
import { closest, editDistance, suggestKey, toKebab } from '../../src/config/suggest.js'

t.test('edit distance counts adjacent swaps as one', async (t) => {
  t.equal(editDistance('subnets', 'subnets'), 0)
  t.equal(editDistance('subnet', 'subnets'), 1)
  t.equal(editDistance('sbunets', 'subnets'), 1)
  t.equal(editDistance('', 'abc'), 3)
  t.equal(editDistance('kitten', 'sitting'), 3)
})

t.test('closest stays within a distance that grows with the word', async (t) => {
  t.equal(closest('gatway', ['client', 'gateway', 'bootstrap']), 'gateway')
  t.equal(closest('xyz', ['client', 'gateway']), undefined)
})

t.test('key suggestions', async (t) => {
  const top = ['node', 'network', 'subnets', 'routes', 'interfaces', 'multipath']
  t.match(suggestKey('advertize-subnets', top), /'subnets'/, 'a misspelt alias')
  t.match(suggestKey('advertise-subnets', top), /'subnets'/, 'an alias')
  t.match(suggestKey('uplinks', top), /'interfaces'/)
  t.match(suggestKey('rotues', top), /'routes'/, 'a typo')
  t.match(suggestKey('stateDir', ['name', 'state-dir']), /'state-dir'\? \(keys are kebab-case\)/)
  t.match(suggestKey('state_dir', ['name', 'state-dir']), /'state-dir'/)
  const elsewhere = new Map([['scheduler', ['multipath']]])
  t.match(suggestKey('scheduler', top, elsewhere), /'multipath\.scheduler'/)
  t.equal(suggestKey('zzzzzz', top, elsewhere), undefined)
  t.equal(toKebab('requireTwoFa'), 'require-two-fa')
})
