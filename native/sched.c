/* The bonding scheduler (see sched.h). */
#include "sched.h"

/* The path's rate, bytes/s: ngtcp2 0.12's delivery_rate_sec overshoots
 * wildly on shaped links (GBytes/s on 50 Mbit/s), so our own measure, else
 * the window per RTT; at least 64 KiB/s. */
static uint64_t rate_of(const qe_sched_path *p) {
  uint64_t win = p->srtt_ns ? p->cwnd * 1000000000ULL / p->srtt_ns : 0;
  uint64_t rate = p->rate ? p->rate : win;
  /* Startup: the rate measured so far is what the path was sent (idle
   * before a transfer: 0-1 Mbit/s), not what it carries. Taken as its
   * rate, a packet beyond that rate's product stood in a queue of the
   * jitter's length (a 259 Mbit/s, 83 ms uplink whose delay wanders by up
   * to 30 ms: 2 Mbit/s, 47 KB in flight priced 6.6 ms of queue), the path
   * lost every tie at the bond's delay, was sent no more than it measured,
   * and carried 1-3 Mbit/s of a download beside a 135 Mbit/s, 15 ms one
   * (`bench/multipath --random 20 --seed 181310126 --mix 1`, both
   * directions at once, -P4). What its congestion window carries per
   * round trip (the QUIC stack's startup grows it as the path delivers) is
   * the least it may carry. */
  if (!p->measured && win > rate) {
    rate = win;
  }
  return rate < 65536 ? 65536 : rate;
}

/* How fast our own queue on p leaves: at the path's rate, or at what its
 * window lets out per round trip when that is less (a window cut after
 * losses admits less than the link carries). */
static uint64_t drain_of(const qe_sched_path *p, uint64_t rate) {
  if (p->srtt_ns && p->cwnd) {
    uint64_t w = p->cwnd * 1000000000ULL / p->srtt_ns;
    w = w < 65536 ? 65536 : w;
    return w < rate ? w : rate;
  }
  return rate;
}

/* What p's losses add to a packet's delivery, on average (qe_sched_cost):
 * its loss share of the way to the repair. */
static uint64_t repair_delay(const qe_sched_path *p) {
  uint64_t repair = p->srtt_ns + p->srtt_ns / 8 + p->srtt_ns / 2;
  return repair * p->loss_q16 >> 16;
}

/* The bytes standing in p's bottleneck queue ahead of a packet sent now,
 * for a path whose lowest RTT is known (qe_sched_cost). */
static uint64_t standing_of(const qe_sched_path *p, uint64_t rate) {
  /* In flight beyond one BDP stands in the bottleneck's queue (and in
   * delayed ACKs): a new packet waits behind it. Counting all of it, as
   * for an unknown RTT, would count the way there twice and keep a
   * long path idle while a short one's queue grew by its whole RTT. */
  uint64_t bdp = rate * (p->min_rtt_ns + p->back_ns) / 1000000000ULL;
  uint64_t standing = p->inflight > bdp ? p->inflight - bdp : 0;
  /* ...but only as much as the path's round trip says stands there:
   * beyond a BDP at a rate measured too low (a path the others kept
   * app-limited, or one that has not left startup) there is no queue,
   * and counting one priced the path out of the traffic that would have
   * measured it. The round trip is its recent lowest sample, not the
   * smoothed one, which counts jitter as a queue (qe_rate_low_rtt). */
  uint64_t recent = p->low_rtt_ns ? p->low_rtt_ns : p->srtt_ns;
  uint64_t seen;
  if (recent <= p->min_rtt_ns + p->back_ns) {
    return 0;
  }
  seen = rate * (recent - p->min_rtt_ns - p->back_ns) / 1000000000ULL;
  return standing < seen ? standing : seen;
}

/* qe_sched_cost without the share of repairs: when a packet sent on p now
 * arrives, if it is not lost. */
static uint64_t arrival_of(const qe_sched_path *p) {
  uint64_t rate = rate_of(p);
  if (p->min_rtt_ns) {
    return p->min_rtt_ns / 2 + standing_of(p, rate) * 1000000000ULL / rate +
           (p->queued ? p->queued * 1000000000ULL / drain_of(p, rate) : 0);
  }
  return p->srtt_ns / 2 + (p->inflight + p->queued) * 1000000000ULL / rate;
}

