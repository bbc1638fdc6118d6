/*
 * jitter.h: the delay line's due times (pure; tested by jitter_test.c).
 *
 * A packet that arrives at `ts` is due at ts + delay + e(ts), where e is an
 * extra delay that wanders over time between 0 and the jitter: it moves in
 * straight lines between targets drawn uniformly from [0, jitter] by a seeded
 * generator (splitmix64, one stream per line), a new target every 2 to 8
 * times the jitter (at least 10 ms). That is how latency moves on a real
 * access link (a Starlink or LTE scheduler, a queue filling and draining):
 * back-to-back packets see nearly the same delay, and over tens to hundreds
 * of milliseconds it sweeps the whole range. Its slope is at most
 * jitter / (2 x jitter) = 1/2, so e changes by less than the time that
 * passes and due times never go back: the line stays a FIFO without holding
 * anyone back. (An extra drawn per packet instead, with a FIFO, made every
 * packet of a busy line wait for the latest draw ahead of it: a bulk flow
 * saw a constant delay + jitter, not jitter.) The FIFO rule stays as a
 * safety net (`fifo_raised` counts it; it should stay 0).
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

/* Segment lengths, in multiples of the jitter (and at least DL_SEG_MIN_NS). */
#define DL_SEG_MIN_X 2
#define DL_SEG_MAX_X 8
#define DL_SEG_MIN_NS 10000000ULL

/* A line's wandering extra delay: from `from` at `start` to `to` at start + len. */
typedef struct {
  dl_rng rng;
  uint64_t from, to, start, len; /* len 0: not started */
} dl_jitter;

static inline uint64_t dl_draw(dl_rng *r, uint64_t lo, uint64_t hi) {
  /* The modulo bias of a 64-bit draw over at most seconds of nanoseconds is below 1e-9. */
  return lo + dl_rng_next(r) % (hi - lo + 1);
}

static inline void dl_segment(dl_jitter *j, uint64_t jitter_ns, uint64_t start, uint64_t from) {
  uint64_t lo = DL_SEG_MIN_X * jitter_ns, hi = DL_SEG_MAX_X * jitter_ns;
  if (lo < DL_SEG_MIN_NS) lo = DL_SEG_MIN_NS;
  if (hi < lo) hi = lo;
  j->from = from;
  j->to = dl_draw(&j->rng, 0, jitter_ns);
  j->start = start;
  j->len = dl_draw(&j->rng, lo, hi);
}

/* The extra delay at `ts` (ts never goes back between calls on one line). */
static inline uint64_t dl_extra(dl_jitter *j, uint64_t jitter_ns, uint64_t ts) {
  if (j->len == 0) dl_segment(j, jitter_ns, ts, dl_draw(&j->rng, 0, jitter_ns));
  if (ts > j->start + 2 * DL_SEG_MAX_X * (jitter_ns > DL_SEG_MIN_NS ? jitter_ns : DL_SEG_MIN_NS)) {
    /* Idle for long: start afresh where the old line would have ended (its target). */
    dl_segment(j, jitter_ns, ts, j->to);
  }
  while (ts >= j->start + j->len) dl_segment(j, jitter_ns, j->start + j->len, j->to);
  /* 128-bit product: a leg's rise times its length reaches jitter x 8 x jitter, past 64 bits above ~1.5 s of jitter (the lab allows 10 s). */
  __extension__ typedef unsigned __int128 dl_u128;
  uint64_t at = ts - j->start;
  if (j->to >= j->from) return j->from + (uint64_t)((dl_u128)(j->to - j->from) * at / j->len);
  return j->from - (uint64_t)((dl_u128)(j->from - j->to) * at / j->len);
}

/*
 * The due time of a packet arriving at `ts` on a line with `delay_ns` and
 * `jitter_ns`, after a packet due at `prev_due` (0 = none); sets *raised to 1
 * when the FIFO rule moved it later than the wandering delay put it, else 0.
 */
static inline uint64_t dl_due(uint64_t ts, uint64_t delay_ns, uint64_t jitter_ns, uint64_t prev_due, dl_jitter *j, int *raised) {
  *raised = 0;
  if (jitter_ns == 0) return ts + delay_ns;
  uint64_t due = ts + delay_ns + dl_extra(j, jitter_ns, ts);
  if (due < prev_due) {
    *raised = 1;
    return prev_due;
  }
  return due;
}

#endif
