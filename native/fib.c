/*
 * Path-compressed binary trie, one per family, stored in one node array.
 * Addresses are held as two host-order 64-bit words (IPv4 in the top 32 bits
 * of `hi`) so that a prefix test is a mask and a compare.
 */
#include "fib.h"

#include <stdlib.h>
#include <string.h>

typedef struct qe_fib_node {
  uint64_t hi, lo; /* prefix, host bits zero */
  int32_t child[2];
  uint32_t value; /* QE_FIB_NONE for a branch-only node */
  uint8_t plen;
} qe_fib_node;

struct qe_fib {
  qe_fib_node *nodes;
  size_t nnodes, cap, nentries;
  int32_t root4, root6;
};

static uint64_t load64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) {
    v = (v << 8) | p[i];
  }
  return v;
}

static void addr_words(uint8_t family, const uint8_t *addr, uint64_t *hi,
                       uint64_t *lo) {
  if (family == 4) {
    *hi = ((uint64_t)addr[0] << 56) | ((uint64_t)addr[1] << 48) |
          ((uint64_t)addr[2] << 40) | ((uint64_t)addr[3] << 32);
    *lo = 0;
  } else {
    *hi = load64(addr);
    *lo = load64(addr + 8);
  }
}

static uint64_t mask64(unsigned bits) {
  return bits == 0 ? 0 : bits >= 64 ? UINT64_MAX : ~(UINT64_MAX >> bits);
}

static void mask_words(unsigned plen, uint64_t *hi, uint64_t *lo) {
  *hi &= mask64(plen > 64 ? 64 : plen);
  *lo &= mask64(plen > 64 ? plen - 64 : 0);
}

static int prefix_match(const qe_fib_node *n, uint64_t hi, uint64_t lo) {
  unsigned p = n->plen;
  return ((hi & mask64(p > 64 ? 64 : p)) == n->hi) &&
         ((lo & mask64(p > 64 ? p - 64 : 0)) == n->lo);
}

static unsigned bit_at(uint64_t hi, uint64_t lo, unsigned i) {
  return i < 64 ? (unsigned)(hi >> (63 - i)) & 1
                : (unsigned)(lo >> (127 - i)) & 1;
}

/* Number of leading bits equal in (a) and (b), at most `max`. */
static unsigned common_bits(uint64_t ahi, uint64_t alo, uint64_t bhi,
                            uint64_t blo, unsigned max) {
  unsigned n;
  uint64_t x = ahi ^ bhi;
  if (x) {
    n = (unsigned)__builtin_clzll(x);
  } else {
    x = alo ^ blo;
    n = 64 + (x ? (unsigned)__builtin_clzll(x) : 64);
  }
  return n < max ? n : max;
}

static int32_t node_add(qe_fib *fib, uint64_t hi, uint64_t lo, uint8_t plen,
                        uint32_t value) {
  qe_fib_node *n = &fib->nodes[fib->nnodes];
  *n = (qe_fib_node){
      .hi = hi, .lo = lo, .child = {-1, -1}, .value = value, .plen = plen};
  return (int32_t)fib->nnodes++;
}

static void fib_insert(qe_fib *fib, int32_t *link, uint64_t hi, uint64_t lo,
                       uint8_t plen, uint32_t value) {
  for (;;) {
    if (*link < 0) {
      *link = node_add(fib, hi, lo, plen, value);
      return;
    }
    qe_fib_node *n = &fib->nodes[*link];
    unsigned lim = plen < n->plen ? plen : n->plen;
    unsigned common = common_bits(hi, lo, n->hi, n->lo, lim);
    if (common == n->plen) {
      if (n->plen == plen) {
        n->value = value;
        return;
      }
      link = &n->child[bit_at(hi, lo, n->plen)];
      continue;
    }
    int32_t old = *link;
    uint64_t ohi = n->hi, olo = n->lo;
    if (common == plen) {
      /* The new prefix covers the existing node: it becomes its parent. */
      int32_t idx = node_add(fib, hi, lo, plen, value);
      fib->nodes[idx].child[bit_at(ohi, olo, plen)] = old;
      *link = idx;
      return;
    }
    uint64_t bhi = hi, blo = lo;
    mask_words(common, &bhi, &blo);
    int32_t branch = node_add(fib, bhi, blo, (uint8_t)common, QE_FIB_NONE);
    int32_t leaf = node_add(fib, hi, lo, plen, value);
    fib->nodes[branch].child[bit_at(hi, lo, common)] = leaf;
    fib->nodes[branch].child[bit_at(ohi, olo, common)] = old;
    *link = branch;
    return;
  }
}

int qe_fib_new(qe_fib **pfib, const qe_fib_entry *entries, size_t n) {
  qe_fib *fib;
  for (size_t i = 0; i < n; i++) {
    const qe_fib_entry *e = &entries[i];
    if ((e->family != 4 && e->family != 6) ||
        e->plen > (e->family == 4 ? 32 : 128) || e->value == QE_FIB_NONE) {
      return QE_ERR_INVALID;
    }
  }
  if (n > (size_t)INT32_MAX / 2 - 1) {
    return QE_ERR_INVALID;
  }
  fib = calloc(1, sizeof(*fib));
  if (fib == NULL) {
    goto fail;
  }
  fib->cap = 2 * n + 1;
  fib->nodes = calloc(fib->cap, sizeof(qe_fib_node));
  if (fib->nodes == NULL) {
    goto fail;
  }
  fib->root4 = fib->root6 = -1;
  fib->nentries = n;
  for (size_t i = 0; i < n; i++) {
    const qe_fib_entry *e = &entries[i];
    uint64_t hi, lo;
    addr_words(e->family, e->addr, &hi, &lo);
    mask_words(e->plen, &hi, &lo);
    fib_insert(fib, e->family == 4 ? &fib->root4 : &fib->root6, hi, lo,
               e->plen, e->value);
  }
  *pfib = fib;
  return 0;
fail:
  free(fib);
  return QE_ERR_NOMEM;
}

void qe_fib_del(qe_fib *fib) {
  if (fib == NULL) {
    return;
  }
  free(fib->nodes);
  free(fib);
}

static uint32_t fib_lookup(const qe_fib *fib, int32_t cur, uint64_t hi,
                           uint64_t lo, unsigned maxbits) {
  uint32_t best = QE_FIB_NONE;
  while (cur >= 0) {
    const qe_fib_node *n = &fib->nodes[cur];
    if (!prefix_match(n, hi, lo)) {
      break;
    }
    if (n->value != QE_FIB_NONE) {
      best = n->value;
    }
    if (n->plen >= maxbits) {
      break;
    }
    cur = n->child[bit_at(hi, lo, n->plen)];
  }
  return best;
}

uint32_t qe_fib_lookup4(const qe_fib *fib, const uint8_t addr[4]) {
  uint64_t hi, lo;
  if (fib == NULL) {
    return QE_FIB_NONE;
  }
  addr_words(4, addr, &hi, &lo);
  return fib_lookup(fib, fib->root4, hi, lo, 32);
}

uint32_t qe_fib_lookup6(const qe_fib *fib, const uint8_t addr[16]) {
  uint64_t hi, lo;
  if (fib == NULL) {
    return QE_FIB_NONE;
  }
  addr_words(6, addr, &hi, &lo);
  return fib_lookup(fib, fib->root6, hi, lo, 128);
}

size_t qe_fib_size(const qe_fib *fib) {
  return fib == NULL ? 0 : fib->nentries;
}