uint64_t qe_sched_cost(const qe_sched_path *p) {
  return arrival_of(p) + repair_delay(p);
}

uint64_t qe_sched_class_cost(const qe_sched_path *p) {
  uint64_t rate = rate_of(p);
  uint64_t cost = p->min_rtt_ns ? p->min_rtt_ns / 2 +
                                      standing_of(p, rate) * 1000000000ULL /
                                          rate
                                : p->srtt_ns / 2;
  /* The window: what is in flight beyond it is acknowledged first, and
   * that comes back over about a round trip. */
  if (p->inflight > p->cwnd) {
    cost += p->srtt_ns * (p->inflight - p->cwnd) / p->inflight;
  }
  return cost + repair_delay(p);
}

/* Half a path's lowest RTT (its smoothed one until that is known). */
static uint64_t way_of(const qe_sched_path *p) {
  return (p->min_rtt_ns ? p->min_rtt_ns : p->srtt_ns) / 2;
}

uint64_t qe_sched_far(const qe_sched_path *paths, size_t n, unsigned tier) {
  uint64_t far = UINT64_MAX, total = 0;
  for (size_t j = 0; j < n; j++) {
    if (paths[j].alive && paths[j].cost == tier) {
      total += rate_of(&paths[j]);
    }
  }
  for (size_t j = 0; j < n; j++) {
    uint64_t beyond = 0, way;
    int unknown = 0;
    if (!paths[j].alive || paths[j].cost != tier) {
      continue;
    }
    way = way_of(&paths[j]);
    for (size_t k = 0; k < n; k++) {
      if (paths[k].alive && paths[k].cost == tier &&
          way_of(&paths[k]) > way) {
        beyond += rate_of(&paths[k]);
        unknown |= !paths[k].measured;
      }
    }
    if (!unknown && beyond * QE_SCHED_FAR_SHARE <= total && way < far) {
      far = way;
    }
  }
  return far == UINT64_MAX ? 0 : far;
}

uint64_t qe_sched_hold(const qe_sched_path *paths, size_t n, size_t i) {
  uint64_t far = qe_sched_far(paths, n, paths[i].cost);
  uint64_t at = arrival_of(&paths[i]);
  return far > at ? far - at : 0;
}

/* How full a path's pipe is: what it has in flight and queued, in
 * thousandths of its bandwidth-delay product (its window until its lowest
 * RTT is known). */
static uint64_t fill_of(const qe_sched_path *p) {
  uint64_t bdp = p->min_rtt_ns ? rate_of(p) * (p->min_rtt_ns + p->back_ns) /
                                     1000000000ULL
                               : p->cwnd;
  return (p->inflight + p->queued) * 1000 / (bdp ? bdp : 1);
}

/* Bytes in flight on p, as time at its rate: how loaded it is. */
static uint64_t load_of(const qe_sched_path *p) {
  return p->inflight * 1000000000ULL / rate_of(p);
}

/* Expected deliveries within this of each other are a tie... */
#define QE_SCHED_TIE_NS (1000000ULL)

/* ...which the less loaded path wins: paths of about the same RTT share
 * the traffic instead of one filling up first. */
static int sooner(uint64_t ca, uint64_t la, uint64_t cb, uint64_t lb) {
  if (ca + QE_SCHED_TIE_NS < cb) {
    return 1;
  }
  if (cb + QE_SCHED_TIE_NS < ca) {
    return 0;
  }
  return la < lb || (la == lb && ca < cb);
}

/* Lower sorts first: primaries, then by priority, then by index. */
static uint32_t failover_rank(const qe_sched_path *p) {
  return ((uint32_t)p->role << 24) | ((uint32_t)p->priority << 8) | p->index;
}

/* Every path looks dead: the most recently heard up one still may work. */
static size_t latest_heard(const qe_sched_path *paths, size_t n) {
  size_t best = QE_SCHED_NONE;
  for (size_t i = 0; i < n; i++) {
    if (paths[i].up &&
        (best == QE_SCHED_NONE || paths[i].last_rx > paths[best].last_rx)) {
      best = i;
    }
  }
  return best;
}

