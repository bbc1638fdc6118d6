/*
 * The reorder buffer (reorder.c) against a naive model with the same policy
 * (release in order, none before its due time; a gap is given up after the
 * timeout or when the held bytes overflow, which also releases the oldest
 * held packets before their due time; late packets are delivered at once;
 * duplicates dropped),
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
/* Each packet's due time, the clock, and when each output was delivered. */
static uint64_t due_of[N], now_ts, out_ts[4 * N];
static unsigned char due_set[N];

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
  out_ts[nreal] = now_ts;
  out_real[nreal++] = seq;
}

/* ---- the naive model: indices relative to `base`, no rings ---- */
typedef struct model {
  int started;
  int64_t next;
  int held[N + 10];
  uint64_t due[N + 10];
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

/* Releases held packets from `next` on while each has come due (`force`:
 * the first whatever its due); a gap left with packets held starts its wait. */
static void m_run(model *m, uint64_t ts, int force) {
  int released = 0;
  while (m->next < N && m->held[m->next] &&
         (force || m->due[m->next] <= ts)) {
    m->held[m->next] = 0;
    m->nheld--;
    m->held_bytes -= m->len[m->next];
    m_out(m, m->next);
    m->next++;
    force = 0;
    released = 1;
  }
  if (released && m->nheld && !m->held[m->next]) {
    m->gap_since = ts;
  }
}

static void m_skip(model *m, uint64_t ts, int force) {
  while (m->nheld && !m->held[m->next]) {
    m->next++;
  }
  m_run(m, ts, force);
}

static void m_push(model *m, int64_t i, size_t len, uint64_t ts,
                   uint64_t due) {
  int gap;
  if (!m->started) {
    m->started = 1;
    m->next = i;
  }
  if (i - m->next >= QE_RB_SLOTS) {
    /* far ahead: everything held is given up, the window restarts */
    while (m->nheld) {
      m_skip(m, ts, 1);
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
  if (i == m->next && due <= ts && m->nheld == 0) {
    m_out(m, i);
    m->next++;
    return;
  }
  if (m->held[i]) {
    m->dropped++;
    return;
  }
  gap = m->nheld && !m->held[m->next];
  m->held[i] = 1;
  m->due[i] = due;
  m->len[i] = len;
  m->nheld++;
  m->held_bytes += len;
  if (i == m->next) {
    m_run(m, ts, 0);
  } else {
    m->reordered++;
    if (!gap && !m->held[m->next]) {
      m->gap_since = ts;
    }
  }
  while (m->held_bytes > m->max_bytes && m->nheld) {
    m_skip(m, ts, 1);
  }
}

static void m_tick(model *m, uint64_t ts) {
  m_run(m, ts, 0);
  while (m->nheld && !m->held[m->next] && ts >= m->gap_since + m->timeout) {
    int64_t before = m->next, f = m->next;
    while (!m->held[f]) {
      f++;
    }
    if (m->due[f] > ts) {
      m->gap_since = m->due[f] - m->timeout; /* wait for it */
      break;
    }
    m_skip(m, ts, 0);
    if (m->next == before) {
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
               int loss_pct, int dup_pct, int hold_pct) {
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
  memset(due_of, 0, sizeof(due_of));
  memset(due_set, 0, sizeof(due_set));
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
  /* The lowest number comes first: the buffer starts its window at the
   * first arrival, and what came before it counts late, held or not. */
  for (size_t k = 1; k < norder; k++) {
    if (order[k] < order[0]) {
      int64_t x = order[k];
      order[k] = order[0];
      order[0] = x;
    }
  }
  for (size_t k = 0; k < norder; k++) {
    int64_t i = order[k];
    uint32_t seq = (base + (uint32_t)i) & QE_RB_SEQ_MASK;
    size_t len = 4 + 4 * (rnd() % ((SLOT - 4) / 4 + 1));
    for (size_t o = 0; o + 4 <= len; o += 4) {
      memcpy(pkt + o, &seq, 4);
    }
    uint64_t due;
    ts += rnd() % 3 == 0 ? rnd() % (2 * timeout + 1) : rnd() % 1000;
    now_ts = ts;
    if (rnd() % 7 == 0) {
      qe_reorder_tick(&rb, ts, deliver_real, NULL);
      m_tick(&m, ts);
    }
    /* Some packets are held for their due time (a duplicate keeps the
     * first copy's). */
    due = (int)(rnd() % 100) < hold_pct ? ts + rnd() % (timeout + 1) : 0;
    if (!due_set[i]) {
      due_of[i] = due;
      due_set[i] = 1;
    }
    qe_reorder_push(&rb, seq, pkt, len, ts, due, deliver_real, NULL);
    m_push(&m, i, len, ts, due);
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
    uint64_t d = qe_reorder_deadline(&rb);
    /* The deadline is when tick has work: nothing moves before it. */
    if (d > ts && d != UINT64_MAX) {
      size_t before = nreal;
      now_ts = ts = d - 1;
      qe_reorder_tick(&rb, ts, deliver_real, NULL);
      m_tick(&m, ts);
      if (nreal != before) {
        fprintf(stderr, "round %d: released before its deadline\n", round);
        return 1;
      }
    }
    ts = d != UINT64_MAX && d > ts ? d : ts + timeout + 1;
    now_ts = ts;
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
    uint64_t outoforder = 0, early = 0;
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
        early += out_ts[k] < due_of[i]; /* in order, yet before its time */
      }
    }
    /* Only an overflow or a far jump releases a packet before its due time
     * (a late one leaves on arrival). */
    if (max_bytes >= (1 << 20) && shuffle < QE_RB_SLOTS && early != 0) {
      fprintf(stderr, "round %d: %lu delivered before their due time\n",
              round, (unsigned long)early);
      return 1;
    }
    /* After a far jump, a packet below it counts late even when the jump's
     * own packet waits for its due time and leaves after it. */
    if (shuffle < QE_RB_SLOTS ? outoforder != rb.late : outoforder > rb.late) {
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
  static const int holds[] = {0, 30, 100}; /* % of packets with a due time */
  for (size_t h = 0; h < sizeof(holds) / sizeof(holds[0]); h++) {
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
      for (int r = 0; r < 20; r++) {
        fails += run(rounds++, cases[c].max_bytes, cases[c].timeout,
                     cases[c].shuffle, cases[c].loss, cases[c].dup, holds[h]);
      }
    }
  }
  printf("reorder_test: %d passed, %d failed\n", rounds - fails, fails);
  return fails ? 1 : 0;
}
