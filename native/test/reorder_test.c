/*
 * The reorder buffer (reorder.c) against a naive model with the same policy
 * (release in order; a gap is given up after the timeout or when the held
 * bytes overflow; late packets are delivered at once; duplicates dropped),
 * on scripted arrivals: random local shuffles, losses, duplicates, bursts
 * of delay, with a fake clock and 31-bit sequence numbers that wrap around 2^31.
 * Also checks invariants on its own: each packet delivered at most once,
 * delivery in order except the ones counted late.
 */
#include "../reorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 20000
#define SLOT 64

static uint32_t base;
static uint32_t out_real[4 * N], out_model[4 * N];
static size_t nreal, nmodel;

static void deliver_real(void *ud, const uint8_t *pkt, size_t len) {
  uint32_t seq;
  (void)ud;
  if (len < 4) {
    abort();
  }
  memcpy(&seq, pkt, 4);
  /* the payload is the sequence number repeated: check it survived */
  for (size_t i = 4; i + 4 <= len; i += 4) {
    uint32_t x;
    memcpy(&x, pkt + i, 4);
    if (x != seq) {
      fprintf(stderr, "payload corrupted\n");
      exit(1);
    }
  }
  out_real[nreal++] = seq;
}

/* ---- the naive model: indices relative to `base`, no rings ---- */
typedef struct model {
  int started;
  int64_t next;
  int held[N + 10];
  size_t len[N + 10];
  int done[N + 10];
  size_t nheld, held_bytes, max_bytes;
  uint64_t gap_since, timeout;
  uint64_t reordered, late, dropped;
} model;

static void m_out(model *m, int64_t i) {
  m->done[i] = 1;
  out_model[nmodel++] = (base + (uint32_t)i) & QE_RB_SEQ_MASK;
}

static void m_run(model *m, uint64_t ts) {
  while (m->next < N && m->held[m->next]) {
    m->held[m->next] = 0;
    m->nheld--;
    m->held_bytes -= m->len[m->next];
    m_out(m, m->next);
    m->next++;
  }
  if (m->nheld) {
    m->gap_since = ts;
  }
}

static void m_skip(model *m, uint64_t ts) {
  while (m->nheld && !m->held[m->next]) {
    m->next++;
  }
  m_run(m, ts);
}

static void m_push(model *m, int64_t i, size_t len, uint64_t ts) {
  if (!m->started) {
    m->started = 1;
    m->next = i;
  }
  if (i - m->next >= QE_RB_SLOTS) {
    /* far ahead: everything held is given up, the window restarts */
    while (m->nheld) {
      m_skip(m, ts);
    }
    m->next = i;
  }
  if (i < m->next) {
    if (m->done[i]) {
      m->dropped++;
      return;
    }
    m->late++;
    m_out(m, i);
    return;
  }
  if (i == m->next) {
    m_out(m, i);
    m->next++;
    m_run(m, ts);
    return;
  }
  if (m->held[i]) {
    m->dropped++;
    return;
  }
  m->held[i] = 1;
  m->len[i] = len;
  if (m->nheld++ == 0) {
    m->gap_since = ts;
  }
  m->held_bytes += len;
  m->reordered++;
  while (m->held_bytes > m->max_bytes && m->nheld) {
    m_skip(m, ts);
  }
}

