/*
 * The bonding scheduler (sched.c) driven on simulated paths with a fake
 * clock. Prints the measured figures, then "N passed, M failed".
 *
 * The simulation, kept simple on purpose:
 *  - A path has a rate (bytes/s), a one-way delay and a fixed congestion
 *    window of rate x RTT x 1.2 bytes (RTT = 2 x delay): no slow start, no
 *    loss, no pacing. Packets are PKT bytes.
 *  - A packet put on the wire enters the path's bottleneck queue, which
 *    serialises it at the path's rate; it is delivered `delay` after its
 *    serialisation ends, and its ACK arrives `delay` later, which is when
 *    its bytes leave the in-flight count.
 *  - The scheduler's view of a path, rebuilt before each packet: srtt =
 *    2 x delay + what is waiting in the bottleneck queue now; room = the
 *    local queue is empty and inflight + PKT <= cwnd (as bond.c does);
 *    role, priority, index, weight and credit persist across calls.
 *  - The sender is backlogged: while some path has room it offers packets
 *    and sends each on the picked path. If that path has no room, the
 *    packet waits in the path's local queue (sent as ACKs open the window,
 *    counted in `queued`), as a packet does that is sooner there than on a
 *    longer path with room. With no room anywhere, time jumps to the next
 *    ACK; a full local queue (a broken scheduler) stops the offers too.
 *  - Backlogged, every window stays full whichever path is chosen first, so
 *    those runs check room and capacity but not the cost order. A paced
 *    sender (one packet every fixed interval, below capacity) gives the
 *    scheduler a real choice, and fixed views check the cost itself.
 *  - Time is in fake nanoseconds. Throughput, shares and reorder spread are
 *    measured after a warm-up (the whole window leaves at t = 0 without
 *    slow start, a start-up burst a real sender does not make; its spread
 *    is printed, not checked).
 * Then the modes that need no simulation are checked on fixed views.
 */
#include "../pkt.h"
#include "../sched.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PKT 1400
#define MAXP 4
#define RING 4096 /* ACKs or local-queue packets per path */
#define MAXPKT (1 << 18)
#define MS 1000000ULL
#define SEC 1000000000ULL
#define MBIT 125000ULL /* bytes/s per Mbit/s */

static unsigned passed, failed;

/* One named assertion; `fmt` gives the figures behind a failure. */
__attribute__((format(printf, 3, 4))) static void
check(int ok, const char *name, const char *fmt, ...) {
  va_list ap;
  if (ok) {
    passed++;
    return;
  }
  failed++;
  fprintf(stderr, "FAIL %s: ", name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- the simulated paths ---- */

typedef struct spath {
  uint64_t rate, delay, cwnd; /* bytes/s, ns, bytes */
  uint64_t inflight, link_free, last_rx;
  uint64_t ack[RING]; /* ACK times, in order (FIFO link, fixed delay) */
  size_t ack_head, nack;
  uint32_t txq[RING]; /* packets waiting locally for window */
  size_t txq_head, ntxq;
  uint64_t picks;  /* scheduler decisions for this path, since reset */
  qe_sched_path v; /* the persistent fields: up, alive, role, ..., credit */
} spath;

typedef struct sim {
  spath p[MAXP];
  size_t n;
  int mode;
  uint64_t now;
  uint64_t interval;        /* paced: ns between packets; 0: backlogged */
  uint64_t next_offer;
  uint32_t nsent;           /* packets offered so far (their numbers) */
  uint64_t sent_at[MAXPKT]; /* when offered to the scheduler */
  uint64_t deliv[MAXPKT];   /* when it arrives; 0: never on the wire */
  uint64_t hold[MAXPKT];    /* the receiver holds it this long (aggregate) */
  uint64_t dropped;         /* local queue full (a broken scheduler) */
} sim;

static sim S;

static void sim_init(sim *s, int mode, size_t n, const unsigned *mbit,
                     const unsigned *delay_ms) {
  memset(s, 0, sizeof(*s));
  s->mode = mode;
  s->n = n;
  for (size_t i = 0; i < n; i++) {
    spath *p = &s->p[i];
    p->rate = mbit[i] * MBIT;
    p->delay = delay_ms[i] * MS;
    p->cwnd = p->rate * (2 * p->delay) / SEC * 6 / 5;
    p->v = (qe_sched_path){.up = 1, .alive = 1, .index = (uint8_t)i,
                           .weight = 1};
  }
}

static uint64_t ser_ns(const spath *p) {
  return PKT * SEC / p->rate;
}

/* Into the bottleneck queue now; delivery and ACK times follow. */
static void wire_send(sim *s, spath *p, uint32_t seq) {
  uint64_t start = p->link_free > s->now ? p->link_free : s->now;
  p->link_free = start + ser_ns(p);
  s->deliv[seq] = p->link_free + p->delay;
  p->ack[(p->ack_head + p->nack++) % RING] = s->deliv[seq] + p->delay;
  p->inflight += PKT;
}

static int window_open(const spath *p) {
  return p->inflight + PKT <= p->cwnd;
}

/* ACKs due by now leave the window; the local queue takes the room. */
static void sim_acks(sim *s) {
  for (size_t i = 0; i < s->n; i++) {
    spath *p = &s->p[i];
    while (p->nack && p->ack[p->ack_head] <= s->now) {
      p->last_rx = p->ack[p->ack_head];
      p->ack_head = (p->ack_head + 1) % RING;
      p->nack--;
      p->inflight -= PKT;
    }
    while (p->ntxq && window_open(p)) {
      wire_send(s, p, p->txq[p->txq_head]);
      p->txq_head = (p->txq_head + 1) % RING;
      p->ntxq--;
    }
  }
}

static void sim_view(const sim *s, qe_sched_path *v) {
  for (size_t i = 0; i < s->n; i++) {
    const spath *p = &s->p[i];
    uint64_t backlog = p->link_free > s->now ? p->link_free - s->now : 0;
    v[i] = p->v;
    v[i].srtt_ns = 2 * p->delay + backlog;
    v[i].min_rtt_ns = 2 * p->delay;
    v[i].cwnd = p->cwnd;
    v[i].inflight = p->inflight;
    v[i].queued = (uint64_t)p->ntxq * PKT;
    v[i].room = p->ntxq == 0 && window_open(p);
    v[i].last_rx = p->last_rx;
    v[i].measured = 1;
  }
}

/* The next ACK on any path, or a millisecond on if none is pending. */
static uint64_t sim_next_event(const sim *s) {
  uint64_t t = UINT64_MAX;
  for (size_t i = 0; i < s->n; i++) {
    const spath *p = &s->p[i];
    if (p->nack && p->ack[p->ack_head] < t) {
      t = p->ack[p->ack_head];
    }
  }
  return t == UINT64_MAX ? s->now + MS : t;
}

/*
 * Offers one packet; returns 0 when the sender must wait for an ACK. A
 * backlogged sender offers only while some path has room; a paced one
 * (`paced`) offers on its clock regardless.
 */
static int sim_offer(sim *s, int paced) {
  qe_sched_path v[MAXP];
  size_t out[2], k;
  int any_room = 0;
  uint32_t seq;
  spath *p;
  sim_view(s, v);
  for (size_t i = 0; i < s->n; i++) {
    any_room |= v[i].up && v[i].room;
  }
  if ((!any_room && !paced) || s->nsent >= MAXPKT) {
    return 0;
  }
  k = qe_sched_pick(s->mode, v, s->n, out);
  for (size_t i = 0; i < s->n; i++) {
    s->p[i].v.credit = v[i].credit;
  }
  if (k == 0 || out[0] >= s->n) {
    return 0;
  }
  /* Redundant copies are not simulated: only out[0] is sent. */
  p = &s->p[out[0]];
  p->picks++;
  seq = s->nsent++;
  s->sent_at[seq] = s->now;
  s->hold[seq] = s->mode == QE_MODE_AGGREGATE && k == 1
                     ? qe_sched_hold(v, s->n, out[0])
                     : 0;
  if (v[out[0]].room) {
    wire_send(s, p, seq);
    return 1;
  }
  if (p->ntxq == RING) {
    s->dropped++;
    return 0;
  }
  p->txq[(p->txq_head + p->ntxq++) % RING] = seq;
  return 1;
}

/* The sender until `until`. */
static void sim_run(sim *s, uint64_t until) {
  while (s->now < until) {
    uint64_t next;
    sim_acks(s);
    if (s->interval == 0) {
      while (sim_offer(s, 0)) {
      }
    } else if (s->now >= s->next_offer) {
      sim_offer(s, 1);
      s->next_offer += s->interval;
    }
    next = sim_next_event(s);
    if (s->interval && s->next_offer < next) {
      next = s->next_offer;
    }
    s->now = next;
  }
}

static void sim_reset_picks(sim *s) {
  for (size_t i = 0; i < s->n; i++) {
    s->p[i].picks = 0;
  }
}

/* When the receiver may deliver packet i: its arrival plus its hold. */
static uint64_t sim_due(const sim *s, uint32_t i) {
  return s->deliv[i] + s->hold[i];
}

/*
 * The reorder spread of packets offered in [from, to): the most by which a
 * packet comes due after one offered later (what the receive reorder
 * buffer must wait out beyond the holds).
 */
static uint64_t sim_spread(const sim *s, uint64_t from, uint64_t to) {
  uint64_t hi = 0, spread = 0;
  for (uint32_t i = 0; i < s->nsent; i++) {
    if (s->sent_at[i] < from || s->sent_at[i] >= to || s->deliv[i] == 0) {
      continue;
    }
    if (sim_due(s, i) > hi) {
      hi = sim_due(s, i);
    } else if (hi - sim_due(s, i) > spread) {
      spread = hi - sim_due(s, i);
    }
  }
  return spread;
}

/* The most a packet offered in [from, to) waited from its offer until it
 * came due, ns: the bond's delay as a flow inside sees it. */
static uint64_t sim_delay(const sim *s, uint64_t from, uint64_t to) {
  uint64_t most = 0;
  for (uint32_t i = 0; i < s->nsent; i++) {
    if (s->sent_at[i] >= from && s->sent_at[i] < to && s->deliv[i] != 0 &&
        sim_due(s, i) - s->sent_at[i] > most) {
      most = sim_due(s, i) - s->sent_at[i];
    }
  }
  return most;
}

static uint64_t sim_delivered_bytes(const sim *s, uint64_t from,
                                    uint64_t to) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < s->nsent; i++) {
    n += s->deliv[i] != 0 && sim_due(s, i) >= from && sim_due(s, i) < to;
  }
  return n * PKT;
}

/* A fixed view: up, room, 100 packets of window. */
/* A path whose rate is measured (its startup over) unless a test says. */
static qe_sched_path vp(int alive, uint64_t srtt_ms, uint8_t index) {
  return (qe_sched_path){.up = 1, .alive = alive, .srtt_ns = srtt_ms * MS,
                         .cwnd = 100 * PKT, .room = 1, .index = index,
                         .weight = 1, .measured = 1};
}

/* ---- aggregate on simulated paths (assertions 1, 2, 3) ---- */

#define WARMUP (500 * MS)
#define RUN (3 * SEC)

/*
 * Backlogged (load 0), every path's window stays full whatever the order of
 * choice, so shares follow capacity: each path is used and carries at most
 * its capacity share + 10 points. Paced below capacity, the scheduler
 * really chooses: the paths that deliver by the bond's delay (every path
 * that carries more than a tenth of its rate) tie, and the emptiest pipe
 * takes each packet, so shares follow the rates at any load; a path below
 * a tenth of the bond's rate does not set that delay, and light load stays
 * off it (shares per path, and the bond's delay).
 */
typedef struct scenario {
  const char *name;
  size_t n;
  unsigned mbit[MAXP], delay_ms[MAXP];
  double load;     /* paced at this fraction of the sum of rates; 0: not */
  double min_tput; /* delivered, as a fraction of what was offered */
  double lo[MAXP], hi[MAXP]; /* bounds on each path's share; hi 0: none */
  unsigned delay_ms_max; /* the most from offer to due time; 0: unchecked */
} scenario;