size_t qe_sched_pick(int mode, qe_sched_path *paths, size_t n,
                     size_t out[2]) {
  size_t best = QE_SCHED_NONE, second = QE_SCHED_NONE, nalive = 0;
  uint64_t bc = 0, sc = 0, bl = 0, sl = 0;
  int any_room = 0;
  unsigned tier = 256; /* the lowest cost among the candidates */
  for (size_t i = 0; i < n; i++) {
    if (paths[i].alive) {
      nalive++;
      any_room |= paths[i].room;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (paths[i].alive && (paths[i].room || !any_room) &&
        paths[i].cost < tier) {
      tier = paths[i].cost;
    }
  }
  if (nalive == 0) {
    out[0] = latest_heard(paths, n);
    return out[0] == QE_SCHED_NONE ? 0 : 1;
  }
  switch (mode) {
  case QE_MODE_FAILOVER:
    for (size_t i = 0; i < n; i++) {
      if (paths[i].alive &&
          (best == QE_SCHED_NONE ||
           failover_rank(&paths[i]) < failover_rank(&paths[best]))) {
        best = i;
      }
    }
    out[0] = best;
    return 1;
  case QE_MODE_WEIGHTED: {
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
      if (paths[i].alive) {
        paths[i].credit += paths[i].weight;
        total += paths[i].weight;
        if (best == QE_SCHED_NONE || paths[i].credit > paths[best].credit) {
          best = i;
        }
      }
    }
    paths[best].credit -= total;
    out[0] = best;
    return 1;
  }
  default: { /* aggregate, redundant */
    /* Aggregate: what arrives before the bond's delivery delay is held
     * until then (qe_sched_hold), so those paths tie at it. */
    uint64_t far = mode == QE_MODE_AGGREGATE ? qe_sched_far(paths, n, tier)
                                             : 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t cost, load;
      /* Aggregate weighs a path without room too: a packet in its queue
       * may still arrive before one sent now on a longer path (see
       * sched.h). Redundant's copies go where there is room. */
      if (!paths[i].alive || paths[i].cost != tier ||
          (mode == QE_MODE_REDUNDANT && any_room && !paths[i].room)) {
        continue;
      }
      /* Held until the bond's delay, a packet arrives then at the
       * soonest; a path that loses adds its share of repairs after that
       * (they come after the delay, and the receiver holds every later
       * packet meanwhile), so it ties only while its losses are rare. */
      cost = arrival_of(&paths[i]);
      cost = (cost < far ? far : cost) + repair_delay(&paths[i]);
      load = far ? fill_of(&paths[i]) : load_of(&paths[i]);
      if (best == QE_SCHED_NONE || sooner(cost, load, bc, bl)) {
        second = best;
        sc = bc;
        sl = bl;
        best = i;
        bc = cost;
        bl = load;
      } else if (second == QE_SCHED_NONE || sooner(cost, load, sc, sl)) {
        second = i;
        sc = cost;
        sl = load;
      }
    }
    if (mode == QE_MODE_REDUNDANT && second == QE_SCHED_NONE) {
      /* The second best may have no room now: it queues. */
      for (size_t i = 0; i < n; i++) {
        if (paths[i].alive && i != best) {
          second = i;
          break;
        }
      }
    }
    out[0] = best;
    if (mode == QE_MODE_REDUNDANT && second != QE_SCHED_NONE) {
      out[1] = second;
      return 2;
    }
    return 1;
  }
  }
}

uint64_t qe_sched_left(const qe_sched_path *p, uint64_t bytes,
                       uint64_t elapsed_ns) {
  /* At most 10 s in µs times at most 100 GB/s: no overflow. */
  uint64_t us = elapsed_ns / 1000, rate = rate_of(p), gone;
  us = us < 10000000ULL ? us : 10000000ULL;
  rate = rate < 100000000000ULL ? rate : 100000000000ULL;
  gone = us * rate / 1000000ULL;
  return bytes > gone ? bytes - gone : 0;
}

