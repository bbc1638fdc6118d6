/*
 * The slow twin of fib.c: a linear scan, obviously right, used only by the
 * tests that check the trie against it on random input.
 */
#include "fib.h"

static int naive_match(const qe_fib_entry *e, const uint8_t *addr) {
  unsigned full = e->plen / 8, rest = e->plen % 8;
  for (unsigned i = 0; i < full; i++) {
    if (e->addr[i] != addr[i]) {
      return 0;
    }
  }
  if (rest) {
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    if ((e->addr[full] & m) != (addr[full] & m)) {
      return 0;
    }
  }
  return 1;
}

uint32_t qe_fib_naive_lookup(const qe_fib_entry *entries, size_t n,
                             uint8_t family, const uint8_t *addr) {
  uint32_t best = QE_FIB_NONE;
  int best_plen = -1;
  for (size_t i = 0; i < n; i++) {
    const qe_fib_entry *e = &entries[i];
    if (e->family != family || !naive_match(e, addr)) {
      continue;
    }
    if ((int)e->plen >= best_plen) {
      best_plen = e->plen;
      best = e->value;
    }
  }
  return best;
}