typedef struct figures {
  uint64_t sum_rate, rtt_lo, rtt_hi, slow_ser, total;
} figures;

static figures sim_figures(const sim *s) {
  figures f = {.rtt_lo = UINT64_MAX};
  for (size_t i = 0; i < s->n; i++) {
    const spath *p = &s->p[i];
    f.sum_rate += p->rate;
    f.total += p->picks;
    f.rtt_lo = 2 * p->delay < f.rtt_lo ? 2 * p->delay : f.rtt_lo;
    f.rtt_hi = 2 * p->delay > f.rtt_hi ? 2 * p->delay : f.rtt_hi;
    f.slow_ser = ser_ns(p) > f.slow_ser ? ser_ns(p) : f.slow_ser;
  }
  return f;
}

/* Shares: each within the scenario's bounds; backlogged, within capacity. */
static void aggregate_shares(const scenario *sc, const sim *s,
                             const figures *f, char *figs, size_t len) {
  size_t off = 0;
  for (size_t i = 0; i < s->n; i++) {
    const spath *p = &s->p[i];
    double share = f->total ? (double)p->picks / (double)f->total : 0;
    double cap = (double)p->rate / (double)f->sum_rate;
    int w = snprintf(figs + off, len - off, " %.1f%%", 100 * share);
    off += w > 0 && (size_t)w < len - off ? (size_t)w : 0;
    if (sc->load == 0) {
      check(p->picks > 0, "aggregate every path used",
            "%s: path %zu unused", sc->name, i);
      check(share <= cap + 0.10, "aggregate share <= capacity share + 10",
            "%s: path %zu carries %.1f%%, capacity share %.1f%%", sc->name,
            i, 100 * share, 100 * cap);
    }
    if (sc->hi[i] > 0) {
      check(share >= sc->lo[i] && share <= sc->hi[i], "aggregate shares",
            "%s: path %zu carries %.1f%%, want %.0f-%.0f%%", sc->name, i,
            100 * share, 100 * sc->lo[i], 100 * sc->hi[i]);
    }
  }
}

static void aggregate(const scenario *sc) {
  sim *s = &S;
  figures f;
  uint64_t spread, startup, bound;
  double offered, tput;
  char figs[64];
  sim_init(s, QE_MODE_AGGREGATE, sc->n, sc->mbit, sc->delay_ms);
  f = sim_figures(s);
  offered = (double)f.sum_rate * (sc->load > 0 ? sc->load : 1);
  if (sc->load > 0) {
    s->interval = (uint64_t)(PKT * SEC / offered);
  }
  sim_run(s, WARMUP);
  sim_reset_picks(s);
  sim_run(s, RUN);
  f = sim_figures(s);
  tput = (double)sim_delivered_bytes(s, WARMUP, RUN) /
         ((double)(RUN - WARMUP) / SEC) / offered;
  check(tput >= sc->min_tput, "aggregate throughput",
        "%s: %.3f of %s, want >= %.2f", sc->name, tput,
        sc->load > 0 ? "the offered load" : "the sum of rates", sc->min_tput);
  check(s->dropped == 0, "aggregate no local-queue overflow", "%s: %lu",
        sc->name, (unsigned long)s->dropped);
  aggregate_shares(sc, s, &f, figs, sizeof(figs));
  /* Assertion 3: what the receive reorder buffer must absorb. Held until
   * the bond's delay (or sent where it arrives first, past it), packets
   * come due about in the order sent, whatever the paths' RTTs: within the
   * slowest path's serialisation and 5 ms (sending on a path with room
   * whatever its delay, the spread was most of the RTT difference: 49 ms
   * on 5/40 ms, 42 on rural). The start-up burst is printed, not
   * checked. */
  bound = f.slow_ser + 5 * MS;
  spread = sim_spread(s, WARMUP, RUN);
  startup = sim_spread(s, 0, WARMUP);
  check(spread < bound, "aggregate reorder spread",
        "%s: %.2f ms, bound %.2f ms (serialisation %.3f + 5; RTT "
        "difference %.1f)",
        sc->name, (double)spread / MS, (double)bound / MS,
        (double)f.slow_ser / MS, (double)(f.rtt_hi - f.rtt_lo) / MS);
  if (sc->delay_ms_max) {
    uint64_t delay = sim_delay(s, WARMUP, RUN);
    check(delay <= sc->delay_ms_max * MS, "aggregate bond delay",
          "%s: %.2f ms, want at most %u", sc->name, (double)delay / MS,
          sc->delay_ms_max);
  }
  printf("%-24s shares%s  throughput %.3f  spread %.2f ms (bound %.2f, "
         "start-up %.2f)  delay %.2f ms\n",
         sc->name, figs, tput, (double)spread / MS, (double)bound / MS,
         (double)startup / MS, (double)sim_delay(s, WARMUP, RUN) / MS);
}

/* The cost and the aggregate choice on fixed views. */
static void aggregate_fixed(void) {
  qe_sched_path a = {.alive = 1, .up = 1, .srtt_ns = 20 * MS,
                     .cwnd = 100000, .inflight = 30000, .queued = 20000};
  qe_sched_path v[3];
  size_t out[2] = {9, 9};
  uint64_t c = qe_sched_cost(&a);
  /* srtt/2 + (inflight + queued) / (cwnd / srtt) = 10 ms + 10 ms */
  check(c == 20 * MS, "cost: half RTT + in flight and queued at cwnd/srtt",
        "%lu ns, want %lu", (unsigned long)c, (unsigned long)(20 * MS));
  a = (qe_sched_path){.srtt_ns = SEC, .cwnd = 1000, .inflight = 65536};
  c = qe_sched_cost(&a);
  check(c == SEC / 2 + SEC, "cost: rate floor 64 KiB/s", "%lu ns",
        (unsigned long)c);
  /* 0: 10 ms RTT, 90% of the window used: 5 + 9 ms; 1: 20 ms, idle: 10 */
  v[0] = vp(1, 10, 0);
  v[0].cwnd = 100000;
  v[0].inflight = 90000;
  v[1] = vp(1, 20, 1);
  v[2] = vp(0, 1, 2); /* the cheapest, but not alive */
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 1,
        "aggregate earliest delivery", "out[0] %zu, want 1", out[0]);
  v[0].inflight = 0;
  v[0].queued = 90000;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 1,
        "aggregate counts the local queue", "out[0] %zu, want 1", out[0]);
  v[0].queued = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 0,
        "aggregate earliest delivery", "out[0] %zu, want 0", out[0]);
  /* 0 without room, its queue empty: still there first (5 ms against 10) */
  v[0].room = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 0,
        "aggregate: a path without room whose queue delivers first",
        "out[0] %zu, want 0", out[0]);
  v[0].queued = 90000; /* 9 ms of queue at 10 MB/s: 14 ms against 10 */
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 1,
        "aggregate: a path with room when the other's queue delivers later",
        "out[0] %zu, want 1", out[0]);
  v[0].queued = 0;
  v[1].room = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 0,
        "aggregate no room anywhere: earliest delivery", "out[0] %zu, want 0",
        out[0]);
  /* With a lowest RTT known: the way there once, plus the bottleneck's
   * queue (in flight beyond one BDP). 100 Mbit/s at 60 ms with 1 MB in
   * flight: 30 ms + 250 kB standing at 12.5 MB/s = 50 ms. */
  a = (qe_sched_path){.alive = 1, .up = 1, .srtt_ns = 80 * MS,
                      .min_rtt_ns = 60 * MS, .rate = 12500000,
                      .inflight = 1000000};
  c = qe_sched_cost(&a);
  check(c == 50 * MS, "cost: half the lowest RTT + the standing queue",
        "%lu ns, want %lu", (unsigned long)c, (unsigned long)(50 * MS));
  a.inflight = 500000; /* below one BDP: no queue to wait behind */
  c = qe_sched_cost(&a);
  check(c == 30 * MS, "cost: no standing queue below one BDP", "%lu ns",
        (unsigned long)c);
  /* A 1 ms, 50 Mbit/s path with 350 kB queued (56 ms) against the long
   * path above (50 ms): the long one, although all of its megabyte in
   * flight at its rate (80 ms) plus half its smoothed RTT would say 120. */
  a.inflight = 1000000;
  a.room = 0;
  v[0] = (qe_sched_path){.alive = 1, .up = 1, .srtt_ns = 4 * MS,
                         .min_rtt_ns = 1 * MS, .rate = 6250000,
                         .inflight = 20000, .queued = 350000};
  v[1] = a;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out) == 1 && out[0] == 1,
        "aggregate: a long path's pipe is not a queue", "out[0] %zu, want 1",
        out[0]);
  v[0].queued = 250000; /* 40 ms: now the short path is sooner */
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out) == 1 && out[0] == 0,
        "aggregate: the short path while its queue is shorter",
        "out[0] %zu, want 0", out[0]);
}

/* ---- failover on simulated paths (assertion 4) ---- */

/* Runs a phase of `len`; 1 when every decision went to path `want`. */
static int failover_phase(sim *s, uint64_t len, size_t want, double *share) {
  uint64_t total = 0;
  sim_reset_picks(s);
  sim_run(s, s->now + len);
  for (size_t i = 0; i < s->n; i++) {
    total += s->p[i].picks;
  }
  *share = total ? (double)s->p[want].picks / (double)total : 0;
  return total > 0 && s->p[want].picks == total;
}

static void failover(void) {
  static const unsigned mbit[] = {50, 50}, delay[] = {10, 20};
  sim *s = &S;
  double share;
  int ok;
  sim_init(s, QE_MODE_FAILOVER, 2, mbit, delay);
  /* the backup first in the array, so index order alone would pick it */
  s->p[0].v.role = 1;
  s->p[1].v.role = 0;
  ok = failover_phase(s, SEC, 1, &share);
  check(ok, "failover healthy primary", "%.1f%% on the primary", 100 * share);
  printf("%-24s primary %.1f%%", "failover", 100 * share);
  s->p[1].v.alive = 0;
  ok = failover_phase(s, SEC, 0, &share);
  check(ok, "failover primary dead", "%.1f%% on the backup", 100 * share);
  printf(", primary dead: backup %.1f%%", 100 * share);
  s->p[1].v.alive = 1;
  ok = failover_phase(s, SEC, 1, &share);
  check(ok, "failover primary back", "%.1f%% on the primary", 100 * share);
  printf(", back: primary %.1f%%\n", 100 * share);
}

/* ---- the modes on fixed views (assertions 4 to 8) ---- */

static void failover_priority(void) {
  qe_sched_path v[3] = {vp(1, 10, 0), vp(1, 10, 1), vp(1, 10, 2)};
  size_t out[2] = {9, 9};
  size_t k;
  v[0].priority = 20;
  v[1].priority = 10;
  v[2].role = 1;
  v[2].priority = 0;
  k = qe_sched_pick(QE_MODE_FAILOVER, v, 3, out);
  check(k == 1 && out[0] == 1, "failover lowest priority primary",
        "got %zu paths, out[0] %zu, want path 1 (priority 10)", k, out[0]);
}

static void redundant(void) {
  qe_sched_path v[3] = {vp(1, 30, 0), vp(1, 10, 1), vp(1, 20, 2)};
  size_t out[2] = {9, 9};
  size_t k = qe_sched_pick(QE_MODE_REDUNDANT, v, 3, out);
  check(k == 2 && out[0] != out[1] && out[0] < 3 && out[1] < 3,
        "redundant two distinct paths", "got %zu: %zu, %zu", k, out[0],
        out[1]);
  /* only one with room: the second still gets a copy (it queues) */
  v[1].alive = 0;
  v[2].room = 0;
  k = qe_sched_pick(QE_MODE_REDUNDANT, v, 3, out);
  check(k == 2 && out[0] != out[1] && v[out[0]].alive && v[out[1]].alive,
        "redundant two distinct alive paths", "got %zu: %zu, %zu", k, out[0],
        out[1]);
  v[0].alive = 0;
  out[0] = 9;
  k = qe_sched_pick(QE_MODE_REDUNDANT, v, 3, out);
  check(k == 1 && out[0] == 2, "redundant one alive path",
        "got %zu, out[0] %zu, want 1 path: 2", k, out[0]);
}

