/*
 * delayline: a one-way delay, constant or jittered, for IP packets, run
 * inside a lab router namespace (this kernel has no netem).
 *
 *   delayline [--rt] [--tick-us 250] [--buffer-mb 32] [--seed N] TUN:DELAY_US[:JITTER_US] ...
 *
 * For each TUN:DELAY_US[:JITTER_US] it creates a TUN device (IFF_TUN |
 * IFF_NO_PI | IFF_VNET_HDR, with checksum and TSO/USO offloads so GSO
 * super-packets pass whole), and every packet the kernel routes into that TUN
 * is held for DELAY_US microseconds plus an extra in [0, JITTER_US]
 * (default 0) and then written back into the same TUN, from where the kernel
 * routes it on (the lab's policy rules, keyed on the incoming interface, keep
 * it from looping). The extra wanders over time between 0 and JITTER_US,
 * slower than time passes (jitter.h), drawn from --seed (default 1; line i
 * draws stream i of it, so a run replays), so no packet overtakes another.
 * Due times are therefore monotone and each direction is a FIFO: a byte ring
 * holding the packets in arrival order, released on a periodic tick (not a
 * timer per packet); the tick runs only while some packet is held, so an idle
 * line costs nothing. Without jitter the delay is exactly DELAY_US.
 *
 * It runs as a normal process. The lab shares two cores with the traffic it
 * carries and the tunnel it measures, and each packet it writes back runs
 * its whole way (the router's routing, tbf, the veth, the receiving socket)
 * in the writer's context. As SCHED_FIFO (--rt), four lines of a bonded
 * rural run preempted the daemons at every release: the daemons' threads
 * waited ~1 s per second for a core, and the bond's efficiency against its
 * single uplinks was lower than with normal lines in 12 alternating pairs
 * of 12 (mean 0.80 against 0.95; bench/README.md). The price is the delay's
 * accuracy under load: 90-97% of releases within ±0.2 ms of due (p99 0.5-2
 * ms late) against 98-99% (p99 0.2-2.5 ms), which the counters report and
 * the lab shows beside its figures.
 *
 * With --rt it asks for SCHED_FIFO (best effort). A real-time process that
 * never blocks starves every normal process on the machine down to the
 * kernel's RT throttle (5%), so two rules keep it from ever spinning: a TUN
 * that reports an error or hang-up (its device was deleted) ends the
 * program, since level-triggered epoll would report it again at once,
 * forever; and RLIMIT_RTTIME bounds how long it may run without blocking
 * (DL_RT_BUDGET_US): past that, SIGXCPU drops it to SCHED_OTHER for the rest
 * of its life (`"rt":"demoted"` in the counters).
 *
 * Once every TUN exists it prints "ready" on stdout. SIGTERM or SIGINT stop
 * it; on exit it prints one JSON line of counters on stderr (packets, bytes,
 * drops, per line the jitter and the delays it applied, and how far release
 * times fell from their due times).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "jitter.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

#define DL_MAX_LINES 16
#define DL_VNET_HDR 10       /* struct virtio_net_hdr */
#define DL_MAX_PKT (65536 + DL_VNET_HDR)
#define DL_ALIGN 16
#define DL_READ_BATCH 256    /* reads per readiness event, so one busy TUN cannot starve the tick */
#define DL_HIST_BUCKET_NS 25000 /* lateness histogram: 25 us buckets */
#define DL_HIST_BUCKETS 400     /* up to 10 ms; later releases land in the last bucket */
#define DL_RT_BUDGET_US 200000  /* real-time CPU allowed between two blocking calls (a tick is 250 us) */

/* One held packet in the ring: header, then `len` bytes (vnet header + IP packet). */
typedef struct {
  uint32_t len; /* 0 = wrap marker: the next entry starts at offset 0 */
  uint32_t pad;
  uint64_t due_ns;
} dl_entry;

typedef struct {
  char name[IFNAMSIZ];
  int fd;
  uint64_t delay_ns;
  uint64_t jitter_ns;
  dl_jitter jit;
  uint64_t last_due; /* due time of the newest held packet: the next is never due before it */
  uint8_t *ring;
  size_t cap;
  size_t head; /* where the next packet is written */
  size_t tail; /* the oldest held packet */
  size_t used; /* bytes between tail and head, including wrap waste */
  uint64_t pkts, bytes, drops_full, drops_write, held_max;
  uint64_t held;
  uint64_t applied_min, applied_max, applied_sum, applied_n; /* due minus arrival, ns */
  uint64_t fifo_raised; /* packets whose own draw was earlier than the packet before them */
} dl_line;

