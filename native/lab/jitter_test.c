/*
 * jitter_test: the delay line's due times (jitter.h) on simulated arrivals.
 * Without jitter a due time is exactly arrival + delay. With jitter the extra
 * delay stays in [0, jitter], wanders over the whole range over time, moves
 * slower than time passes (so even a dense line never needs the FIFO rule),
 * back-to-back packets see nearly the same delay, the same seed draws the
 * same delays and lines draw independently. Prints "N passed, M failed".
 */
#include <stdio.h>
#include <string.h>

#include "jitter.h"

static unsigned passed, failed;

static void check(int ok, const char *what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL: %s\n", what);
  }
}

/* Arrivals about `gap_ns` apart with a little wobble, from a generator apart from the line's. */
static uint64_t next_arrival(dl_rng *clock, uint64_t ts, uint64_t gap_ns) { return ts + gap_ns / 2 + dl_rng_next(clock) % (gap_ns + 1); }

static void test_no_jitter(void) {
  dl_jitter j = {0};
  dl_rng clock;
  dl_rng_seed(&j.rng, 1, 0);
  dl_rng_seed(&clock, 99, 0);
  uint64_t s0 = j.rng.s, ts = 1000, prev = 0;
  int exact = 1, none_raised = 1;
  for (int i = 0; i < 10000; i++) {
    int raised;
    ts = next_arrival(&clock, ts, 50000);
    uint64_t due = dl_due(ts, 7000000, 0, prev, &j, &raised);
    exact &= due == ts + 7000000;
    none_raised &= raised == 0;
    prev = due;
  }
  check(exact, "jitter 0: due is arrival + delay exactly");
  check(none_raised, "jitter 0: nothing is raised");
  check(j.rng.s == s0, "jitter 0 draws nothing");
}

#define N 400000
static uint64_t extra_a[N], extra_b[N];

/* One line of N arrivals `gap_ns` apart; checks bounds, order and slope; returns how many were raised. */
static unsigned run_line(uint64_t seed, uint64_t gap_ns, uint64_t delay, uint64_t jitter, uint64_t *out) {
  dl_jitter j = {0};
  dl_rng clock;
  dl_rng_seed(&j.rng, seed, 0);
  dl_rng_seed(&clock, 7, 0);
  uint64_t ts = 0, prev = 0, prev_ts = 0, prev_extra = 0;
  unsigned raised_n = 0;
  int in_bounds = 1, monotone = 1, slow = 1;
  for (int i = 0; i < N; i++) {
    int raised;
    ts = next_arrival(&clock, ts, gap_ns);
    uint64_t due = dl_due(ts, delay, jitter, prev, &j, &raised);
    uint64_t extra = due - ts - delay;
    in_bounds &= due >= ts + delay && due <= ts + delay + jitter;
    monotone &= due >= prev;
    if (i) {
      uint64_t d = extra > prev_extra ? extra - prev_extra : prev_extra - extra;
      slow &= 2 * d <= ts - prev_ts + 2; /* |slope| <= 1/2 (rounding: 1 ns) */
    }
    raised_n += (unsigned)raised;
    out[i] = extra;
    prev = due, prev_ts = ts, prev_extra = extra;
  }
  check(in_bounds, "due in [arrival + delay, arrival + delay + jitter]");
  check(monotone, "due times never go back (FIFO)");
  check(slow, "the extra delay changes at most half as fast as time passes");
  return raised_n;
}

static void test_jitter(void) {
  const uint64_t jitter = 10000000; /* 10 ms */
  /* A busy line: a packet every ~10 us for ~4 s. */
  unsigned raised = run_line(42, 10000, 5000000, jitter, extra_a);
  check(raised == 0, "a dense line never needs the FIFO rule");
  uint64_t lo = UINT64_MAX, hi = 0, step = 0;
  for (int i = 0; i < N; i++) {
    if (extra_a[i] < lo) lo = extra_a[i];
    if (extra_a[i] > hi) hi = extra_a[i];
    if (i) {
      uint64_t d = extra_a[i] > extra_a[i - 1] ? extra_a[i] - extra_a[i - 1] : extra_a[i - 1] - extra_a[i];
      if (d > step) step = d;
    }
  }
  check(lo < jitter / 10 && hi > jitter * 9 / 10, "over seconds the extra sweeps most of [0, jitter]");
  check(step < 20000, "back-to-back packets see nearly the same delay (under 20 us apart)");
  /* Spaced packets (25 ms apart, a sparse flow) span the range too, never raised. */
  raised = run_line(43, 25000000, 5000000, jitter, extra_b);
  check(raised == 0, "spaced packets are never raised");
  /* The same seed draws the same delays; another seed does not. */
  run_line(42, 10000, 5000000, jitter, extra_b);
  check(memcmp(extra_a, extra_b, sizeof(extra_a)) == 0, "same seed, same delays");
  run_line(44, 10000, 5000000, jitter, extra_b);
  check(memcmp(extra_a, extra_b, sizeof(extra_a)) != 0, "another seed, other delays");
  /* Zero delay with jitter is a line too; a tiny jitter keeps segments of at least 10 ms. */
  run_line(5, 1000000, 0, jitter, extra_b);
  run_line(6, 100000, 1000000, 200000, extra_b);
  /* The lab's largest jitter (10 s), packets ~10 ms apart: a leg's slope must not overflow into jumps. */
  raised = run_line(8, 10000000, 0, 10000000000ULL, extra_b);
  check(raised == 0, "a 10 s jitter moves smoothly too (no 64-bit overflow)");
  /* Two lines of one seed draw different streams. */
  dl_rng a, b;
  dl_rng_seed(&a, 42, 0);
  dl_rng_seed(&b, 42, 1);
  int same = 0;
  for (int i = 0; i < 1000; i++) same += dl_rng_next(&a) == dl_rng_next(&b);
  check(same == 0, "lines draw independent streams");
}

int main(void) {
  test_no_jitter();
  test_jitter();
  printf("%u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