static void weighted(void) {
  qe_sched_path v[3] = {vp(1, 10, 0), vp(1, 10, 1), vp(0, 10, 2)};
  unsigned count[3] = {0, 0, 0};
  size_t out[2];
  v[0].weight = 1;
  v[1].weight = 3;
  v[2].weight = 5; /* not alive: must get nothing */
  for (int i = 0; i < 10000; i++) {
    if (qe_sched_pick(QE_MODE_WEIGHTED, v, 3, out) == 1 && out[0] < 3) {
      count[out[0]]++;
    }
  }
  check(count[0] >= 2400 && count[0] <= 2600 && count[1] >= 7400 &&
            count[1] <= 7600,
        "weighted shares 1 to 3", "%.2f%% / %.2f%%, want 25/75 +- 1",
        count[0] / 100.0, count[1] / 100.0);
  check(count[2] == 0, "weighted not-alive path gets nothing", "%u picks",
        count[2]);
  printf("%-24s %.2f%% / %.2f%% / dead %u\n",
         "weighted 1:3", count[0] / 100.0, count[1] / 100.0, count[2]);
}

static void none_alive(void) {
  static const int modes[] = {QE_MODE_AGGREGATE, QE_MODE_FAILOVER,
                              QE_MODE_REDUNDANT, QE_MODE_WEIGHTED};
  for (size_t m = 0; m < 4; m++) {
    qe_sched_path v[3] = {vp(0, 10, 0), vp(0, 10, 1), vp(0, 10, 2)};
    size_t out[2] = {9, 9};
    size_t k;
    v[0].last_rx = 100;
    v[1].last_rx = 300;
    v[2].last_rx = 500;
    v[2].up = 0; /* heard from last, but down */
    k = qe_sched_pick(modes[m], v, 3, out);
    check(k == 1 && out[0] == 1, "none alive: latest heard up path",
          "mode %d: got %zu, out[0] %zu, want 1 path: 1", modes[m], k, out[0]);
    v[0].up = v[1].up = 0;
    k = qe_sched_pick(modes[m], v, 3, out);
    check(k == 0, "none up: no path", "mode %d: got %zu", modes[m], k);
  }
}

static void fastest(void) {
  /* the best is 20 ms (10 ms one way): another is kept up to 10 + 10/4 + 1
   * = 13.5 ms one way, 27 ms round trip */
  qe_sched_path v[4] = {vp(1, 30, 0), vp(1, 20, 1), vp(1, 26, 2),
                        vp(0, 1, 3)};
  size_t got;
  got = qe_sched_fastest(v, 4, QE_SCHED_NONE);
  check(got == 1, "fastest lowest srtt", "got %zu, want 1", got);
  got = qe_sched_fastest(v, 4, 2);
  check(got == 2, "fastest keeps current when close", "got %zu, want 2 "
        "(26 ms vs 20 ms)", got);
  v[2].srtt_ns = 28 * MS;
  got = qe_sched_fastest(v, 4, 2);
  check(got == 1, "fastest switches when clearly worse", "got %zu, want 1 "
        "(28 ms vs 20 ms)", got);
  got = qe_sched_fastest(v, 4, 0);
  check(got == 1, "fastest switches when clearly worse", "got %zu, want 1 "
        "(30 ms vs 20 ms)", got);
  v[1].alive = 0; /* now 28 ms is best; 30 is within 28 + 7 + 2 */
  got = qe_sched_fastest(v, 4, 1);
  check(got == 2, "fastest ignores not-alive paths", "got %zu, want 2", got);
  got = qe_sched_fastest(v, 4, 0);
  check(got == 0, "fastest keeps current when close", "got %zu, want 0", got);
  v[0].alive = v[2].alive = 0;
  v[0].last_rx = 100;
  v[2].last_rx = 300; /* heard last: the class still has a way */
  v[3].last_rx = 500;
  v[3].up = 0;
  got = qe_sched_fastest(v, 4, 0);
  check(got == 2, "fastest none alive: the latest heard up path",
        "got %zu, want 2", got);
  v[0].up = v[1].up = v[2].up = 0;
  got = qe_sched_fastest(v, 4, 0);
  check(got == QE_SCHED_NONE, "fastest none up", "got %zu", got);
  v[0].up = v[1].up = v[2].up = v[3].up = 1;
  v[0].last_rx = v[2].last_rx = v[3].last_rx = 0;
}

/* A loaded path for the class tests: `mbit`, lowest RTT `ms` (and srtt),
 * one BDP in flight under a window of two. */
static qe_sched_path cp(unsigned mbit, uint64_t ms, uint8_t index) {
  qe_sched_path p = vp(1, ms, index);
  p.min_rtt_ns = p.low_rtt_ns = ms * MS;
  p.rate = (uint64_t)mbit * 125000;
  p.inflight = p.rate * ms / 1000;
  p.cwnd = 2 * p.inflight;
  return p;
}

/*
 * A traffic class goes where its packet arrives first: BBR's RTT probe cuts
 * a loaded path's window under what it has in flight, and the class waits
 * for the ACKs of the difference (part of a round trip); a path that
 * carries little keeps room under the cut window and keeps the class.
 */
static void fastest_window(void) {
  /* 40 Mbit/s at 32 ms and 100 Mbit/s at 110 ms (the download of `lab
   * bond --uplink nr1=23.2/42.2mbit,15.8ms --uplink wifi2=57/106.8mbit,55ms`) */
  qe_sched_path v[2] = {cp(40, 32, 0), cp(100, 110, 1)};
  uint64_t open, shut, half;
  size_t got;
  got = qe_sched_fastest(v, 2, QE_SCHED_NONE);
  check(got == 0, "class: the short loaded path", "got %zu, want 0", got);
  open = qe_sched_class_cost(&v[0]);
  check(open == 16 * MS, "class cost: half the lowest RTT, no queue, room",
        "%llu ns, want 16 ms", (unsigned long long)open);
  /* The probe: the window at 4 packets, with one BDP in flight. */
  v[0].cwnd = 4 * PKT;
  shut = qe_sched_class_cost(&v[0]);
  check(shut > 16 * MS + 30 * MS && shut < 16 * MS + 32 * MS,
        "class cost: a shut window waits for its in-flight's ACKs",
        "%llu ns, want 16 ms + 32 ms x (in flight - window) / in flight",
        (unsigned long long)shut);
  got = qe_sched_fastest(v, 2, 0);
  check(got == 0, "class: a 48 ms wait beats a 55 ms way", "got %zu, want 0",
        got);
  /* Half a BDP (BBRv2's probe window): half a round trip's wait. */
  v[0].cwnd = v[0].inflight / 2;
  half = qe_sched_class_cost(&v[0]);
  check(half == 16 * MS + 16 * MS, "class cost: half the in-flight over the "
        "window waits half a round trip", "%llu ns, want 32 ms",
        (unsigned long long)half);
  /* Beside a 44 ms path, the probed one is passed over, kept or not. */
  v[1] = cp(100, 44, 1);
  got = qe_sched_fastest(v, 2, 0);
  check(got == 1, "class: passes over a shut window for a sooner path",
        "got %zu, want 1 (22 ms, not 16 + 16)", got);
  /* Carrying little (the ACKs of a download), a cut window keeps room. */
  v[0].inflight = 3 * PKT;
  v[0].cwnd = 4 * PKT;
  v[1] = cp(100, 110, 1);
  got = qe_sched_fastest(v, 2, 1);
  check(got == 0, "class: a cut window with room keeps the class",
        "got %zu, want 0 (16 ms, not 55)", got);
  /* A standing queue counts, as far as the recent RTT shows it. */
  v[0] = cp(40, 32, 0);
  v[0].inflight *= 3;
  v[0].cwnd = 4 * v[0].inflight;
  v[0].low_rtt_ns = 52 * MS;
  shut = qe_sched_class_cost(&v[0]);
  check(shut == 16 * MS + 20 * MS, "class cost: the queue the recent RTT shows",
        "%llu ns, want 36 ms", (unsigned long long)shut);
}

/* A path for repair(): `mbit` and lowest RTT `ms`, one BDP in flight,
 * `queued` packets in its own queue. */
static qe_sched_path rp(unsigned mbit, uint64_t ms, unsigned queued,
                        uint8_t index) {
  qe_sched_path p = vp(1, ms, index);
  p.rate = mbit * 125000ULL;
  p.min_rtt_ns = ms * MS;
  p.inflight = p.rate * ms / 1000;
  p.queued = queued * (uint64_t)PKT;
  p.room = queued == 0;
  return p;
}

static void repair(void) {
  /* 0: cable, 50 Mbit/s over 20 ms, 300 packets queued (67 ms of bulk);
   * 1: Starlink, 100 Mbit/s over 80 ms, room. */
  qe_sched_path v[3] = {rp(50, 20, 300, 0), rp(100, 80, 0, 1)};
  size_t out[2] = {9, 9}, got;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out) == 1 && out[0] == 1,
        "repair: a new packet goes to the long path with room", "got %zu",
        out[0]);
  v[0].queued = 0; /* the repair's view: only what went ahead of the bulk */
  got = qe_sched_repair(v, 2);
  check(got == 0, "repair: from the head of the queue, the short path",
        "got %zu, want 0 (10 ms vs 40 ms there)", got);
  v[0].queued = 200 * PKT; /* a burst of repairs already at its head */
  got = qe_sched_repair(v, 2);
  check(got == 1, "repair: a burst spills to the next path",
        "got %zu, want 1 (10 + 45 ms vs 40 ms)", got);
  v[0].queued = 0;
  /* The short path's bottleneck holds 100 ms of its own: its RTT says so. */
  v[0].inflight += v[0].rate / 10;
  v[0].srtt_ns = 120 * MS;
  got = qe_sched_repair(v, 2);
  check(got == 1, "repair: a standing queue at the bottleneck counts",
        "got %zu, want 1", got);
  v[0] = rp(50, 20, 300, 0);
  v[0].queued = 0;
  v[2] = rp(50, 4, 0, 2);
  v[2].cost = 10; /* metered, and the fastest */
  got = qe_sched_repair(v, 3);
  check(got == 0, "repair: the cheapest tier while one of it is alive",
        "got %zu, want 0", got);
  v[0].alive = v[1].alive = 0;
  got = qe_sched_repair(v, 3);
  check(got == 2, "repair: a metered path when no cheaper one is alive",
        "got %zu, want 2", got);
  v[2].up = 0;
  got = qe_sched_repair(v, 3);
  check(got == QE_SCHED_NONE, "repair: none alive and up", "got %zu", got);
  /* 50 Mbit/s: 6,250 bytes a ms; a day later nothing (and no overflow). */
  check(qe_sched_left(&v[0], 100000, 10 * MS) == 37500 &&
            qe_sched_left(&v[0], 100000, 0) == 100000 &&
            qe_sched_left(&v[0], 100000, 86400 * SEC) == 0,
        "repair: what waits at a head drains at the path's rate",
        "left %llu after 10 ms",
        (unsigned long long)qe_sched_left(&v[0], 100000, 10 * MS));
}

/* ---- the rate estimator (qe_rate) ---- */

/* Feeds `r` ACKs of PKT bytes at `mbit` for `ms` from *t, one per packet
 * time, each RTT sample `rtt`; `limited`: the path refused a packet in
 * every window (it was the limit), else it never did (app-limited); `sent`
 * (NULL: not counted) is its bytes sent so far, growing at `sent_mbit`. */
static void rate_feed_at(qe_rate *r, uint64_t *t, unsigned mbit, unsigned ms,
                         int limited, uint64_t min_rtt, uint64_t rtt,
                         uint64_t *sent, unsigned sent_mbit) {
  uint64_t gap = PKT * SEC / (mbit * MBIT), end = *t + ms * MS;
  for (; *t < end; *t += gap) {
    if (limited) {
      r->limited = 1;
    }
    if (sent != NULL) {
      *sent += (uint64_t)PKT * sent_mbit / mbit;
    }
    qe_rate_acked(r, PKT, *t, min_rtt, rtt, sent ? *sent : 0, 0);
  }
}

