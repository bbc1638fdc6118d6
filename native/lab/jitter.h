/*
 * jitter.h: the delay line's due times (pure; tested by jitter_test.c).
 *
 * A packet that arrives at `ts` is due at ts + delay + extra, where extra is
 * drawn uniformly from [0, jitter] by a seeded generator (splitmix64, one
 * stream per line), but never before the previous packet of its line: the
 * line stays a FIFO. Jitter on a real access link (Starlink, LTE) comes from
 * queueing and scheduling, which delay packets without reordering them.
 * Uniform because it is bounded by construction and its spread is the whole
 * [delay, delay + jitter] a person asked for; a heavy tail would only be
 * clipped. A consequence of the FIFO: when packets arrive closer together
 * than the jitter, a packet waits for the latest-drawn one ahead of it, so a
 * busy line's delays bunch toward delay + jitter (`fifo_raised` counts them).
 *
 * With jitter 0 nothing is drawn and the due time is ts + delay, exactly.
 */
#ifndef DL_JITTER_H
#define DL_JITTER_H

#include <stdint.h>

typedef struct {
  uint64_t s;
} dl_rng;

/* splitmix64: one 64-bit state, full period, good enough for a lab. */
static inline uint64_t dl_rng_next(dl_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Stream `stream` (a line's position on the command line) of seed `seed`: lines of one run draw independently. */
static inline void dl_rng_seed(dl_rng *r, uint64_t seed, uint64_t stream) {
  r->s = seed;
  r->s = dl_rng_next(r) ^ (stream * 0xd1b54a32d192ed03u);
  (void)dl_rng_next(r);
}

/*
 * The due time of a packet arriving at `ts` on a line with `delay_ns` and
 * `jitter_ns`, after a packet due at `prev_due` (0 = none); sets *raised to 1
 * when the FIFO rule moved it later than its own draw, else 0.
 */
static inline uint64_t dl_due(uint64_t ts, uint64_t delay_ns, uint64_t jitter_ns, uint64_t prev_due, dl_rng *r, int *raised) {
  *raised = 0;
  if (jitter_ns == 0) return ts + delay_ns;
  /* The modulo bias of a 64-bit draw over at most 10 s of nanoseconds is below 1e-9. */
  uint64_t due = ts + delay_ns + dl_rng_next(r) % (jitter_ns + 1);
  if (due < prev_due) {
    *raised = 1;
    return prev_due;
  }
  return due;
}

#endif