size_t qe_sched_repair(const qe_sched_path *paths, size_t n) {
  size_t best = QE_SCHED_NONE;
  uint64_t best_cost = 0;
  int tier = 256;
  for (size_t i = 0; i < n; i++) {
    if (paths[i].up && paths[i].alive && paths[i].cost < tier) {
      tier = paths[i].cost;
    }
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t c;
    if (!paths[i].up || !paths[i].alive || paths[i].cost != tier) {
      continue;
    }
    c = qe_sched_cost(&paths[i]);
    if (best == QE_SCHED_NONE || c < best_cost) {
      best = i;
      best_cost = c;
    }
  }
  return best;
}

size_t qe_sched_fastest(const qe_sched_path *paths, size_t n,
                        size_t current) {
  size_t best = QE_SCHED_NONE;
  uint64_t best_cost = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t c;
    if (!paths[i].alive) {
      continue;
    }
    c = qe_sched_class_cost(&paths[i]);
    if (best == QE_SCHED_NONE || c < best_cost) {
      best = i;
      best_cost = c;
    }
  }
  if (best == QE_SCHED_NONE) {
    return latest_heard(paths, n);
  }
  if (current != QE_SCHED_NONE && current < n && current != best &&
      paths[current].alive &&
      qe_sched_class_cost(&paths[current]) <=
          best_cost + best_cost / 4 + 1000000ULL) {
    return current;
  }
  return best;
}

int qe_sched_throttled(uint64_t cwnd, uint64_t cap) {
  return cap != 0 && cwnd * 2 < cap;
}

/* ---- rate ---- */

/* A queue that says the bottleneck is full: a quarter of the lowest RTT,
 * at least QE_FULL_QUEUE_NS. */
static uint64_t full_queue(uint64_t min_rtt_ns) {
  return min_rtt_ns / 4 > QE_FULL_QUEUE_NS ? min_rtt_ns / 4
                                           : QE_FULL_QUEUE_NS;
}

/* Startup is over when a window shows the bottleneck full: its lowest RTT
 * sample stands a quarter of the lowest RTT (at least QE_FULL_QUEUE_NS)
 * above it while its rate did not grow by a quarter (`grew`: it did) and the
 * path held the window or was sent a quarter more than it delivered; or more
 * than a sixteenth of what it delivered (and more than a few packets) was
 * lost. Only with enough ACKs in the window that one delayed ACK is not a
 * queue (a path carrying keep-alives has a few). */
static int pipe_full(const qe_rate *r, uint64_t min_rtt_ns, int grew,
                     uint64_t sent) {
  uint64_t over = full_queue(min_rtt_ns);
  int pushed = r->limited || sent * 4 >= r->acked * 5; /* its queue grew */
  /* What the window's ACKs waited on their way back (the peer's upload on
   * the same uplink) is no queue of ours: a download that ended its startup
   * on it stayed at the 4 of 31 Mbit/s it had reached in half a second
   * (`bench/multipath --random 20 --seed 871951964 --mix 1`, both
   * directions at once: the peer's upload startup stood 64 ms in the way
   * back, 1 ms on ours). The lowest of the window's, as win_rtt is. */
  uint64_t back = r->back_seen ? r->win_back : 0;
  uint64_t rtt = r->win_rtt > back ? r->win_rtt - back : 0;
  if (r->win_acks < QE_FULL_SAMPLES) {
    return 0;
  }
  return (!grew && pushed && min_rtt_ns && rtt > min_rtt_ns + over) ||
         (r->lost >= QE_FULL_LOSS_MIN && r->lost * 16 > r->acked);
}

uint64_t qe_rate_window(uint64_t min_rtt_ns) {
  return min_rtt_ns > 10 * 1000000ULL && min_rtt_ns != UINT64_MAX
             ? min_rtt_ns
             : 10 * 1000000ULL;
}