static void rate_feed_rtt(qe_rate *r, uint64_t *t, unsigned mbit,
                          unsigned ms, int limited, uint64_t min_rtt,
                          uint64_t rtt) {
  rate_feed_at(r, t, mbit, ms, limited, min_rtt, rtt, NULL, 0);
}

/* App-limited, the path sent `sent_mbit` while it delivered `mbit`. */
static void rate_feed_sent(qe_rate *r, uint64_t *t, unsigned mbit,
                           unsigned ms, uint64_t min_rtt, uint64_t rtt,
                           uint64_t *sent, unsigned sent_mbit) {
  rate_feed_at(r, t, mbit, ms, 0, min_rtt, rtt, sent, sent_mbit);
}

/* The same, every RTT sample at the lowest RTT (no queue). */
static void rate_feed(qe_rate *r, uint64_t *t, unsigned mbit, unsigned ms,
                      int limited, uint64_t min_rtt) {
  rate_feed_rtt(r, t, mbit, ms, limited, min_rtt, min_rtt);
}

static int near_mbit(uint64_t bw, unsigned mbit) {
  double m = (double)bw / MBIT;
  return m > mbit * 0.95 && m < mbit * 1.05;
}

static void rate(void) {
  qe_rate r = {0};
  uint64_t t = 1 * SEC, rtt = 40 * MS, bdp;
  check(qe_rate_cap(&r, rtt, 0, 16 * PKT) == 0, "rate: no cap before a measure",
        "cap %llu", (unsigned long long)qe_rate_cap(&r, rtt, 0, 16 * PKT));
  /* Startup: the rate doubles every window. */
  for (unsigned m = 2; m <= 64; m *= 2) {
    rate_feed(&r, &t, m, 40, 1, rtt);
  }
  bdp = r.bw * rtt / SEC;
  check(!r.filled && qe_rate_cap(&r, rtt, 0, 0) == bdp * QE_CAP_STARTUP_Q / 4,
        "rate: startup cap is QE_CAP_STARTUP_Q quarters of the BDP while the rate grows",
        "filled %d cap %llu bdp %llu", r.filled,
        (unsigned long long)qe_rate_cap(&r, rtt, 0, 0), (unsigned long long)bdp);
  /* The rate stops growing: startup ends after QE_FULL_WINDOWS windows. */
  rate_feed(&r, &t, 64, 40 * QE_FULL_WINDOWS + 20, 1, rtt);
  bdp = r.bw * rtt / SEC;
  check(r.filled && qe_rate_cap(&r, rtt, 0, 0) == bdp * QE_CAP_GAIN_Q / 4,
        "rate: a plateau ends startup; the cap is 1.25 x BDP",
        "filled %d cap %llu bdp %llu", r.filled,
        (unsigned long long)qe_rate_cap(&r, rtt, 0, 0), (unsigned long long)bdp);
  check(near_mbit(r.bw, 64), "rate: the measure is the rate delivered",
        "%.1f Mbit/s", (double)r.bw / MBIT);
  /* App-limited: a long lull at 2 Mbit/s keeps the measure. */
  rate_feed(&r, &t, 2, 2000, 0, rtt);
  check(near_mbit(r.bw, 64), "rate: app-limited windows do not lower it",
        "%.1f Mbit/s after a lull", (double)r.bw / MBIT);
  /* Limited at a lower rate (the link slowed): the measure follows within
   * QE_RATE_WINDOWS windows. */
  rate_feed(&r, &t, 16, 40 * (QE_RATE_WINDOWS + 2), 1, rtt);
  check(near_mbit(r.bw, 16), "rate: limited windows at a lower rate lower it",
        "%.1f Mbit/s", (double)r.bw / MBIT);
  check(qe_rate_cap(&r, rtt, 0, 100 * PKT) == 100 * PKT,
        "rate: the cap is at least the floor", "cap %llu",
        (unsigned long long)qe_rate_cap(&r, rtt, 0, 100 * PKT));
  /* An app-limited start does not end startup: only windows at the limit
   * count towards the plateau. */
  {
    qe_rate a = {0};
    uint64_t ta = 1 * SEC;
    for (unsigned m = 10; m <= 20; m++) { /* growing, but not by a quarter */
      rate_feed(&a, &ta, m, 40, 0, rtt);
    }
    check(!a.filled && near_mbit(a.bw, 20),
          "rate: app-limited windows do not end startup",
          "filled %d at %.1f Mbit/s", a.filled, (double)a.bw / MBIT);
  }
}

/* Startup ends when the bottleneck is full, before the rate stops growing:
 * a standing queue, or a burst of loss; not a delayed ACK or random loss. */
static void rate_full(void) {
  uint64_t rtt = 80 * MS;
  qe_rate q = {0}, d = {0}, l = {0}, n = {0}, a = {0};
  uint64_t tq = 1 * SEC, td = 1 * SEC, tl = 1 * SEC, tn = 1 * SEC,
           ta = 1 * SEC;
  for (unsigned m = 2; m <= 32; m *= 2) {
    rate_feed(&q, &tq, m, 80, 1, rtt);
    rate_feed(&d, &td, m, 80, 1, rtt);
    rate_feed(&l, &tl, m, 80, 1, rtt);
    rate_feed(&n, &tn, m, 80, 1, rtt);
    rate_feed(&a, &ta, m, 80, 0, rtt);
  }
  check(!q.filled, "rate full: growing at the lowest RTT is startup",
        "filled %d", q.filled);
  /* One packet lost in a window of eight (1 Mbit/s): not a burst. */
  {
    qe_rate o = {0};
    uint64_t to = 1 * SEC;
    rate_feed(&o, &to, 1, 80, 1, rtt);
    qe_rate_lost(&o, PKT);
    rate_feed(&o, &to, 1, 160, 1, rtt);
    check(!o.filled, "rate full: one loss in a small window is not a burst",
          "filled %d", o.filled);
  }
  /* The rate doubles once more, then stays, every sample 30 ms over 80 ms:
   * a standing queue, within a window of the plateau. */
  rate_feed_rtt(&q, &tq, 64, 3 * 80 + 10, 1, rtt, rtt + 30 * MS);
  check(q.filled, "rate full: a standing queue ends startup", "filled %d",
        q.filled);
  /* Samples 15 ms over 80 ms (under a quarter): not yet. */
  rate_feed_rtt(&d, &td, 64, 2 * 80, 1, rtt, rtt + 15 * MS);
  check(!d.filled, "rate full: a queue under a quarter of the RTT is not",
        "filled %d", d.filled);
  /* One delayed ACK per window (a 60 ms sample), the rest at 80 ms. */
  for (unsigned w = 0; w < 2; w++) {
    rate_feed_rtt(&d, &td, 128, 1, 1, rtt, rtt + 60 * MS);
    rate_feed(&d, &td, 128, 79, 1, rtt);
  }
  check(!d.filled, "rate full: a delayed ACK is not a queue", "filled %d",
        d.filled);
  /* A burst: an eighth of a window lost. */
  rate_feed(&l, &tl, 64, 40, 1, rtt);
  qe_rate_lost(&l, 64 * MBIT * 80 / 1000 / 8); /* 64 Mbit/s x 80 ms / 8 */
  rate_feed(&l, &tl, 64, 80, 1, rtt);
  check(l.filled, "rate full: a burst of loss ends startup", "filled %d",
        l.filled);
  /* 2% random loss while the rate grows: startup goes on. */
  for (unsigned m = 64; m <= 256; m *= 2) {
    for (unsigned k = 0; k < 8; k++) {
      rate_feed(&n, &tn, m, 10, 1, rtt);
      qe_rate_lost(&n, m * MBIT / 100 / 50); /* 2% of 10 ms */
    }
  }
  check(!n.filled, "rate full: random loss is not a full pipe", "filled %d",
        n.filled);
  /* A trickle (the path never refused a packet, and was sent what it
   * delivered) in a delay that stands 40 ms high: a path the scheduler has
   * barely used yet, not a full one. */
  {
    qe_rate k = a;
    uint64_t tk = ta, sk = 0;
    rate_feed_sent(&k, &tk, 2, 3 * 80, rtt, rtt + 40 * MS, &sk, 2);
    check(!k.filled, "rate full: a trickle in a long delay is not a full pipe",
          "filled %d", k.filled);
  }
  /* The path never refused a packet, but it was sent half again what it
   * delivered, and what we sent stood in its bottleneck's queue: the pipe
   * is full all the same. */
  {
    uint64_t sa = 0;
    rate_feed_sent(&a, &ta, 64, 3 * 80, rtt, rtt + 40 * MS, &sa, 96);
  }
  check(a.filled, "rate full: a standing queue ends startup below our cap",
        "filled %d", a.filled);
  /* A delay that wanders (0-35 ms over 80 ms, lab bond --jitter) while the
   * rate still doubles every window: not a full pipe; once the rate stops
   * growing, startup ends within QE_FULL_WINDOWS windows. */
  {
    qe_rate j = {0};
    uint64_t tj = 1 * SEC;
    unsigned w = 0, after = 0;
    for (unsigned m = 1; m <= 128; m *= 2, w++) {
      rate_feed_rtt(&j, &tj, m, 80, 1, rtt, rtt + (w / 2 % 2 ? 35 : 5) * MS);
    }
    check(!j.filled, "rate full: a wandering delay while the rate doubles is not a queue",
          "filled %d at %.1f Mbit/s", j.filled, (double)j.bw / MBIT);
    while (!j.filled && after < 10) {
      rate_feed_rtt(&j, &tj, 128, 80, 1, rtt, rtt + (w++ / 2 % 2 ? 35 : 5) * MS);
      after++;
    }
    check(j.filled && after <= QE_FULL_WINDOWS + 1 && near_mbit(j.bw, 128),
          "rate full: ...and startup ends at the plateau",
          "filled %d after %u windows at %.1f Mbit/s", j.filled, after,
          (double)j.bw / MBIT);
  }
  /* Keep-alives only (a few ACKs a window), each 40 ms late. */
  {
    qe_rate k = {0};
    uint64_t tk = 1 * SEC;
    for (; tk < 3 * SEC; tk += 100 * MS) {
      qe_rate_acked(&k, 100, tk, rtt, rtt + 40 * MS, 0, 0);
    }
    check(!k.filled, "rate full: a few late keep-alive ACKs are not a queue",
          "filled %d", k.filled);
  }
}

/* BBR's PROBE_RTT holds a path to a quarter of its window: throttled. */
static void throttled(void) {
  uint64_t cap = 1250000; /* 1.25 x a 1 MB BDP */
  check(!qe_sched_throttled(2000000, cap) && !qe_sched_throttled(cap / 2, cap),
        "throttled: a window at half our cap or more is not", "%s", "");
  check(qe_sched_throttled(cap / 2 - 1, cap) && qe_sched_throttled(5000, cap),
        "throttled: a window under half our cap is", "%s", "");
  check(!qe_sched_throttled(5000, 0),
        "throttled: not before the path's rate is measured", "%s", "");
}

/* ---- traffic classes: packets and flows ---- */

