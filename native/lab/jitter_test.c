/*
 * jitter_test: the delay line's due times (jitter.h) on simulated arrivals.
 * Without jitter a due time is exactly arrival + delay; with jitter it stays
 * in [arrival + delay, arrival + delay + jitter], due times never go back
 * (FIFO), the same seed draws the same times, lines draw independently, and
 * widely spaced packets see a uniform extra. Prints "N passed, M failed".
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

/* Arrivals `gap_ns` apart with a little wobble, from a generator apart from the line's. */
static uint64_t next_arrival(dl_rng *clock, uint64_t ts, uint64_t gap_ns) { return ts + gap_ns / 2 + dl_rng_next(clock) % (gap_ns + 1); }

static void test_no_jitter(void) {
  dl_rng r, clock;
  dl_rng_seed(&r, 1, 0);
  dl_rng_seed(&clock, 99, 0);
  uint64_t ts = 1000, prev = 0;
  int exact = 1, none_raised = 1;
  for (int i = 0; i < 10000; i++) {
    int raised;
    ts = next_arrival(&clock, ts, 50000);
    uint64_t due = dl_due(ts, 7000000, 0, prev, &r, &raised);
    exact &= due == ts + 7000000;
    none_raised &= raised == 0;
    prev = due;
  }
  check(exact, "jitter 0: due is arrival + delay exactly");
  check(none_raised, "jitter 0: nothing is raised");
  dl_rng fresh;
  dl_rng_seed(&fresh, 1, 0);
  check(r.s == fresh.s, "jitter 0 draws nothing");
}

/* One line of `n` arrivals `gap_ns` apart: bounds and order; returns how many were raised. */
static unsigned run_line(uint64_t seed, uint64_t gap_ns, uint64_t delay, uint64_t jitter, int n, uint64_t *out, double *mean_extra) {
  dl_rng r, clock;
  dl_rng_seed(&r, seed, 0);
  dl_rng_seed(&clock, 7, 0);
  uint64_t ts = 0, prev = 0;
  unsigned raised_n = 0;
  int in_bounds = 1, monotone = 1;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    int raised;
    ts = next_arrival(&clock, ts, gap_ns);
    uint64_t due = dl_due(ts, delay, jitter, prev, &r, &raised);
    in_bounds &= due >= ts + delay && due <= ts + delay + jitter;
    monotone &= due >= prev;
    raised_n += (unsigned)raised;
    sum += (double)(due - ts - delay);
    if (out) out[i] = due - ts - delay;
    prev = due;
  }
  check(in_bounds, "due in [arrival + delay, arrival + delay + jitter]");
  check(monotone, "due times never go back (FIFO)");
  if (mean_extra) *mean_extra = sum / n;
  return raised_n;
}

#define N 100000
static uint64_t extra_a[N], extra_b[N];

static void test_jitter(void) {
  const uint64_t jitter = 10000000; /* 10 ms */
  /* Packets 25 ms apart (more than the jitter): no packet waits for another, the extra is uniform. */
  double mean;
  unsigned raised = run_line(42, 25000000, 5000000, jitter, N, extra_a, &mean);
  check(raised == 0, "spaced packets are never raised");
  check(mean > 0.49 * (double)jitter && mean < 0.51 * (double)jitter, "mean extra is half the jitter");
  unsigned deciles[10] = {0};
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < N; i++) {
    uint64_t d = extra_a[i] * 10 / (jitter + 1);
    deciles[d]++;
    if (extra_a[i] < lo) lo = extra_a[i];
    if (extra_a[i] > hi) hi = extra_a[i];
  }
  for (int i = 0; i < 10; i++) check(deciles[i] > N / 10 * 95 / 100 && deciles[i] < N / 10 * 105 / 100, "each tenth of the range gets a tenth of the packets");
  check(lo < jitter / 1000 && hi > jitter - jitter / 1000, "the draws span the whole range");

  /* The same seed draws the same delays; another seed does not. */
  run_line(42, 25000000, 5000000, jitter, N, extra_b, NULL);
  check(memcmp(extra_a, extra_b, sizeof(extra_a)) == 0, "same seed, same delays");
  run_line(43, 25000000, 5000000, jitter, N, extra_b, NULL);
  check(memcmp(extra_a, extra_b, sizeof(extra_a)) != 0, "another seed, other delays");

  /* Packets 0.1 ms apart (a busy line): the FIFO raises most, and their delays bunch toward the top. */
  raised = run_line(42, 100000, 5000000, jitter, N, NULL, &mean);
  check(raised > N / 2, "a busy line raises most packets");
  check(mean > 0.8 * (double)jitter, "a busy line's delays bunch toward delay + jitter");

  /* Zero delay with jitter is a line too. */
  run_line(5, 1000000, 0, jitter, N, NULL, NULL);

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