void qe_rate_acked(qe_rate *r, uint64_t bytes, uint64_t ts,
                   uint64_t min_rtt_ns, uint64_t rtt_ns, uint64_t sent,
                   uint64_t sent_ts) {
  uint64_t win = qe_rate_window(min_rtt_ns);
  uint64_t sample, len;
  int app_limited, busy;
  r->acked += bytes;
  r->win_acks++;
  if (rtt_ns && (r->win_rtt == 0 || rtt_ns < r->win_rtt)) {
    r->win_rtt = rtt_ns;
  }
  if (sent_ts > r->send_hi) {
    r->send_hi = sent_ts;
  }
  if (r->ts == 0) {
    r->ts = ts; /* the first window counts what was sent since the path began */
    return;
  }
  if (ts - r->ts < win) {
    return;
  }
  len = ts - r->ts;
  if (r->send_mark && r->send_hi > r->send_mark + len) {
    len = r->send_hi - r->send_mark;
  }
  r->send_mark = r->send_hi;
  sample = r->acked * 1000000000ULL / len;
  app_limited = !r->limited;
  if (!r->filled &&
      pipe_full(r, min_rtt_ns, sample >= r->prev + r->prev / 4,
                sent - r->sent_mark)) {
    /* Even when the path never refused a packet: we sent into a standing
     * queue below our cap, faster than the link. */
    r->filled = r->measured = 1;
  }
  {
    /* the window's loss share, into the smoothed one (loss_q16) */
    uint64_t all = r->acked + r->lost;
    int64_t share = all ? (int64_t)(r->lost * 65536 / all) : 0;
    r->loss_q16 = (uint32_t)((int64_t)r->loss_q16 +
                             (share - (int64_t)r->loss_q16) / 8);
  }
  r->last_rtt = r->win_rtt;
  r->last_back = r->win_back;
  r->last_back_seen = r->back_seen;
  r->back_seen = 0;
  busy = r->limited && r->filled && r->fwd_seen &&
         r->win_fwd > full_queue(min_rtt_ns);
  r->fwd_seen = 0;
  r->prev = sample;
  r->limited = 0;
  r->acked = r->lost = r->win_rtt = 0;
  r->sent_mark = sent;
  r->win_acks = 0;
  r->ts = ts;
  if (app_limited && sample < r->bw) {
    return;
  }
  if (busy) {
    for (unsigned k = 0; k < QE_RATE_WINDOWS; k++) {
      r->max[k] = 0;
    }
  }
  r->max[r->i] = sample;
  r->i = (r->i + 1) % QE_RATE_WINDOWS;
  r->bw = 0;
  for (unsigned k = 0; k < QE_RATE_WINDOWS; k++) {
    if (r->max[k] > r->bw) {
      r->bw = r->max[k];
    }
  }
  if (!r->filled && !app_limited) {
    if (r->bw >= r->full_bw + r->full_bw / 4) {
      r->full_bw = r->bw;
      r->full_cnt = 0;
    } else if (++r->full_cnt >= QE_FULL_WINDOWS) {
      r->filled = r->measured = 1;
    }
  }
}

uint64_t qe_rate_low_rtt(const qe_rate *r) {
  if (r->last_rtt && r->win_rtt) {
    return r->last_rtt < r->win_rtt ? r->last_rtt : r->win_rtt;
  }
  return r->last_rtt ? r->last_rtt : r->win_rtt;
}

void qe_rate_fwd_seen(qe_rate *r, uint64_t ns) {
  if (!r->fwd_seen || ns < r->win_fwd) {
    r->win_fwd = ns;
    r->fwd_seen = 1;
  }
}

void qe_rate_back_seen(qe_rate *r, uint64_t ns) {
  if (!r->back_seen || ns < r->win_back) {
    r->win_back = ns;
    r->back_seen = 1;
  }
}

uint64_t qe_rate_back(const qe_rate *r, uint64_t min_rtt_ns) {
  uint64_t back = r->back_seen        ? r->win_back
                  : r->last_back_seen ? r->last_back
                                      : 0;
  uint64_t low = qe_rate_low_rtt(r);
  uint64_t held = low > min_rtt_ns && min_rtt_ns ? low - min_rtt_ns : 0;
  return back < held ? back : held;
}

void qe_rate_seed(qe_rate *r, uint64_t bw) {
  if (r->bw == 0 && r->ts == 0) {
    r->bw = bw;
    r->max[r->i] = bw;
    r->i = (r->i + 1) % QE_RATE_WINDOWS;
  }
}

void qe_rate_restart(qe_rate *r) {
  r->filled = 0;
  r->full_bw = r->bw;
  r->full_cnt = 0;
}

void qe_rate_lost(qe_rate *r, uint64_t bytes) {
  r->lost += bytes;
}