static void pkt_flow(void) {
  uint8_t v4[40] = {0x45, 46 << 2, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0,
                    10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x14, 0x51};
  uint8_t v6[48] = {0x6b, 0x80, 0, 0, 0, 8, 17, 64};
  uint8_t junk[24] = {0x20}; /* version 2: not IP */
  qe_pkt_info a = {0}, b = {0}, c = {0};
  qe_flows f;
  uint64_t t = 5 * SEC;
  memset(&f, 0, sizeof(f));
  check(qe_pkt_parse(v4, sizeof(v4), &a) == 0 && a.dscp == 46 &&
            a.proto == 6 && a.sport == 40000 && a.dport == 5201,
        "pkt: IPv4 TCP: DSCP, protocol, ports", "dscp %d proto %d %d>%d",
        a.dscp, a.proto, a.sport, a.dport);
  v6[8 + 15] = 1;
  v6[24 + 15] = 2;
  v6[40] = 0x13;
  v6[41] = 0x88;
  v6[43] = 53;
  check(qe_pkt_parse(v6, sizeof(v6), &b) == 0 && b.dscp == 46 &&
            b.proto == 17 && b.sport == 5000 && b.dport == 53,
        "pkt: IPv6 UDP: DSCP, protocol, ports", "dscp %d proto %d %d>%d",
        b.dscp, b.proto, b.sport, b.dport);
  v4[6] = 0x00;
  v4[7] = 0xb9; /* a later fragment: no transport header */
  check(qe_pkt_parse(v4, sizeof(v4), &c) == 0 && c.proto == -1 &&
            c.sport == -1,
        "pkt: a later fragment has no ports", "proto %d sport %d", c.proto,
        c.sport);
  v4[6] = 0x40;
  v4[7] = 0;
  check(qe_pkt_parse(v4, 19, &c) == -1 && qe_pkt_parse(v6, 39, &c) == -1 &&
            qe_pkt_parse(junk, sizeof(junk), &c) == -1,
        "pkt: not IP, or too short", "%s", "");
  qe_pkt_parse(v4, sizeof(v4), &b);
  v4[21] ^= 1; /* another source port */
  qe_pkt_parse(v4, sizeof(v4), &c);
  check(a.flow == b.flow && a.flow != c.flow,
        "pkt: one flow, one hash; another port, another", "%x %x %x",
        a.flow, b.flow, c.flow);
  check(!qe_flow_in_sequence(&f, a.flow, t),
        "flows: a flow never sequenced is not in the sequence", "%s", "");
  qe_flow_sequenced(&f, a.flow, t);
  check(qe_flow_in_sequence(&f, a.flow, t + QE_FLOW_ORDER_NS - 1) &&
            !qe_flow_in_sequence(&f, a.flow, t + QE_FLOW_ORDER_NS),
        "flows: in the sequence for QE_FLOW_ORDER_NS after its last", "%s",
        "");
  check(!qe_flow_in_sequence(&f, c.flow, t + 1),
        "flows: another flow is not held by it", "%s", "");
}

/* ---- early drop (qe_aqm) ---- */

/*
 * Another path stopped and its load moves here: startup again. A path kept
 * at 4 Mbit/s beside a busy one (its cap 1.25 x that BDP) gets startup's
 * cap and no early drop, then grows to the 60 Mbit/s it now carries and
 * leaves startup once its rate stops growing.
 */
static void rate_restart(void) {
  uint64_t rtt = 100 * MS, t = 1 * SEC, low, cap;
  qe_rate r = {0};
  qe_aqm a = {0};
  for (unsigned m = 1; m <= 4; m *= 2) {
    rate_feed(&r, &t, m, 100, 1, rtt);
  }
  check(!r.measured, "restart: not measured while its first startup lasts",
        "measured %d", r.measured);
  rate_feed(&r, &t, 4, 100 * (QE_FULL_WINDOWS + 1), 1, rtt);
  low = qe_rate_cap(&r, rtt, 0, 0);
  check(r.filled && near_mbit(r.bw, 4) &&
            low == r.bw * rtt / SEC * QE_CAP_GAIN_Q / 4,
        "restart: held at 4 Mbit/s, startup over", "filled %d bw %llu cap %llu",
        r.filled, (unsigned long long)r.bw, (unsigned long long)low);
  check(qe_aqm_drop(&a, r.bw * (QE_AQM_TARGET_NS * 2) / SEC, &r, t),
        "restart: before it, a queue of twice the target is dropped early",
        "%s", "");
  qe_rate_restart(&r);
  cap = qe_rate_cap(&r, rtt, 0, 0);
  check(!r.filled && cap == r.bw * rtt / SEC * QE_CAP_STARTUP_Q / 4,
        "restart: startup's cap", "filled %d cap %llu (was %llu)", r.filled,
        (unsigned long long)cap, (unsigned long long)low);
  check(!qe_aqm_drop(&a, r.bw * (QE_AQM_TARGET_NS * 4) / SEC, &r, t + SEC),
        "restart: no early drop in startup", "%s", "");
  {
    /* Its window (8 of its products) is not its rate: the scheduler prices
     * the queue its round trip shows at the 4 Mbit/s it carried. */
    qe_sched_path w = vp(1, 140, 0); /* 40 ms of queue */
    uint64_t known, windowed;
    w.min_rtt_ns = rtt;
    w.low_rtt_ns = w.srtt_ns;
    w.rate = r.bw;
    w.measured = r.measured;
    w.cwnd = 8 * r.bw * rtt / SEC;
    w.inflight = 2 * r.bw * rtt / SEC;
    known = qe_sched_cost(&w);
    w.measured = 0;
    windowed = qe_sched_cost(&w);
    check(r.measured && known > windowed + 30 * MS,
          "restart: still measured; its queue is priced at its rate, not "
          "at its window per RTT",
          "measured %d, %.1f ms against %.1f", r.measured,
          (double)known / MS, (double)windowed / MS);
  }
  for (unsigned m = 8; m <= 64; m *= 2) {
    rate_feed(&r, &t, m > 60 ? 60 : m, 100, 1, rtt);
    check(!r.filled, "restart: startup while the rate grows",
          "filled at %u Mbit/s", m);
  }
  rate_feed(&r, &t, 60, 100 * (QE_FULL_WINDOWS + 1), 1, rtt);
  check(r.filled && near_mbit(r.bw, 60), "restart: over at the new rate",
        "filled %d bw %llu", r.filled, (unsigned long long)r.bw);
}

static void aqm(void) {
  qe_rate r = {0};
  qe_aqm a = {0};
  uint64_t t = 1 * SEC, rtt = 20 * MS, q;
  unsigned drops = 0;
  /* A path that has carried only keep-alives: a few kbit/s measured. */
  rate_feed(&r, &t, 1, 200, 0, rtt);
  check(r.bw > 0 && !qe_aqm_drop(&a, 3 * PKT, &r, t) &&
            !qe_aqm_drop(&a, 1000 * PKT, &r, t + 1 * SEC),
        "aqm: no early drop before the path's rate is known",
        "bw %llu filled %d", (unsigned long long)r.bw, r.filled);
  /* 50 Mbit/s, startup over: 100 ms is 625 kB. */
  for (unsigned m = 2; m <= 50; m *= 2) {
    rate_feed(&r, &t, m, 40, 1, rtt);
  }
  rate_feed(&r, &t, 50, 40 * (QE_FULL_WINDOWS + 1), 1, rtt);
  q = r.bw * QE_AQM_TARGET_NS / SEC;
  check(r.filled && !qe_aqm_drop(&a, q - PKT, &r, t),
        "aqm: no drop under the target", "filled %d", r.filled);
  check(qe_aqm_drop(&a, q + PKT, &r, t) && !qe_aqm_drop(&a, q + PKT, &r, t + 1),
        "aqm: one drop over the target, then a pause", "%s", "");
  /* Standing over the target for 1 s: drops come faster (CoDel's law). */
  for (uint64_t u = t; u < t + 1 * SEC; u += 1 * MS) {
    drops += (unsigned)qe_aqm_drop(&a, q + PKT, &r, u);
  }
  check(drops > 10 && drops < 200, "aqm: drops grow while the queue stands",
        "%u drops in 1 s", drops);
  check(!qe_aqm_drop(&a, q / 2, &r, t + 2 * SEC) && a.count == 0,
        "aqm: under the target again resets the count", "count %llu",
        (unsigned long long)a.count);
  /* A short path's target is raised by its slack: 30 ms more queue. */
  {
    qe_aqm b = {.slack_ns = 30 * MS};
    uint64_t q30 = r.bw * (QE_AQM_TARGET_NS + 30 * MS) / SEC;
    check(!qe_aqm_drop(&b, q30 - PKT, &r, t + 3 * SEC) &&
              qe_aqm_drop(&b, q30 + PKT, &r, t + 3 * SEC),
          "aqm: the slack raises the target", "count %llu",
          (unsigned long long)b.count);
  }
}

/* ---- liveness ---- */

static void liveness(void) {
  uint64_t srtt = 80 * MS, pto = 130 * MS, t0 = 10 * SEC;
  /* Suspect: the oldest unacknowledged datagram waited past the PTO. */
  check(!qe_sched_overdue(t0, t0 - 129 * MS, pto) &&
            qe_sched_overdue(t0, t0 - 131 * MS, pto),
        "liveness: a datagram unacknowledged past the PTO is overdue", "%s",
        "");
  check(!qe_sched_overdue(t0, 0, pto),
        "liveness: nothing unacknowledged is never overdue", "%s", "");
  /* A loaded path heard 1 ms ago has been silent 1 ms. */
  check(qe_sched_silence(t0, t0 - 1 * MS, 0, srtt) == 1 * MS,
        "liveness: silence since the last packet", "%s", "");
  /* Idle until 1 ms ago, last heard 150 ms ago: its first ACK is due a
   * round trip after the send, so it has not been silent, nor dead. */
  {
    uint64_t sil = qe_sched_silence(t0, t0 - 150 * MS, t0 - 1 * MS, srtt);
    check(sil == 0 && sil <= qe_sched_dead_after(srtt, 1),
          "liveness: a path just busy again is not silent",
          "silence %llu ms", (unsigned long long)(sil / MS));
    sil = qe_sched_silence(t0 + srtt + 30 * MS, t0 - 150 * MS, t0 - 1 * MS,
                           srtt);
    check(sil == 31 * MS, "liveness: silence counts from the ACK's due time",
          "silence %llu ms", (unsigned long long)(sil / MS));
  }
  /* Dead: loaded, a round trip + 100 ms (at least 150); idle, two
   * keep-alive intervals + two round trips; at most 600 ms. */
  check(qe_sched_dead_after(80 * MS, 1) == 180 * MS &&
            qe_sched_dead_after(10 * MS, 1) == QE_PATH_DEAD_FAST_NS &&
            qe_sched_dead_after(80 * MS, 0) == 560 * MS &&
            qe_sched_dead_after(1 * MS, 0) == 402 * MS &&
            qe_sched_dead_after(500 * MS, 0) == QE_PATH_DEAD_NS,
        "liveness: dead-path times", "loaded 80 ms %llu, idle 80 ms %llu",
        (unsigned long long)(qe_sched_dead_after(80 * MS, 1) / MS),
        (unsigned long long)(qe_sched_dead_after(80 * MS, 0) / MS));
  check(qe_sched_dead_after(80 * MS, 1) < 1000 * MS &&
            qe_sched_dead_after(250 * MS, 0) < 1000 * MS,
        "liveness: a dead path is declared in under 1 s", "%s", "");
  /* The gap a path has shown before: nothing seen, no tolerance; a 40 ms
   * stall tolerates 60 ms; remembered at most up to the dead-path time;
   * forgotten after two quiet windows. */
  {
    qe_gap g = {0};
    uint64_t cap = qe_sched_dead_after(80 * MS, 1);
    check(qe_gap_tolerance(&g, t0) == 0,
          "gap: none seen, a suspect path's backlog moves at once", "%s", "");
    qe_gap_heard(&g, 3 * MS, cap, t0);
    qe_gap_heard(&g, 40 * MS, cap, t0 + 1 * SEC);
    qe_gap_heard(&g, 5 * MS, cap, t0 + 2 * SEC);
    check(qe_gap_tolerance(&g, t0 + 3 * SEC) == 60 * MS,
          "gap: half again the longest recent gap", "%llu ms",
          (unsigned long long)(qe_gap_tolerance(&g, t0 + 3 * SEC) / MS));
    qe_gap_heard(&g, 2 * MS, cap, t0 + QE_GAP_WINDOW_NS + 1 * SEC);
    check(qe_gap_tolerance(&g, t0 + QE_GAP_WINDOW_NS + 2 * SEC) == 60 * MS,
          "gap: the previous window still counts", "%s", "");
    qe_gap_heard(&g, 2 * MS, cap, t0 + 2 * QE_GAP_WINDOW_NS + 2 * SEC);
    check(qe_gap_tolerance(&g, t0 + 2 * QE_GAP_WINDOW_NS + 3 * SEC) == 3 * MS,
          "gap: two windows on, an old stall is forgotten", "%llu ms",
          (unsigned long long)(qe_gap_tolerance(
                                   &g, t0 + 2 * QE_GAP_WINDOW_NS + 3 * SEC) /
                               MS));
    check(qe_gap_tolerance(&g, t0 + 5 * QE_GAP_WINDOW_NS) == 0,
          "gap: nothing heard for two windows, nothing remembered", "%s", "");
    qe_gap_heard(&g, 5 * SEC, cap, t0 + 6 * QE_GAP_WINDOW_NS);
    check(qe_gap_tolerance(&g, t0 + 6 * QE_GAP_WINDOW_NS) == cap + cap / 2,
          "gap: an outage is remembered only up to the dead-path time",
          "%llu ms",
          (unsigned long long)(qe_gap_tolerance(&g, t0 + 6 * QE_GAP_WINDOW_NS) /
                               MS));
  }
}

