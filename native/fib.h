/*
 * Forwarding table: longest-prefix match of an IPv4 or IPv6 address to a
 * 32-bit value (the engine stores a route-key index there).
 *
 * A table is immutable once built: the control plane builds a complete new
 * one on its own thread and the worker swaps a pointer (no locks on the
 * lookup path). Lookups allocate nothing and may run on any thread.
 */
#ifndef QE_FIB_H
#define QE_FIB_H

#include "qe.h"

#define QE_FIB_NONE UINT32_MAX

typedef struct qe_fib_entry {
  uint8_t family; /* 4 or 6 */
  uint8_t plen;   /* 0..32 or 0..128 */
  uint8_t addr[16];
  uint32_t value; /* never QE_FIB_NONE */
} qe_fib_entry;

typedef struct qe_fib qe_fib;

/*
 * Builds a table from `n` entries. Host bits beyond `plen` are ignored; when
 * two entries share a prefix the later one wins.
 * Returns 0, QE_ERR_INVALID (family, plen or value) or QE_ERR_NOMEM.
 */
int qe_fib_new(qe_fib **pfib, const qe_fib_entry *entries, size_t n);
void qe_fib_del(qe_fib *fib);

/* The value of the longest matching prefix, or QE_FIB_NONE. */
uint32_t qe_fib_lookup4(const qe_fib *fib, const uint8_t addr[4]);
uint32_t qe_fib_lookup6(const qe_fib *fib, const uint8_t addr[16]);
size_t qe_fib_size(const qe_fib *fib);

/* The slow twin: a linear scan over the same entries, for tests. */
uint32_t qe_fib_naive_lookup(const qe_fib_entry *entries, size_t n,
                             uint8_t family, const uint8_t *addr);

#endif /* QE_FIB_H */
