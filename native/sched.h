/*
 * The bonding scheduler's decisions, on a plain view of the paths (no QUIC
 * or engine state), so native/test/sched_test.c can drive it with simulated
 * paths and a fake clock. bond.c builds the view from ngtcp2's statistics
 * for each packet and acts on the answer.
 */
#ifndef QE_SCHED_H
#define QE_SCHED_H

#include <stddef.h>
#include <stdint.h>

enum { QE_SCHED_AGGREGATE, QE_SCHED_FAILOVER, QE_SCHED_REDUNDANT,
       QE_SCHED_WEIGHTED };

#define QE_SCHED_NONE ((size_t)-1)

typedef struct qe_sched_path {
  int up;             /* the connection is established */
  int alive;          /* up, and heard from within the dead-path time */
  uint64_t srtt_ns;   /* smoothed RTT */
  uint64_t min_rtt_ns; /* lowest RTT seen; 0: not known yet */
  uint64_t cwnd;      /* congestion window, bytes */
  uint64_t rate;      /* measured delivery rate, bytes/s; 0: cwnd/srtt */
  uint64_t inflight;  /* bytes sent, not yet acknowledged or lost */
  uint64_t queued;    /* bytes waiting in our queue for window */
  int room;           /* a full-size packet may be sent now */
  uint64_t last_rx;   /* when last heard from (the all-dead fallback) */
  uint8_t role;       /* 0 primary, 1 backup */
  uint16_t priority;  /* failover: lower first among the same role */
  uint8_t index;      /* the dialler's uplink index (stable tie-break) */
  uint16_t weight;    /* weighted: share */
  int64_t credit;     /* weighted: smooth round-robin state, kept here */
} qe_sched_path;

/*
 * The path(s) for the next packet: indices into `paths` in out[0] (and
 * out[1] for redundant); returns how many (0: no path is up).
 *  aggregate  the earliest expected delivery (qe_sched_cost; within 1 ms
 *             a tie, which the path with less in flight for its rate wins),
 *             among paths with window room when any has room
 *  failover   the best-ranked alive path (primaries, priority, index)
 *  redundant  the two best by expected delivery among paths with room (if
 *             only one has room, the second is the first other alive path:
 *             its packet waits in that path's queue)
 *  weighted   smooth weighted round-robin (credits updated in `paths`)
 * When no path is alive, the most recently heard one that is up.
 */
size_t qe_sched_pick(int mode, qe_sched_path *paths, size_t n,
                     size_t out[2]);

/*
 * Expected time until a new packet on `p` is delivered, ns: half the
 * lowest RTT (the way there), plus the queue at the bottleneck (what is in
 * flight beyond one bandwidth-delay product), plus our own queue, both at
 * the path's rate (measured, else cwnd/srtt). Without a lowest RTT yet:
 * half the smoothed RTT plus everything in flight and queued at that rate.
 */
uint64_t qe_sched_cost(const qe_sched_path *p);

/*
 * The lowest-latency alive path for a traffic class; `current` (or
 * QE_SCHED_NONE) is kept while its smoothed RTT is within a quarter of the
 * fastest path's plus 2 ms, so one flow does not flip between paths on noise.
 */
size_t qe_sched_fastest(const qe_sched_path *paths, size_t n, size_t current);

#endif /* QE_SCHED_H */