/* ---- uplink cost: costlier paths take bulk only when cheaper ones cannot ---- */

static void cost_tiers(void) {
  qe_sched_path v[3];
  size_t out[2] = {9, 9};
  /* 0: cheap and slow (40 ms); 1: metered and fast (5 ms); 2: metered. */
  v[0] = vp(1, 40, 0);
  v[1] = vp(1, 5, 1);
  v[2] = vp(1, 5, 2);
  v[1].cost = 10;
  v[2].cost = 20;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 0,
        "cost: the cheap path although slower", "out[0] %zu, want 0", out[0]);
  v[0].room = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 1,
        "cost: the next cost up when the cheap one has no room",
        "out[0] %zu, want 1", out[0]);
  v[1].room = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 2,
        "cost: the costliest only when every cheaper one is full",
        "out[0] %zu, want 2", out[0]);
  v[2].room = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 0,
        "cost: no room anywhere: the cheapest queues it", "out[0] %zu, want 0",
        out[0]);
  v[0].room = v[1].room = v[2].room = 1;
  v[0].alive = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 1,
        "cost: a dead cheap path does not hold bulk back",
        "out[0] %zu, want 1", out[0]);
  v[0].alive = 1;
  v[2].cost = 0;
  v[2].srtt_ns = 1 * MS;
  v[0].inflight = v[1].inflight = 10 * PKT;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out) == 1 && out[0] == 2,
        "cost: within one cost, the emptiest pipe of those that deliver by "
        "the bond's delay",
        "out[0] %zu, want 2", out[0]);
  v[0].inflight = v[1].inflight = 0;
  for (unsigned k = 0; k < 100; k++) {
    /* Random costs and room: never a costlier path while a cheaper alive
     * one has room. */
    unsigned cheapest_room = 256;
    for (size_t i = 0; i < 3; i++) {
      v[i] = vp((k >> i) & 1 || i == 0, 1 + (k * 7 + i * 13) % 50,
                (uint8_t)i);
      v[i].cost = (uint8_t)((k * 31 + i * 17) % 4);
      v[i].room = ((k / 8) >> i) & 1;
      if (v[i].alive && v[i].room && v[i].cost < cheapest_room) {
        cheapest_room = v[i].cost;
      }
    }
    qe_sched_pick(QE_MODE_AGGREGATE, v, 3, out);
    check(cheapest_room == 256 || v[out[0]].cost == cheapest_room,
          "cost: random views keep the cheapest tier with room",
          "case %u: picked %zu cost %u, cheapest with room %u", k, out[0],
          v[out[0]].cost, cheapest_room);
  }
}

/* ---- startup does not stand in slow start's way ---- */

/* A sender in slow start (TCP inside) over a fast path: each round trip
 * the path delivers what was in flight, and the sender then wants twice
 * that in flight; the cap (qe_rate_cap, fed by those deliveries) bounds it.
 * Within two round trips of doubling unhindered, the sender reaches a
 * 100 Mbit/s BDP. At a gain of 2 over a measure that lags a round trip the
 * cap held every round back, and TCP inside, its packets waiting in our
 * queue, took the delay for a full pipe and left slow start (HyStart). */
static void rate_slow_start(void) {
  qe_rate r = {0};
  uint64_t t = 1 * SEC, rtt = 40 * MS;
  uint64_t inflight = 10 * PKT, want = inflight;
  uint64_t target = 100 * MBIT * rtt / SEC;
  unsigned rounds = 0, ideal = 0;
  for (uint64_t w = inflight; w < target; w *= 2) {
    ideal++;
  }
  while (inflight < target && rounds < 60) {
    uint64_t n = inflight / PKT, gap = rtt / n, cap;
    for (uint64_t i = 0; i < n; i++, t += gap) {
      if (inflight < want) {
        r.limited = 1; /* the cap refused the sender's packets */
      }
      qe_rate_acked(&r, PKT, t, rtt, rtt, 0, 0);
    }
    want = inflight * 2;
    cap = qe_rate_cap(&r, rtt, 0, 4 * PKT);
    inflight = cap != 0 && cap < want ? cap : want;
    rounds++;
  }
  check(rounds <= ideal + 2, "rate: a sender in slow start doubles through startup's cap",
        "%u round trips to %llu bytes in flight, %u unhindered", rounds,
        (unsigned long long)target, ideal);
}

/* ---- a configured rate seeds the measure ---- */

static void rate_seed(void) {
  qe_rate r = {0};
  uint64_t t = 1 * SEC, rtt = 40 * MS;
  qe_rate_seed(&r, 2500000); /* 20 Mbit/s */
  check(r.bw == 2500000 &&
            qe_rate_cap(&r, rtt, 0, 0) ==
                2500000 * rtt / SEC * QE_CAP_STARTUP_Q / 4,
        "seed: a cap (startup's gain x BDP) before any measure", "bw %llu",
        (unsigned long long)r.bw);
  rate_feed(&r, &t, 4, 200, 0, rtt);
  check(r.bw == 2500000, "seed: app-limited windows below it keep it",
        "bw %llu", (unsigned long long)r.bw);
  /* The transfer's first windows: the path is the limit (its QUIC window
   * is small after idling), at a rate that says nothing of the link. */
  rate_feed(&r, &t, 8, 3 * 40 + 10, 1, rtt);
  check(r.bw == 2500000, "seed: a few windows limited below it keep it",
        "%.1f Mbit/s", (double)r.bw / MBIT);
  rate_feed(&r, &t, 8, 40 * (QE_RATE_WINDOWS + 1), 1, rtt);
  check(near_mbit(r.bw, 8),
        "seed: limited windows age it out as any window's sample",
        "%.1f Mbit/s", (double)r.bw / MBIT);
  qe_rate_seed(&r, 2500000);
  check(near_mbit(r.bw, 8), "seed: never over a measure", "%.1f Mbit/s",
        (double)r.bw / MBIT);
  r = (qe_rate){0};
  qe_rate_seed(&r, 0);
  check(r.bw == 0 && qe_rate_cap(&r, rtt, 0, 0) == 0, "seed 0: unknown, no cap",
        "bw %llu", (unsigned long long)r.bw);
}

/* ---- the reorder wait ---- */

/* A datagram sent at 0 on the slowest path (RTT hi) is lost; the next one,
 * sent at once on the fastest (RTT lo), shows the gap at lo/2. The sender
 * declares the loss at 9/8 hi at the latest and sends it again on the
 * fastest path: it arrives at 9/8 hi + lo/2. The wait covers that for every
 * pair of RTTs, and stays within half a round trip of the slowest path
 * beyond it (held packets are memory and delay). */
static void reorder_wait(void) {
  static const uint64_t rtts[] = {2, 4, 10, 20, 40, 85, 160, 300};
  int covered = 1, bounded = 1;
  uint64_t worst_hi = 0, worst_lo = 0;
  for (size_t h = 0; h < sizeof(rtts) / sizeof(rtts[0]); h++) {
    for (size_t l = 0; l <= h; l++) {
      uint64_t hi = rtts[h] * MS, lo = rtts[l] * MS;
      uint64_t seen = lo / 2, repaired = hi + hi / 8 + lo / 2;
      uint64_t wait = qe_reorder_wait(hi);
      if (seen + wait < repaired) {
        covered = 0;
        worst_hi = rtts[h], worst_lo = rtts[l];
      }
      if (wait > repaired - seen + hi / 2 + QE_REORDER_SLACK_NS) {
        bounded = 0;
      }
    }
  }
  check(covered, "reorder wait: a loss on the slowest path is repaired in it",
        "not with RTTs %llu and %llu ms", (unsigned long long)worst_hi,
        (unsigned long long)worst_lo);
  check(bounded, "reorder wait: at most half an RTT past the repair", "%s",
        "");
}

/* ---- what a path's jitter and loss cost (qe_sched_cost) ---- */

/* A path at `mbit` and lowest RTT `ms`, a fifth more than one BDP in
 * flight, room; its smoothed RTT `srtt_ms`, its recent lowest RTT
 * `low_ms` (0: not known). */
static qe_sched_path jp(unsigned mbit, uint64_t ms, uint64_t srtt_ms,
                        uint64_t low_ms, uint8_t index) {
  qe_sched_path p = rp(mbit, ms, 0, index);
  p.inflight += p.inflight / 5;
  p.srtt_ns = srtt_ms * MS;
  p.low_rtt_ns = low_ms * MS;
  return p;
}

/* A path whose ACKs wait behind the peer's upload (back_ns): what covers
 * that wait is in flight but in no queue of ours. */
static void cost_back(void) {
  qe_sched_path v[2] = {rp(50, 40, 0, 0), rp(50, 40, 0, 1)};
  size_t out[2] = {9, 9};
  uint64_t with, without;
  v[0].inflight = v[0].rate * 80 / 1000; /* its pipe, with 40 ms back */
  v[0].low_rtt_ns = 80 * MS;
  v[0].back_ns = 40 * MS;
  with = qe_sched_cost(&v[0]);
  v[0].back_ns = 0;
  without = qe_sched_cost(&v[0]);
  check(with == 20 * MS && without == 60 * MS,
        "cost: a queue on the way back is no queue ahead of a packet sent now",
        "%.1f ms with it known, %.1f without", (double)with / MS,
        (double)without / MS);
  /* Half its pipe in flight against 4/5 of the other's: the emptier. */
  v[0].inflight = v[0].rate * 40 / 1000;
  v[0].back_ns = 40 * MS;
  v[1].inflight = v[1].rate * 32 / 1000;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out) == 1 && out[0] == 0,
        "cost: its pipe holds the queue back too (the emptier takes the packet)",
        "out[0] %zu", out[0]);
  v[0].back_ns = 0;
  check(qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out) == 1 && out[0] == 1,
        "cost: (counted as full without it)", "out[0] %zu", out[0]);
}

