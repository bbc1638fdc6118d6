/*
 * The lab's stall meter: how long this machine stopped running anything.
 *
 * The lab's latency figures (the interactive ping under load) assume the
 * machine runs what is runnable. On a shared VM it may not: the host can stop
 * every vCPU for tens of ms. One such stall in a 10 s run puts several of the
 * run's pings above any bar, whatever the tunnel does. This program sleeps
 * PERIOD_US at a time under SCHED_FIFO, above the priority of a real-time
 * delay line (`delayline --rt`), so nothing the lab runs can delay it, and
 * records by how much each wake-up came late: a late wake-up is time when
 * nothing of ours could run.
 *
 * It prints "ready" on stdout once running, then a line for each wake-up
 * more than 5 ms late, when it comes (wall-clock time, so that it can be
 * read beside `ping -D`'s timestamps):
 *   {"event":"stall","end_ms":X,"ms":X}   end_ms: ms since the epoch
 * and on SIGTERM or SIGINT (or its parent's death) one JSON line, and exits:
 *   {"event":"stalls","rt":"fifo|other","samples":N,"over_5ms":N,
 *    "over_20ms":N,"over_50ms":N,"worst_ms":X,"late_ms":X}
 * late_ms: the wake-ups' lateness past 1 ms, summed (time the machine lost).
 * A process that cannot get SCHED_FIFO still measures, as "rt":"other".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig) {
  (void)sig;
  stop = 1;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
  uint64_t period_ns = 1000000;
  uint64_t samples = 0, over5 = 0, over20 = 0, over50 = 0, worst = 0, lost = 0;
  const char *rt = "other";
  struct sigaction sa;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--period-us") == 0 && i + 1 < argc) {
      period_ns = strtoull(argv[++i], NULL, 10) * 1000ULL;
    } else {
      fprintf(stderr, "usage: stallmeter [--period-us N]\n");
      return 2;
    }
  }
  if (period_ns < 100000) {
    period_ns = 100000;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  /* A lab killed hard must not leave it behind: it ends with its parent. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) {
    return 0;
  }
  {
    /* It always blocks within a period; the budget only guards a bug. */
    struct rlimit rl = {.rlim_cur = 200000, .rlim_max = RLIM_INFINITY};
    struct sched_param sp = {.sched_priority = 50};
    if (setrlimit(RLIMIT_RTTIME, &rl) == 0 &&
        sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0) {
      rt = "fifo";
    }
  }
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    struct timespec d = {.tv_sec = (time_t)(period_ns / 1000000000ULL),
                         .tv_nsec = (long)(period_ns % 1000000000ULL)};
    uint64_t t0 = now_ns(), late;
    if (clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL) != 0 && errno == EINTR &&
        stop) {
      break;
    }
    late = now_ns() - t0;
    late = late > period_ns ? late - period_ns : 0;
    if (late > 5000000) {
      struct timespec w;
      clock_gettime(CLOCK_REALTIME, &w);
      printf("{\"event\":\"stall\",\"end_ms\":%.3f,\"ms\":%.1f}\n",
             (double)w.tv_sec * 1e3 + (double)w.tv_nsec / 1e6,
             (double)late / 1e6);
      fflush(stdout);
    }
    samples++;
    lost += late > 1000000 ? late - 1000000 : 0;
    over5 += late > 5000000;
    over20 += late > 20000000;
    over50 += late > 50000000;
    if (late > worst) {
      worst = late;
    }
  }
  printf("{\"event\":\"stalls\",\"rt\":\"%s\",\"samples\":%llu,\"over_5ms\":%llu,"
         "\"over_20ms\":%llu,\"over_50ms\":%llu,\"worst_ms\":%.1f,\"late_ms\":%.1f}\n",
         rt, (unsigned long long)samples, (unsigned long long)over5,
         (unsigned long long)over20, (unsigned long long)over50,
         (double)worst / 1e6, (double)lost / 1e6);
  return 0;
}