static dl_line lines[DL_MAX_LINES];
static int nlines;
static uint64_t seed_arg = 1; /* --seed */
static uint64_t hist[DL_HIST_BUCKETS];
static int64_t late_min_ns = INT64_MAX, late_max_ns = INT64_MIN;
static uint8_t scratch[DL_MAX_PKT];
static const char *rt_state = "other"; /* "fifo", "other" (not granted) or "demoted" (it ran too long) */
static volatile sig_atomic_t rt_demoted;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t align_up(size_t n) { return (n + DL_ALIGN - 1) & ~(size_t)(DL_ALIGN - 1); }

static int tun_open(dl_line *l) {
  struct ifreq ifr;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
  memcpy(ifr.ifr_name, l->name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
  int hdrsz = DL_VNET_HDR;
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) goto fail;
  /* Ask for UDP segmentation offload too (Linux 6.2+); fall back to TCP only. */
  unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  if (ioctl(fd, TUNSETOFFLOAD, off | TUN_F_USO4 | TUN_F_USO6) < 0 && ioctl(fd, TUNSETOFFLOAD, off) < 0) goto fail;
  l->fd = fd;
  return 0;
fail:
  close(fd);
  return -1;
}

/* Room for one maximal packet at the head? Wraps the head to 0 when the end is too short. */
static uint8_t *ring_reserve(dl_line *l) {
  size_t need = align_up(sizeof(dl_entry) + DL_MAX_PKT);
  if (l->used == 0) l->head = l->tail = 0;
  if (l->used > 0 && l->head == l->tail) return NULL; /* exactly full */
  if (l->used > 0 && l->head < l->tail) {
    return (l->tail - l->head >= need) ? l->ring + l->head : NULL;
  }
  /* head >= tail (or empty): free space is [head, cap) and then [0, tail). */
  if (l->cap - l->head >= need) return l->ring + l->head;
  if (l->used > 0 && l->tail < need) return NULL;
  if (l->used == 0) { l->head = l->tail = 0; return l->ring; }
  /* Mark the rest of the ring as waste and continue at 0. */
  if (l->cap - l->head >= sizeof(dl_entry)) ((dl_entry *)(l->ring + l->head))->len = 0;
  l->used += l->cap - l->head;
  l->head = 0;
  return l->ring;
}

static void ring_commit(dl_line *l, uint32_t len, uint64_t due) {
  dl_entry *e = (dl_entry *)(l->ring + l->head);
  e->len = len;
  e->due_ns = due;
  size_t sz = align_up(sizeof(dl_entry) + len);
  l->head += sz;
  l->used += sz;
  if (l->head >= l->cap) l->head = 0;
  l->held++;
  if (l->held > l->held_max) l->held_max = l->held;
}

/* The oldest entry, skipping a wrap marker; NULL when empty. */
static dl_entry *ring_peek(dl_line *l) {
  if (l->used == 0) return NULL;
  if (l->cap - l->tail < sizeof(dl_entry) || ((dl_entry *)(l->ring + l->tail))->len == 0) {
    l->used -= l->cap - l->tail;
    l->tail = 0;
    if (l->used == 0) return NULL;
  }
  return (dl_entry *)(l->ring + l->tail);
}

static void ring_pop(dl_line *l, dl_entry *e) {
  size_t sz = align_up(sizeof(dl_entry) + e->len);
  l->tail += sz;
  l->used -= sz;
  if (l->tail >= l->cap) l->tail = 0;
  l->held--;
  if (l->used == 0) l->head = l->tail = 0;
}

/* Reads what the TUN holds; returns -1 when its device is gone (EBADFD), else 0. */
static int line_read(dl_line *l) {
  for (int i = 0; i < DL_READ_BATCH; i++) {
    uint8_t *slot = ring_reserve(l);
    uint8_t *buf = slot ? slot + sizeof(dl_entry) : scratch;
    ssize_t n = read(l->fd, buf, DL_MAX_PKT);
    if (n < 0) return errno == EBADFD ? -1 : 0; /* EAGAIN: drained; others: one bad packet, try the next event */
    if (n == 0) continue;
    if (!slot) { l->drops_full++; continue; }
    uint64_t ts = now_ns();
    int raised;
    uint64_t due = dl_due(ts, l->delay_ns, l->jitter_ns, l->last_due, &l->jit, &raised);
    l->last_due = due;
    l->fifo_raised += (uint64_t)raised;
    uint64_t applied = due - ts;
    if (l->applied_n == 0 || applied < l->applied_min) l->applied_min = applied;
    if (applied > l->applied_max) l->applied_max = applied;
    l->applied_sum += applied;
    l->applied_n++;
    ring_commit(l, (uint32_t)n, due);
  }
  return 0;
}