static void cost_jitter_loss(void) {
  /* Mix 4 of seed 541880898, as the gateway saw it: sat2 (0), clean, 69 ms,
   * measured at 9 Mbit/s (the scheduler kept it app-limited), its smoothed
   * RTT 12 ms up with jitter while its lowest sample of the last window is
   * 1 ms up; dsl1 (1), 77 ms, measured at 43 Mbit/s. */
  qe_sched_path v[2] = {jp(9, 69, 81, 70, 0), jp(43, 77, 77, 77, 1)};
  size_t out[2] = {9, 9}, n;
  uint64_t c0, c1;
  n = qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out);
  check(n == 1 && out[0] == 0,
        "cost: jitter is not a queue (the shorter path, by its recent lowest RTT)",
        "out[0] %zu, want 0 (costs %.1f vs %.1f ms)", out[0],
        (double)qe_sched_cost(&v[0]) / MS, (double)qe_sched_cost(&v[1]) / MS);
  v[0].low_rtt_ns = 81 * MS; /* every sample 12 ms up: a queue stands */
  n = qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out);
  check(n == 1 && out[0] == 1,
        "cost: a queue in every sample still counts",
        "out[0] %zu, want 1 (costs %.1f vs %.1f ms)", out[0],
        (double)qe_sched_cost(&v[0]) / MS, (double)qe_sched_cost(&v[1]) / MS);
  v[0].low_rtt_ns = 0; /* not known: the smoothed RTT stands in */
  check(qe_sched_cost(&v[0]) == qe_sched_cost(&(qe_sched_path){
                                     .up = 1, .alive = 1, .srtt_ns = 81 * MS,
                                     .min_rtt_ns = 69 * MS, .rate = v[0].rate,
                                     .inflight = v[0].inflight, .room = 1}),
        "cost: without a recent lowest RTT, the smoothed one", "%s", "");

  /* Two equal paths, 50 Mbit/s over 40 ms; 1 loses 3%. */
  v[0] = jp(50, 40, 40, 40, 0);
  v[1] = jp(50, 40, 40, 40, 1);
  v[1].loss_q16 = 65536 * 3 / 100;
  c0 = qe_sched_cost(&v[0]);
  c1 = qe_sched_cost(&v[1]);
  /* 3% of a repair's 1 + 1/8 + 1/2 round trips: 1.95 ms */
  check(c1 > c0 && c1 - c0 > 1900 * 1000ULL && c1 - c0 < 2000 * 1000ULL,
        "cost: a lossy path's packets come later by the loss share of a repair",
        "%.2f ms more", (double)(c1 - c0) / MS);
  v[1].inflight = v[0].inflight / 2; /* less loaded: would win a tie */
  n = qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out);
  check(n == 1 && out[0] == 0,
        "cost: the clean path before a lossy one of the same RTT",
        "out[0] %zu, want 0", out[0]);
  v[1].loss_q16 = 0;
  n = qe_sched_pick(QE_MODE_AGGREGATE, v, 2, out);
  check(n == 1 && out[0] == 1,
        "cost: without the loss, the less loaded one (the tie)",
        "out[0] %zu, want 1", out[0]);
  /* A repair: not over a 4 ms shorter path that loses 10%. */
  v[0] = rp(50, 30, 0, 0);
  v[0].loss_q16 = 65536 / 10;
  v[1] = rp(50, 34, 0, 1);
  check(qe_sched_repair(v, 2) == 1, "repair: not over a lossy path",
        "got %zu, want 1", qe_sched_repair(v, 2));
  v[0].loss_q16 = 0;
  check(qe_sched_repair(v, 2) == 0, "repair: the shorter path when it is clean",
        "got %zu, want 0", qe_sched_repair(v, 2));

  /* The estimator's two measures. */
  {
    qe_rate r = {0};
    uint64_t t = 1 * SEC, rtt = 40 * MS;
    check(qe_rate_low_rtt(&r) == 0 && r.loss_q16 == 0,
          "rate: no lowest RTT and no loss before a sample", "%s", "");
    rate_feed_rtt(&r, &t, 20, 200, 1, rtt, 52 * MS);
    check(qe_rate_low_rtt(&r) == 52 * MS,
          "rate: the recent lowest RTT is the queue that stands",
          "%.1f ms", (double)qe_rate_low_rtt(&r) / MS);
    rate_feed_rtt(&r, &t, 20, 41, 1, rtt, 45 * MS);
    check(qe_rate_low_rtt(&r) == 45 * MS,
          "rate: one window's lower samples lower it", "%.1f ms",
          (double)qe_rate_low_rtt(&r) / MS);
    rate_feed_rtt(&r, &t, 20, 200, 1, rtt, 52 * MS);
    check(qe_rate_low_rtt(&r) == 52 * MS,
          "rate: ...until two windows have passed without them", "%.1f ms",
          (double)qe_rate_low_rtt(&r) / MS);
    /* 3% of the packets lost, for 40 windows: at 20 Mbit/s, 1.79 packets
     * a ms; one lost every 18 ms (3.1%) */
    for (unsigned k = 0; k < 40 * 40; k++) {
      rate_feed(&r, &t, 20, 1, 1, rtt);
      if (k % 18 == 0) {
        qe_rate_lost(&r, PKT);
      }
    }
    check(r.loss_q16 > 65536 * 2 / 100 && r.loss_q16 < 65536 * 4 / 100,
          "rate: the loss share is measured", "%.2f%%",
          100.0 * r.loss_q16 / 65536);
    rate_feed(&r, &t, 20, 40 * 40, 1, rtt); /* 40 clean windows */
    check(r.loss_q16 < 65536 / 1000, "rate: the loss share decays",
          "%.3f%%", 100.0 * r.loss_q16 / 65536);
  }
}

/*
 * The bond's delivery delay (qe_sched_far) and the receiver's hold
 * (qe_sched_hold) on fixed views: the rural desk's four paths.
 */
static void far_hold(void) {
  static const unsigned mbit[4] = {25, 50, 50, 100}, way[4] = {15, 10, 35, 40};
  qe_sched_path v[4];
  for (size_t i = 0; i < 4; i++) {
    v[i] = vp(1, 2 * way[i], (uint8_t)i);
    v[i].min_rtt_ns = 2 * way[i] * MS;
    v[i].rate = mbit[i] * MBIT;
    v[i].measured = 1;
  }
  check(qe_sched_far(v, 4, 0) == 40 * MS, "far: the longest path that counts",
        "%.1f ms, want 40", (double)qe_sched_far(v, 4, 0) / MS);
  check(qe_sched_hold(v, 4, 1) == 30 * MS && qe_sched_hold(v, 4, 3) == 0,
        "hold: the short path's packet waits the difference, the long one's "
        "none",
        "cable %.1f ms, starlink %.1f ms",
        (double)qe_sched_hold(v, 4, 1) / MS,
        (double)qe_sched_hold(v, 4, 3) / MS);
  /* A queue on the short path counts against its hold. */
  v[1].inflight = v[1].cwnd = 200 * PKT;
  v[1].queued = 100 * PKT; /* 22.4 ms at 50 Mbit/s */
  check(qe_sched_hold(v, 4, 1) < 8 * MS && qe_sched_hold(v, 4, 1) > 7 * MS,
        "hold: less what the packet waits on its way",
        "%.2f ms, want 30 - 22.4", (double)qe_sched_hold(v, 4, 1) / MS);
  v[1].inflight = 0;
  v[1].queued = 0;
  v[1].cwnd = 100 * PKT;
  /* Paths that deliver by the bond's delay tie: the emptiest pipe (LTE,
   * nothing in flight) takes the packet, unless it loses: 1% at 70 ms is
   * a later delivery by its share of repairs, which come after the delay. */
  {
    size_t out[2];
    for (size_t i = 0; i < 4; i++) {
      v[i].inflight = i == 2 ? 0 : 2 * PKT;
    }
    check(qe_sched_pick(QE_MODE_AGGREGATE, v, 4, out) == 1 && out[0] == 2,
          "tie: the emptiest pipe among the paths within the bond's delay",
          "out[0] %zu, want 2", out[0]);
    v[2].loss_q16 = 65536 / 100;
    check(qe_sched_pick(QE_MODE_AGGREGATE, v, 4, out) == 1 && out[0] != 2,
          "tie: not a path whose repairs come after the bond's delay",
          "out[0] %zu", out[0]);
    check(qe_sched_hold(v, 4, 2) == 5 * MS,
          "hold: a lossy path's packet still waits for the bond's delay",
          "%.2f ms, want 5", (double)qe_sched_hold(v, 4, 2) / MS);
    v[2].loss_q16 = 0;
    for (size_t i = 0; i < 4; i++) {
      v[i].inflight = 0;
    }
  }
  /* A path whose startup has not ended, at the idle rate it measured
   * before the transfer (64 KiB/s, the floor), with two of its products in
   * flight: within its congestion window (100 packets), it is the emptier
   * pipe beside one at its product, and takes the tie (its measure grows
   * only so). */
  {
    size_t out[2];
    qe_sched_path w[2] = {vp(1, 30, 0), vp(1, 172, 1)};
    w[0].min_rtt_ns = 30 * MS;
    w[0].rate = 36 * MBIT;
    w[0].measured = 1;
    w[0].inflight = w[0].cwnd = 36 * MBIT * 30 / 1000;
    w[1].min_rtt_ns = 172 * MS;
    w[1].rate = 65536;
    w[1].measured = 0;
    w[1].inflight = 2 * 65536 * 172 / 1000;
    w[1].cwnd = 100 * PKT;
    check(qe_sched_pick(QE_MODE_AGGREGATE, w, 2, out) == 1 && out[0] == 1,
          "tie: a path in startup is filled to its window, not to the "
          "product of a rate it measured idle",
          "out[0] %zu, want 1", out[0]);
    /* Its delay wanders 20 ms over its lowest: past that idle rate's
     * product, what it has in flight is not a queue of 20 ms. */
    w[1].low_rtt_ns = 192 * MS;
    w[1].inflight = 4 * 65536 * 172 / 1000;
    check(qe_sched_cost(&w[1]) == 86 * MS,
          "cost: a path in startup is not queued at the rate it measured idle",
          "%.2f ms, want 86", (double)qe_sched_cost(&w[1]) / MS);
    w[1].measured = 1;
    check(qe_sched_cost(&w[1]) > 86 * MS, "cost: ...once measured, it is",
          "%.2f ms", (double)qe_sched_cost(&w[1]) / MS);
    check(qe_sched_pick(QE_MODE_AGGREGATE, w, 2, out) == 1 && out[0] == 0,
          "tie: ...once measured, to its product", "out[0] %zu, want 0",
          out[0]);
  }
  /* Starlink at 2 Mbit/s: under a tenth of the bond, the LTE path's delay
   * is the bond's. */
  v[3].rate = 2 * MBIT;
  check(qe_sched_far(v, 4, 0) == 35 * MS,
        "far: a path under a tenth of the bond's rate does not count",
        "%.1f ms, want 35", (double)qe_sched_far(v, 4, 0) / MS);
  /* ...unless it was never measured: it may be most of the bond. */
  v[3].measured = 0;
  check(qe_sched_far(v, 4, 0) == 40 * MS, "far: a path not measured counts",
        "%.1f ms, want 40", (double)qe_sched_far(v, 4, 0) / MS);
  v[3].alive = 0;
  check(qe_sched_far(v, 4, 0) == 35 * MS, "far: only alive paths count",
        "%.1f ms, want 35", (double)qe_sched_far(v, 4, 0) / MS);
  v[3].alive = 1;
  /* Another cost tier has its own delay. */
  v[3].cost = 1;
  check(qe_sched_far(v, 4, 0) == 35 * MS && qe_sched_far(v, 4, 1) == 40 * MS,
        "far: per cost tier", "tier 0 %.1f ms, tier 1 %.1f ms",
        (double)qe_sched_far(v, 4, 0) / MS, (double)qe_sched_far(v, 4, 1) / MS);
}

/* ---- each direction's queue ---- */

/* Two clocks an offset apart (any: here the peer's is 10^6 s ahead, and
 * then behind by more than ours has counted), a path of 20 ms one way:
 * the stamps' lowest wait is the base, and the echo is the wait above it. */