uint64_t qe_rate_cap(const qe_rate *r, uint64_t min_rtt_ns, uint64_t back_ns,
                     uint64_t floor) {
  uint64_t cap;
  if (r->bw == 0) {
    return 0;
  }
  /* The queue back holds what arrived and is not yet acknowledged: without
   * it a path whose ACKs waited as long as its lowest RTT delivered 5/8 of
   * its measure while it was the limit, and its measure could only fall. */
  cap = r->bw * min_rtt_ns / 1000000000ULL *
            (r->filled ? QE_CAP_GAIN_Q : QE_CAP_STARTUP_Q) / 4 +
        r->bw * back_ns / 1000000000ULL;
  return cap > floor ? cap : floor;
}

/* ---- one-way delay ---- */

/* The lowest arrival - stamp over the buckets kept (INT64_MAX: none). */
static int64_t owd_base(const qe_owd *o) {
  int64_t base = INT64_MAX;
  for (unsigned k = 0; k < QE_OWD_BUCKETS; k++) {
    if (o->base[k] < base) {
      base = o->base[k];
    }
  }
  return base;
}

uint64_t qe_owd_stamp(qe_owd *o, uint64_t stamp, uint64_t now) {
  /* The offset between the clocks is anything: the difference is taken
   * modulo 2^64 and read signed. */
  int64_t d = (int64_t)(now - stamp);
  if (o->bucket_ts == 0) {
    for (unsigned k = 0; k < QE_OWD_BUCKETS; k++) {
      o->base[k] = INT64_MAX;
    }
    o->bucket_ts = now ? now : 1;
  }
  {
    /* a bucket per QE_OWD_BUCKET_NS, even across a silence (at most all of
     * them emptied) */
    uint64_t k = (now - o->bucket_ts) / QE_OWD_BUCKET_NS;
    o->bucket_ts += k * QE_OWD_BUCKET_NS;
    for (k = k < QE_OWD_BUCKETS ? k : QE_OWD_BUCKETS; k > 0; k--) {
      o->bi = (o->bi + 1) % QE_OWD_BUCKETS;
      o->base[o->bi] = INT64_MAX;
    }
  }
  if (d < o->base[o->bi]) {
    o->base[o->bi] = d;
  }
  if (!o->lo_set || d < o->lo) {
    o->lo = d;
    o->lo_set = 1;
  }
  return (uint64_t)(d - owd_base(o)); /* d is in the current bucket */
}

uint32_t qe_owd_echo(qe_owd *o, uint64_t now) {
  int64_t base;
  uint64_t q;
  o->echo_ts = now;
  if (!o->lo_set) {
    return QE_OWD_NONE;
  }
  o->lo_set = 0;
  base = owd_base(o);
  if (o->lo <= base) {
    return 0; /* (lo's bucket may have aged out since) */
  }
  q = (uint64_t)(o->lo - base) / 1000;
  return q < QE_OWD_NONE ? (uint32_t)q : QE_OWD_NONE - 1;
}

int qe_owd_echo_due(const qe_owd *o, uint64_t now, uint64_t interval_ns) {
  return o->lo_set && now - o->echo_ts >= interval_ns;
}

/* Moves the echo windows on to the one `now` is in. */
static void owd_roll(qe_owd *o, uint64_t now, uint64_t win_ns) {
  if (o->fwd_win_ts == 0 || now - o->fwd_win_ts >= 2 * win_ns) {
    o->fwd_prev_us = o->fwd_cur_us = QE_OWD_NONE; /* both are older */
    o->fwd_win_ts = now ? now : 1;
  } else if (now - o->fwd_win_ts >= win_ns) {
    o->fwd_prev_us = o->fwd_cur_us;
    o->fwd_cur_us = QE_OWD_NONE;
    o->fwd_win_ts += win_ns;
  }
}

void qe_owd_echoed(qe_owd *o, uint32_t us, uint64_t now, uint64_t win_ns) {
  if (us == QE_OWD_NONE) {
    return;
  }
  owd_roll(o, now, win_ns);
  if (us < o->fwd_cur_us) {
    o->fwd_cur_us = us;
  }
}

