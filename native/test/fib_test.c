/*
 * The LPM trie against its naive twin on random prefixes and addresses.
 * Prefixes are drawn from a few clusters so that nesting and shared
 * branches actually happen. Exit 0 and print "N passed, 0 failed" on success.
 */
#include "../fib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rand_addr(uint8_t family, uint8_t *addr, const uint8_t *base) {
  size_t len = family == 4 ? 4 : 16;
  for (size_t i = 0; i < len; i++) {
    addr[i] = (uint8_t)rnd();
  }
  /* Most addresses share a leading part with a cluster base. */
  if (base != NULL && rnd() % 4 != 0) {
    size_t keep = (size_t)(rnd() % (len + 1));
    memcpy(addr, base, keep);
  }
}

int main(int argc, char **argv) {
  unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
  unsigned passed = 0, failed = 0;
  uint8_t bases[8][16];
  if (argc > 2) {
    rng_state = strtoull(argv[2], NULL, 0);
  }
  for (int b = 0; b < 8; b++) {
    rand_addr(6, bases[b], NULL);
  }
  for (unsigned r = 0; r < rounds; r++) {
    size_t n = (size_t)(rnd() % 300);
    qe_fib_entry *entries = calloc(n + 1, sizeof(*entries));
    qe_fib *fib = NULL;
    unsigned bad = 0;
    if (entries == NULL) {
      return 2;
    }
    for (size_t i = 0; i < n; i++) {
      qe_fib_entry *e = &entries[i];
      e->family = rnd() % 2 ? 4 : 6;
      e->plen = (uint8_t)(rnd() % ((e->family == 4 ? 32 : 128) + 1));
      rand_addr(e->family, e->addr, bases[rnd() % 8]);
      e->value = (uint32_t)(rnd() % 50);
      /* Host bits must not matter: the naive twin sees them masked. */
      for (unsigned bit = e->plen; bit < (e->family == 4 ? 32u : 128u);
           bit++) {
        e->addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
      }
    }
    if (qe_fib_new(&fib, entries, n) != 0) {
      fprintf(stderr, "round %u: qe_fib_new failed\n", r);
      return 2;
    }
    for (int q = 0; q < 2000; q++) {
      uint8_t family = rnd() % 2 ? 4 : 6, addr[16] = {0};
      uint32_t want, got;
      if (n > 0 && rnd() % 2) {
        /* An address inside (or near) an existing prefix. */
        const qe_fib_entry *e = &entries[rnd() % n];
        family = e->family;
        rand_addr(family, addr, e->addr);
      } else {
        rand_addr(family, addr, bases[rnd() % 8]);
      }
      want = qe_fib_naive_lookup(entries, n, family, addr);
      got = family == 4 ? qe_fib_lookup4(fib, addr) : qe_fib_lookup6(fib, addr);
      if (want != got) {
        bad++;
        if (bad < 5) {
          fprintf(stderr, "round %u: family %u want %u got %u\n", r, family,
                  want, got);
        }
      }
    }
    if (bad) {
      failed++;
    } else {
      passed++;
    }
    qe_fib_del(fib);
    free(entries);
  }
  {
    /* Invalid input is refused, not half-built. */
    qe_fib_entry e = {.family = 5, .plen = 8};
    qe_fib *fib = NULL;
    if (qe_fib_new(&fib, &e, 1) == QE_ERR_INVALID && fib == NULL) {
      passed++;
    } else {
      failed++;
    }
    e = (qe_fib_entry){.family = 4, .plen = 33};
    if (qe_fib_new(&fib, &e, 1) == QE_ERR_INVALID) {
      passed++;
    } else {
      failed++;
    }
  }
  printf("%u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