static void record_lateness(int64_t late) {
  if (late < late_min_ns) late_min_ns = late;
  if (late > late_max_ns) late_max_ns = late;
  int64_t b = (late + (int64_t)DL_HIST_BUCKET_NS * (DL_HIST_BUCKETS / 2)) / DL_HIST_BUCKET_NS;
  if (b < 0) b = 0;
  if (b >= DL_HIST_BUCKETS) b = DL_HIST_BUCKETS - 1;
  hist[b]++;
}

/* Writes every packet due by `release_ns` back into its TUN; returns 1 while any is still held. */
static int line_release(dl_line *l, uint64_t now, uint64_t release_ns) {
  dl_entry *e;
  while ((e = ring_peek(l)) != NULL && e->due_ns <= release_ns) {
    ssize_t n = write(l->fd, (uint8_t *)e + sizeof(dl_entry), e->len);
    if (n < 0) {
      l->drops_write++; /* the interface is down (a cut link) or the packet was refused */
    } else {
      l->pkts++;
      l->bytes += e->len - DL_VNET_HDR;
    }
    record_lateness((int64_t)now - (int64_t)e->due_ns);
    ring_pop(l, e);
  }
  return l->used > 0;
}

static int timer_set(int tfd, uint64_t tick_ns, int on) {
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  if (on) {
    its.it_interval.tv_sec = (time_t)(tick_ns / 1000000000u);
    its.it_interval.tv_nsec = (long)(tick_ns % 1000000000u);
    its.it_value = its.it_interval;
  }
  return timerfd_settime(tfd, 0, &its, NULL);
}

static int64_t hist_quantile(double q) {
  uint64_t total = 0, acc = 0;
  for (int i = 0; i < DL_HIST_BUCKETS; i++) total += hist[i];
  if (total == 0) return 0;
  uint64_t want = (uint64_t)((double)total * q);
  for (int i = 0; i < DL_HIST_BUCKETS; i++) {
    acc += hist[i];
    if (acc > want) return ((int64_t)i - DL_HIST_BUCKETS / 2) * DL_HIST_BUCKET_NS + DL_HIST_BUCKET_NS / 2;
  }
  return 0;
}

/* Share of releases within ±`ns` of their due time (the lab's accuracy bar is ±0.2 ms for ~99%). */
static double hist_within(int64_t ns) {
  uint64_t total = 0, in = 0;
  for (int i = 0; i < DL_HIST_BUCKETS; i++) {
    int64_t lo = ((int64_t)i - DL_HIST_BUCKETS / 2) * DL_HIST_BUCKET_NS;
    total += hist[i];
    if (lo >= -ns && lo + DL_HIST_BUCKET_NS <= ns) in += hist[i];
  }
  return total ? (double)in / (double)total : 0.0;
}

static void print_stats(void) {
  fprintf(stderr, "{\"event\":\"delayline-stats\",\"lines\":[");
  for (int i = 0; i < nlines; i++) {
    dl_line *l = &lines[i];
    fprintf(stderr, "%s{\"tun\":\"%s\",\"delay_us\":%llu,\"jitter_us\":%llu,\"packets\":%llu,\"bytes\":%llu,\"drops_full\":%llu,\"drops_write\":%llu,\"held_max\":%llu,"
            "\"applied_us\":{\"min\":%.1f,\"mean\":%.1f,\"max\":%.1f},\"fifo_raised\":%llu}",
            i ? "," : "", l->name, (unsigned long long)(l->delay_ns / 1000), (unsigned long long)(l->jitter_ns / 1000),
            (unsigned long long)l->pkts, (unsigned long long)l->bytes, (unsigned long long)l->drops_full,
            (unsigned long long)l->drops_write, (unsigned long long)l->held_max, (double)l->applied_min / 1000.0,
            l->applied_n ? (double)l->applied_sum / (double)l->applied_n / 1000.0 : 0.0, (double)l->applied_max / 1000.0,
            (unsigned long long)l->fifo_raised);
  }
  int any = late_min_ns != INT64_MAX;
  fprintf(stderr, "],\"seed\":%llu,\"rt\":\"%s\",\"late_us\":{\"min\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},\"within_200us\":%.4f}\n",
          (unsigned long long)seed_arg, rt_demoted ? "demoted" : rt_state, any ? (double)late_min_ns / 1000.0 : 0.0, (double)hist_quantile(0.5) / 1000.0,
          (double)hist_quantile(0.99) / 1000.0, any ? (double)late_max_ns / 1000.0 : 0.0, hist_within(200000));
}

/* SIGXCPU: RLIMIT_RTTIME ran out, so something kept the CPU without blocking; stop being real-time. */
static void on_xcpu(int sig) {
  (void)sig;
  struct sched_param sp = {.sched_priority = 0};
  sched_setscheduler(0, SCHED_OTHER, &sp);
  rt_demoted = 1;
}