static void m_tick(model *m, uint64_t ts) {
  while (m->nheld && ts >= m->gap_since + m->timeout) {
    uint64_t before = m->gap_since;
    m_skip(m, ts);
    if (m->nheld && m->gap_since == before) {
      break;
    }
  }
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int run(int round, size_t max_bytes, uint64_t timeout, int shuffle,
               int loss_pct, int dup_pct) {
  static int64_t order[2 * N];
  static model m;
  qe_reorder rb;
  size_t norder = 0;
  uint64_t ts = 1000000;
  uint8_t pkt[SLOT];
  memset(&m, 0, sizeof(m));
  m.max_bytes = max_bytes;
  m.timeout = timeout;
  nreal = nmodel = 0;
  base = QE_RB_SEQ_MASK - (uint32_t)(rnd() % 3000); /* wraps */
  if (qe_reorder_init(&rb, SLOT, max_bytes, timeout) != 0) {
    return 1;
  }
  /* The script: 0..N-1, locally shuffled, some lost, some twice. */
  for (int64_t i = 0; i < N; i++) {
    if ((int)(rnd() % 100) < loss_pct) {
      continue;
    }
    order[norder++] = i;
    if ((int)(rnd() % 100) < dup_pct) {
      order[norder++] = i;
    }
  }
  for (size_t i = 0; i < norder && shuffle > 0; i++) {
    size_t j = i + rnd() % (size_t)shuffle;
    if (j < norder) {
      int64_t x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
  }
  for (size_t k = 0; k < norder; k++) {
    int64_t i = order[k];
    uint32_t seq = (base + (uint32_t)i) & QE_RB_SEQ_MASK;
    size_t len = 4 + 4 * (rnd() % ((SLOT - 4) / 4 + 1));
    for (size_t o = 0; o + 4 <= len; o += 4) {
      memcpy(pkt + o, &seq, 4);
    }
    ts += rnd() % 3 == 0 ? rnd() % (2 * timeout + 1) : rnd() % 1000;
    if (rnd() % 7 == 0) {
      qe_reorder_tick(&rb, ts, deliver_real, NULL);
      m_tick(&m, ts);
    }
    qe_reorder_push(&rb, seq, pkt, len, ts, deliver_real, NULL);
    m_push(&m, i, len, ts);
    if (getenv("DEBUG") && round == atoi(getenv("DEBUG"))) {
      fprintf(stderr, "push %ld len %zu ts %lu -> real %zu model %zu next %u/%ld held %zu/%zu\n", (long)i, len, (unsigned long)ts, nreal, nmodel, rb.next - base, (long)m.next, rb.held, m.nheld);
    }
    if (nreal != nmodel) {
      fprintf(stderr, "round %d: after push %zu: real delivered %zu, model %zu\n",
              round, k, nreal, nmodel);
      return 1;
    }
  }
  while (rb.held || m.nheld) {
    ts += timeout + 1;
    qe_reorder_tick(&rb, ts, deliver_real, NULL);
    m_tick(&m, ts);
    if (ts > (uint64_t)1 << 62) {
      break;
    }
  }
  if (nreal != nmodel || memcmp(out_real, out_model, nreal * 4) != 0) {
    fprintf(stderr, "round %d: delivery differs (%zu vs %zu)\n", round, nreal,
            nmodel);
    return 1;
  }
  if (rb.reordered != m.reordered || rb.late != m.late ||
      rb.dropped != m.dropped || rb.held != 0) {
    fprintf(stderr, "round %d: counters differ: %lu/%lu/%lu vs %lu/%lu/%lu\n",
            round, (unsigned long)rb.reordered, (unsigned long)rb.late,
            (unsigned long)rb.dropped, (unsigned long)m.reordered,
            (unsigned long)m.late, (unsigned long)m.dropped);
    return 1;
  }
  /* Invariants, independent of the model. */
  {
    static unsigned char seen[N];
    uint64_t outoforder = 0;
    uint32_t hi = 0;
    int have_hi = 0;
    memset(seen, 0, sizeof(seen));
    for (size_t k = 0; k < nreal; k++) {
      uint32_t i = (out_real[k] - base) & QE_RB_SEQ_MASK;
      if (i >= N || seen[i]++) {
        fprintf(stderr, "round %d: %u delivered twice\n", round, i);
        return 1;
      }
      if (have_hi && (int32_t)(((out_real[k] - hi) & QE_RB_SEQ_MASK) << 1) < 0) {
        outoforder++;
      } else {
        hi = out_real[k];
        have_hi = 1;
      }
    }
    if (outoforder != rb.late) {
      fprintf(stderr, "round %d: %lu out of order, %lu counted late\n", round,
              (unsigned long)outoforder, (unsigned long)rb.late);
      return 1;
    }
    for (size_t k = 0; k < norder; k++) {
      if (!seen[order[k]]) {
        fprintf(stderr, "round %d: %ld never delivered\n", round,
                (long)order[k]);
        return 1;
      }
    }
  }
  qe_reorder_free(&rb);
  return 0;
}

int main(void) {
  int fails = 0, rounds = 0;
  static const struct {
    size_t max_bytes;
    uint64_t timeout;
    int shuffle, loss, dup;
  } cases[] = {
      {1 << 20, 20000, 1, 0, 0},   /* in order */
      {1 << 20, 20000, 8, 0, 0},   /* local reordering */
      {1 << 20, 20000, 64, 2, 1},  /* + loss + duplicates */
      {2000, 20000, 64, 2, 1},     /* byte bound forces flushes */
      {1 << 20, 500, 200, 5, 5},   /* short timeout: many late */
      {1 << 20, 20000, 5000, 1, 0}, /* far jumps */
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    for (int r = 0; r < 20; r++) {
      fails += run(rounds++, cases[c].max_bytes, cases[c].timeout,
                   cases[c].shuffle, cases[c].loss, cases[c].dup);
    }
  }
  printf("reorder_test: %d passed, %d failed\n", rounds - fails, fails);
  return fails ? 1 : 0;
}