static void owd(void) {
  const uint64_t offsets[] = {1000000 * SEC, (uint64_t)0 - 5000 * SEC};
  for (size_t k = 0; k < 2; k++) {
    qe_owd o = {0};
    uint64_t t = 100 * SEC, off = offsets[k], one_way = 20 * MS;
    uint32_t e;
    check(qe_owd_echo(&o, t) == QE_OWD_NONE, "owd: nothing to echo before a stamp",
          "%s", "");
    /* an idle path: the stamps wait the one-way delay only */
    for (int i = 0; i < 10; i++, t += 5 * MS) {
      qe_owd_stamp(&o, t - one_way + off, t);
    }
    e = qe_owd_echo(&o, t);
    check(e == 0, "owd: no queue on an idle path, whatever the clocks' offset",
          "offset %zu: echo %u us", k, e);
    check(qe_owd_echo(&o, t) == QE_OWD_NONE,
          "owd: an echo covers the stamps since the last", "%s", "");
    /* a queue of 30 ms builds: the lowest of the period is echoed */
    for (int i = 0; i < 10; i++, t += 5 * MS) {
      uint64_t w = qe_owd_stamp(&o, t - one_way - (30 + (uint64_t)i) * MS + off, t);
      if (i == 9) {
        check(w == 39 * MS, "owd: a stamp's own wait above the base is returned",
              "offset %zu: %llu ns", k, (unsigned long long)w);
      }
    }
    e = qe_owd_echo(&o, t);
    check(e == 30000, "owd: the echo is the period's lowest wait above the base",
          "offset %zu: echo %u us", k, e);
    check(!qe_owd_echo_due(&o, t + 100 * MS, 10 * MS),
          "owd: no echo due without a stamp", "%s", "");
    qe_owd_stamp(&o, t - one_way + off, t);
    check(!qe_owd_echo_due(&o, t + 5 * MS, 10 * MS) &&
              qe_owd_echo_due(&o, t + 10 * MS, 10 * MS),
          "owd: an echo is due an interval after the last", "%s", "");
  }
  {
    /* Drift: the peer's clock runs 50 ppm slow, so each stamp reads as
     * waiting longer. The base follows within QE_OWD_BUCKETS buckets. */
    qe_owd o = {0};
    uint64_t t = 10 * SEC, step = 100 * MS, end = t + 30 * QE_OWD_BUCKET_NS;
    uint32_t e = 0;
    for (; t < end; t += step) {
      uint64_t drift = (t - 10 * SEC) / 20000; /* 50 ppm */
      qe_owd_stamp(&o, t - 20 * MS - drift, t);
    }
    e = qe_owd_echo(&o, t);
    check(e != QE_OWD_NONE &&
              e <= (uint64_t)QE_OWD_BUCKETS * QE_OWD_BUCKET_NS / 20000 / 1000 + 1,
          "owd: a clock's drift reads as a queue of at most the buckets' span of it",
          "echo %u us after %llu s", e,
          (unsigned long long)(30 * QE_OWD_BUCKET_NS / SEC));
  }
  {
    /* The sender's side: echoes of its forward queue, the window's lowest. */
    qe_owd o = {0};
    uint64_t t = 5 * SEC, win = 40 * MS;
    check(qe_owd_forward(&o, t, win) == UINT64_MAX,
          "owd: no echo, no forward queue known", "%s", "");
    qe_owd_echoed(&o, 9000, t, win);
    qe_owd_echoed(&o, 4000, t + 10 * MS, win);
    qe_owd_echoed(&o, 6000, t + 20 * MS, win);
    check(qe_owd_forward(&o, t + 30 * MS, win) == 4 * MS,
          "owd: the forward queue is the window's lowest echo", "%llu ns",
          (unsigned long long)qe_owd_forward(&o, t + 30 * MS, win));
    qe_owd_echoed(&o, 7000, t + 50 * MS, win);
    check(qe_owd_forward(&o, t + 50 * MS, win) == 4 * MS &&
              qe_owd_forward(&o, t + 90 * MS, win) == 7 * MS,
          "owd: the window before counts until a new one has passed",
          "%llu, %llu ns",
          (unsigned long long)qe_owd_forward(&o, t + 50 * MS, win),
          (unsigned long long)qe_owd_forward(&o, t + 90 * MS, win));
    check(qe_owd_forward(&o, t + 200 * MS, win) == UINT64_MAX,
          "owd: echoes two windows old count no more", "%s", "");
  }
}

/* Feeds `r` ACKs at `mbit` for `ms` from *t as rate_feed_rtt does, and in
 * each packet time a stamp from the peer that waited `back` (the queue our
 * ACKs come back through) and an echo of our own queue `fwd` (UINT64_MAX:
 * none). */
static void rate_feed_ways(qe_rate *r, uint64_t *t, unsigned mbit,
                           unsigned ms, int limited, uint64_t min_rtt,
                           uint64_t back, uint64_t fwd) {
  uint64_t gap = PKT * SEC / (mbit * MBIT), end = *t + ms * MS;
  for (; *t < end; *t += gap) {
    r->limited |= limited;
    qe_rate_back_seen(r, back);
    if (fwd != UINT64_MAX) {
      qe_rate_fwd_seen(r, fwd);
    }
    qe_rate_acked(r, PKT, *t, min_rtt, min_rtt + back + (fwd != UINT64_MAX ? fwd : 0),
                  0, 0);
  }
}

/* Each direction's queue (the peer's stamps, its echoes of ours) in the rate
 * and the cap, and the send times of what is acknowledged. */
static void rate_two_ways(void) {
  uint64_t rtt = 40 * MS;
  {
    /* The peer's upload holds our ACKs 60 ms on the way back while our
     * download's rate doubles: that is no queue of ours. The same RTTs
     * with no stamp to say where they waited end startup. */
    qe_rate a = {0}, b = {0};
    uint64_t ta = 1 * SEC, tb = 1 * SEC;
    for (unsigned m = 1; m <= 64; m *= 2) {
      rate_feed_ways(&a, &ta, m, 80, 1, rtt, 60 * MS, UINT64_MAX);
      rate_feed_rtt(&b, &tb, m, 80, 1, rtt, rtt + 60 * MS);
    }
    check(!a.filled && near_mbit(a.bw, 64),
          "two ways: a queue on the way back does not end startup",
          "filled %d at %.1f Mbit/s", a.filled, (double)a.bw / MBIT);
    check(b.filled, "two ways: (the same RTTs, not told apart, end it)",
          "filled %d at %.1f Mbit/s", b.filled, (double)b.bw / MBIT);
    /* ...but a queue of ours on top of it does, while the rate is flat. */
    for (unsigned w = 0; w < 2 * QE_FULL_WINDOWS && !a.filled; w++) {
      rate_feed_ways(&a, &ta, 64, 80, 1, rtt, 60 * MS, 20 * MS);
    }
    check(a.filled && near_mbit(a.bw, 64),
          "two ways: our own queue beyond it ends startup",
          "filled %d at %.1f Mbit/s", a.filled, (double)a.bw / MBIT);
  }
  {
    /* The cap covers the queue back, and only what the RTT holds of it. */
    qe_rate r = {0};
    uint64_t t = 1 * SEC, bdp, back, cap;
    for (unsigned m = 1; m <= 64; m *= 2) {
      rate_feed_ways(&r, &t, m, 80, 1, rtt, 30 * MS, UINT64_MAX);
    }
    rate_feed_ways(&r, &t, 64, 80 * (QE_FULL_WINDOWS + 2), 1, rtt, 30 * MS, 20 * MS);
    /* its recent lowest RTT: rtt + 30 back + 20 ours */
    back = qe_rate_back(&r, rtt);
    check(back == 30 * MS, "two ways: the queue back is what the stamps waited",
          "%llu ns", (unsigned long long)back);
    check(qe_rate_back(&r, rtt + 40 * MS) == 10 * MS &&
              qe_rate_back(&r, rtt + 50 * MS) == 0 &&
              qe_rate_back(&r, UINT64_MAX) == 0,
          "two ways: ...at most what the round trip holds above its lowest (a drifting clock)",
          "%llu ns", (unsigned long long)qe_rate_back(&r, rtt + 40 * MS));
    bdp = r.bw * rtt / SEC;
    cap = qe_rate_cap(&r, rtt, back, 0);
    check(r.filled && cap == bdp * QE_CAP_GAIN_Q / 4 + r.bw * back / SEC,
          "two ways: the cap is the gain's BDP plus the rate times the queue back",
          "cap %llu, bdp %llu", (unsigned long long)cap, (unsigned long long)bdp);
    {
      qe_rate n = {0};
      n.last_rtt = rtt + 30 * MS;
      check(qe_rate_back(&n, rtt) == 0,
            "two ways: no stamp from the peer, no queue back counted", "%s", "");
    }
  }
  {
    /* Limited, the link halves, and our own queue stands (the echo never
     * falls below a quarter of the RTT): the measure follows at once. Below
     * that, or with no echo, it keeps the higher samples as before. */
    const uint64_t fwd[] = {20 * MS, 2 * MS, UINT64_MAX};
    for (size_t k = 0; k < 3; k++) {
      qe_rate r = {0};
      uint64_t t = 1 * SEC;
      for (unsigned m = 1; m <= 64; m *= 2) {
        rate_feed(&r, &t, m, 80, 1, rtt);
      }
      rate_feed(&r, &t, 64, 80 * (QE_FULL_WINDOWS + 2), 1, rtt);
      rate_feed_ways(&r, &t, 32, 3 * 40, 1, rtt, 0, fwd[k]);
      if (k == 0) {
        check(r.filled && near_mbit(r.bw, 32),
              "two ways: a standing queue of ours makes the measure what the link carries now",
              "%.1f Mbit/s", (double)r.bw / MBIT);
      } else {
        check(r.filled && near_mbit(r.bw, 64),
              "two ways: a short queue or none keeps the measure's window",
              "fwd %zu: %.1f Mbit/s", k, (double)r.bw / MBIT);
      }
    }
  }
  {
    /* ACKs that waited on the way back come in a burst: the packets left at
     * 50 Mbit/s, their ACKs come twice as fast for 80 ms, then none for 80.
     * Without the send times, a window (40 ms) in the burst reads 100. */
    qe_rate a = {0}, b = {0};
    uint64_t gap = PKT * SEC / (50 * MBIT), sent = 1 * SEC, t = 1 * SEC + rtt;
    for (unsigned burst = 0; burst < 40; burst++) {
      uint64_t start = t;
      for (uint64_t k = 0; k < 160 * MS / gap; k++) {
        a.limited = b.limited = 1;
        qe_rate_acked(&a, PKT, start + k * gap / 2, rtt, rtt, 0, sent);
        qe_rate_acked(&b, PKT, start + k * gap / 2, rtt, rtt, 0, 0);
        sent += gap;
      }
      t = start + 160 * MS;
    }
    check(a.bw <= 52 * MBIT, "two ways: ACKs in bursts read the rate the packets left at",
          "%.1f Mbit/s", (double)a.bw / MBIT);
    check(b.bw >= 90 * MBIT, "two ways: (their arrival alone reads twice that)",
          "%.1f Mbit/s", (double)b.bw / MBIT);
  }
}

int main(void) {
  static const scenario scs[] = {
      /* the assertions' backlogged cases */
      {"equal 2x50M 10ms", 2, {50, 50}, {10, 10}, 0, 0.95,
       {0.45, 0.45}, {0.55, 0.55}, 0},
      {"unequal RTT 5/40ms", 2, {50, 50}, {5, 40}, 0, 0.90, {0}, {0}, 0},
      {"rural 25/50/50/100M", 4, {25, 50, 50, 100}, {15, 10, 35, 40}, 0,
       0.90, {0}, {0}, 0},
      /* paced: the paths fill together (shares follow the rates), light
       * load too, at the longest counted path's delay */
      {"paced 20% 5/40ms", 2, {50, 50}, {5, 40}, 0.2, 0.99, {0.40, 0.40},
       {0.60, 0.60}, 45},
      {"paced 60% 5/40ms", 2, {50, 50}, {5, 40}, 0.6, 0.99, {0.40, 0.40},
       {0.60, 0.60}, 45},
      {"paced 50% 2x50M 10ms", 2, {50, 50}, {10, 10}, 0.5, 0.99,
       {0.45, 0.45}, {0.55, 0.55}, 15},
      {"paced 60% rural", 4, {25, 50, 50, 100}, {15, 10, 35, 40}, 0.6, 0.99,
       {0.06, 0.16, 0.16, 0.34}, {0.16, 0.28, 0.28, 0.54}, 45},
      /* a path under a tenth of the bond's rate does not set its delay:
       * light load stays on the fast path, at its own delay */
      {"paced 20% 100M 5ms + 5M 60ms", 2, {100, 5}, {5, 60}, 0.2, 0.99,
       {0.99, 0}, {1, 0.01}, 8},
  };
  for (size_t i = 0; i < sizeof(scs) / sizeof(scs[0]); i++) {
    aggregate(&scs[i]);
  }
  aggregate_fixed();
  far_hold();
  failover();
  failover_priority();
  redundant();
  weighted();
  none_alive();
  fastest();
  fastest_window();
  repair();
  rate();
  owd();
  rate_two_ways();
  rate_slow_start();
  rate_full();
  throttled();
  pkt_flow();
  rate_restart();
  aqm();
  liveness();
  reorder_wait();
  cost_tiers();
  cost_jitter_loss();
  cost_back();
  rate_seed();
  printf("sched_test: %u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