/* SCHED_FIFO with a bounded budget per run between blocking calls; stays SCHED_OTHER if either is refused. */
static void rt_enter(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_xcpu;
  sigemptyset(&sa.sa_mask);
  struct rlimit rl = {.rlim_cur = DL_RT_BUDGET_US, .rlim_max = RLIM_INFINITY};
  if (sigaction(SIGXCPU, &sa, NULL) < 0 || setrlimit(RLIMIT_RTTIME, &rl) < 0) return;
  struct sched_param sp = {.sched_priority = 10};
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0) rt_state = "fifo";
}

static void usage(void) {
  fprintf(stderr, "usage: delayline [--rt] [--tick-us N] [--buffer-mb N] [--seed N] TUN:DELAY_US[:JITTER_US] ...\n");
  exit(2);
}

int main(int argc, char **argv) {
  uint64_t tick_ns = 250000;
  size_t buffer = 32u << 20;
  int rt = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rt") == 0) {
      rt = 1;
    } else if (strcmp(argv[i], "--tick-us") == 0 && i + 1 < argc) {
      tick_ns = strtoull(argv[++i], NULL, 10) * 1000u;
      if (tick_ns < 10000) usage();
    } else if (strcmp(argv[i], "--buffer-mb") == 0 && i + 1 < argc) {
      buffer = (size_t)strtoull(argv[++i], NULL, 10) << 20;
      if (buffer < 4u * DL_MAX_PKT) usage();
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      char *end;
      seed_arg = strtoull(argv[++i], &end, 10);
      if (*end != '\0' || end == argv[i]) usage();
    } else {
      char *colon = strchr(argv[i], ':');
      if (!colon || colon == argv[i] || (size_t)(colon - argv[i]) >= IFNAMSIZ || nlines == DL_MAX_LINES) usage();
      char *end;
      unsigned long long us = strtoull(colon + 1, &end, 10), jitter_us = 0;
      if (end == colon + 1) usage();
      if (*end == ':') {
        char *j = end + 1;
        jitter_us = strtoull(j, &end, 10);
        if (end == j) usage();
      }
      /* At most 10 s each (the lab's limit), so due times cannot overflow. */
      if (*end != '\0' || us > 10000000u || jitter_us > 10000000u) usage();
      dl_line *l = &lines[nlines++];
      memcpy(l->name, argv[i], (size_t)(colon - argv[i]));
      l->delay_ns = us * 1000u;
      l->jitter_ns = jitter_us * 1000u;
    }
  }
  if (nlines == 0) usage();
  for (int i = 0; i < nlines; i++) dl_rng_seed(&lines[i].jit.rng, seed_arg, (uint64_t)i);

  if (rt) rt_enter(); /* --rt, but not root or no RT budget: a normal process */

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || tfd < 0 || ep < 0) { perror("delayline: setup"); return 1; }

  struct epoll_event ev = {.events = EPOLLIN};
  for (int i = 0; i < nlines; i++) {
    dl_line *l = &lines[i];
    if (tun_open(l) < 0) { fprintf(stderr, "delayline: tun %s: %s\n", l->name, strerror(errno)); return 1; }
    l->cap = buffer;
    l->ring = mmap(NULL, l->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (l->ring == MAP_FAILED) { perror("delayline: mmap"); return 1; }
    ev.data.u32 = (uint32_t)i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) < 0) { perror("delayline: epoll"); return 1; }
  }
  ev.data.u32 = 1000;
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  ev.data.u32 = 1001;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  printf("ready\n");
  fflush(stdout);

  int ticking = 0;
  struct epoll_event evs[DL_MAX_LINES + 2];
  for (;;) {
    int n = epoll_wait(ep, evs, DL_MAX_LINES + 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("delayline: epoll_wait");
      return 1;
    }
    int tick = 0;
    for (int i = 0; i < n; i++) {
      uint32_t id = evs[i].data.u32;
      if (id == 1001) { print_stats(); return 0; }
      if (id == 1000) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof(expirations)) > 0) tick = 1;
      } else if ((evs[i].events & (EPOLLERR | EPOLLHUP)) || line_read(&lines[id]) < 0) {
        /* The TUN's device was deleted under us (the lab is being torn down): nothing left to carry. */
        fprintf(stderr, "delayline: tun %s is gone\n", lines[id].name);
        print_stats();
        return 1;
      }
    }
    if (tick || !ticking) {
      /* Release what is due by the middle of the next tick: lateness is then within ±tick/2. */
      uint64_t now = now_ns();
      int busy = 0;
      for (int i = 0; i < nlines; i++) busy |= line_release(&lines[i], now, now + tick_ns / 2);
      if (busy != ticking) {
        if (timer_set(tfd, tick_ns, busy) < 0) { perror("delayline: timerfd"); return 1; }
        ticking = busy;
      }
    }
  }
}