uint64_t qe_owd_forward(const qe_owd *o, uint64_t now, uint64_t win_ns) {
  uint32_t cur = o->fwd_cur_us, prev = o->fwd_prev_us, lo;
  if (o->fwd_win_ts == 0 || now - o->fwd_win_ts >= 2 * win_ns) {
    return UINT64_MAX;
  }
  if (now - o->fwd_win_ts >= win_ns) {
    prev = cur; /* the current window is the last one now */
    cur = QE_OWD_NONE;
  }
  lo = cur < prev ? cur : prev;
  return lo == QE_OWD_NONE ? UINT64_MAX : (uint64_t)lo * 1000;
}

/* ---- early drop ---- */

static uint64_t isqrt(uint64_t x) {
  uint64_t r = 0;
  while ((r + 1) * (r + 1) <= x) {
    r++;
  }
  return r;
}

int qe_aqm_drop(qe_aqm *a, uint64_t queued, const qe_rate *r, uint64_t ts) {
  if (r->bw == 0 || !r->filled) {
    return 0;
  }
  if (queued * 1000000000ULL / r->bw <= QE_AQM_TARGET_NS + a->slack_ns) {
    a->count = 0;
    return 0;
  }
  if (ts < a->next_ts) {
    return 0;
  }
  a->count++;
  a->next_ts = ts + QE_AQM_INTERVAL_NS / isqrt(a->count);
  return 1;
}

/* ---- liveness ---- */

uint64_t qe_sched_silence(uint64_t now, uint64_t last_rx, uint64_t busy_ts,
                          uint64_t srtt_ns) {
  uint64_t heard = last_rx, due = busy_ts + srtt_ns;
  if (due > heard) {
    heard = due;
  }
  return now > heard ? now - heard : 0;
}

int qe_sched_overdue(uint64_t now, uint64_t oldest_sent, uint64_t pto) {
  return oldest_sent != 0 && now > oldest_sent + pto;
}

void qe_gap_heard(qe_gap *g, uint64_t gap, uint64_t cap, uint64_t ts) {
  if (g->win_ts == 0 || ts >= g->win_ts + 2 * QE_GAP_WINDOW_NS) {
    g->max[0] = g->max[1] = 0; /* nothing recent: start over */
    g->win_ts = ts;
  } else if (ts >= g->win_ts + QE_GAP_WINDOW_NS) {
    g->max[1] = g->max[0];
    g->max[0] = 0;
    g->win_ts = ts;
  }
  if (gap > cap) {
    gap = cap;
  }
  if (gap > g->max[0]) {
    g->max[0] = gap;
  }
}

uint64_t qe_gap_tolerance(const qe_gap *g, uint64_t ts) {
  uint64_t m;
  if (g->win_ts == 0 || ts >= g->win_ts + 2 * QE_GAP_WINDOW_NS) {
    return 0;
  }
  m = g->max[0] > g->max[1] ? g->max[0] : g->max[1];
  return m + m / 2;
}

uint64_t qe_sched_dead_after(uint64_t srtt_ns, int loaded) {
  uint64_t t = loaded ? srtt_ns + QE_PATH_DEAD_LOADED_NS
                      : 2 * QE_PATH_KEEPALIVE_NS + 2 * srtt_ns;
  return t < QE_PATH_DEAD_FAST_NS ? QE_PATH_DEAD_FAST_NS
         : t > QE_PATH_DEAD_NS    ? QE_PATH_DEAD_NS
                                  : t;
}

uint64_t qe_reorder_wait(uint64_t hi_ns) {
  return hi_ns + hi_ns / 8 + hi_ns / 8 + QE_REORDER_SLACK_NS;
}

/* ---- flow order ---- */

_Static_assert(QE_FLOW_SLOTS == 1 << 10, "flow_slot takes 10 bits");

static size_t flow_slot(uint32_t flow) {
  return (flow * 2654435761u) >> 22; /* the top 10 bits: QE_FLOW_SLOTS */
}

int qe_flow_in_sequence(const qe_flows *f, uint32_t flow, uint64_t ts) {
  uint64_t last = f->seq_ts[flow_slot(flow)];
  return last != 0 && ts < last + QE_FLOW_ORDER_NS;
}

void qe_flow_sequenced(qe_flows *f, uint32_t flow, uint64_t ts) {
  f->seq_ts[flow_slot(flow)] = ts;
}
