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

/* How a bonded peer spreads packets over its paths; the one list of modes
 * (the wire hello, the engine API and the addon use these numbers). */
typedef enum qe_mode {
  QE_MODE_AGGREGATE,
  QE_MODE_FAILOVER,
  QE_MODE_REDUNDANT,
  QE_MODE_WEIGHTED,
  QE_MODE_COUNT /* not a mode: how many there are */
} qe_mode;

#define QE_SCHED_NONE ((size_t)-1)

typedef struct qe_sched_path {
  int up;             /* the connection is established */
  int alive;          /* up, and heard from within the dead-path time */
  uint64_t srtt_ns;   /* smoothed RTT */
  uint64_t min_rtt_ns; /* lowest RTT seen; 0: not known yet */
  uint64_t cwnd;      /* congestion window, bytes */
  uint64_t rate;      /* measured delivery rate, bytes/s; 0: cwnd/srtt;
                       * until `measured`, at least cwnd/srtt */
  uint64_t inflight;  /* bytes sent, not yet acknowledged or lost */
  uint64_t queued;    /* bytes waiting in our queue for window */
  int room;           /* a full-size packet may be sent now */
  uint64_t last_rx;   /* when last heard from (the all-dead fallback) */
  uint8_t role;       /* 0 primary, 1 backup */
  uint16_t priority;  /* failover: lower first among the same role */
  uint8_t index;      /* the dialler's uplink index (stable tie-break) */
  uint16_t weight;    /* weighted: share */
  int64_t credit;     /* weighted: smooth round-robin state, kept here */
  uint8_t cost;       /* aggregate (redundant's first copy): uplink cost */
  uint64_t low_rtt_ns; /* lowest RTT sample of the last window or so
                        * (qe_rate_low_rtt); 0: not known, srtt stands in */
  uint32_t loss_q16;  /* share of its bytes lost lately, /65536
                       * (qe_rate's loss_q16) */
  int measured;       /* its rate is known: its startup ended once */
  uint64_t back_ns;   /* the queue its ACKs come back through
                       * (qe_rate_back); 0: none or not known */
} qe_sched_path;

/*
 * The path(s) for the next packet: indices into `paths` in out[0] (and
 * out[1] for redundant); returns how many (0: no path is up).
 *  aggregate  the earliest expected delivery (qe_sched_cost), never
 *             sooner than the bond's delivery delay (qe_sched_far: the
 *             receiver holds what comes sooner until then, qe_sched_hold),
 *             among the alive paths of the lowest `cost` tier, with room or
 *             not. Paths that deliver by that delay tie, and the emptiest
 *             pipe (in flight and queued per bandwidth-delay product) takes
 *             the packet, so the bond's paths fill together and its ACKs
 *             come back at the bond's rate; a path that loses adds its
 *             share of repairs (qe_sched_cost's) after the delay, so it
 *             ties only while its losses are rare; within 1 ms other deliveries
 *             tie too, won the same way. Past that
 *             delay a packet waits in a short path's queue while that still
 *             delivers it before a longer path with room would (as MPTCP's
 *             ECF scheduler does), so packets arrive about in the order
 *             sent. The tier: a costlier path takes a packet only when
 *             every cheaper alive path has no room (with no room anywhere,
 *             the cheapest)
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
 * flight beyond one bandwidth-delay product, at most what the recent lowest
 * RTT shows standing) at the path's rate (measured, else cwnd/srtt), plus
 * our own queue at the rate it leaves: the path's rate, or its window per
 * smoothed RTT when that is less; plus, on a path that loses, the loss
 * share of a repair's delay (the loss is declared 9/8 of a round trip after
 * the send, and the re-send has a way to go: about half a round trip). The
 * receiver holds every later packet until a repair comes, so a path that
 * loses 3% delivers later, on average, than its RTT says. Without a lowest
 * RTT yet: half the smoothed RTT plus everything in flight and queued at
 * the path's rate.
 */
uint64_t qe_sched_cost(const qe_sched_path *p);

/*
 * The bond's delivery delay among the alive paths of cost tier `tier`, ns:
 * half the lowest RTT of its longest path that counts, the shortest way
 * past which the paths carry at most 1/QE_SCHED_FAR_SHARE of the tier's
 * rate, every one of them measured (a path whose startup never ended may
 * be most of the bond: it counts). 0: none.
 *
 * A TCP flow inside needs one round trip from its first packet to its
 * last. Filled shortest path first, its round trip grew from the short
 * path's toward the long one's as it outgrew the short path, in slow
 * start, which HyStart read as a full queue: it left slow start at the
 * short path's rate (the demo's rural download, with Linux's cubic: 36
 * packets, while the bond needed 400; with HyStart's delay test switched
 * off, 148 Mbit/s against 114). A slow long path beside a fast short one
 * does not set everyone's round trip.
 */
uint64_t qe_sched_far(const qe_sched_path *paths, size_t n, unsigned tier);
#define QE_SCHED_FAR_SHARE 10

/*
 * How long the receiver holds a bulk packet sent on paths[i] (aggregate)
 * before it delivers it, ns: until one sent now on the bond's longest
 * counted path would arrive (qe_sched_far), less what the packet waits on
 * its way (qe_sched_cost without the share of repairs). Every bulk packet pays it, short transfers
 * too; traffic classes never do (they go outside the sequence).
 */
uint64_t qe_sched_hold(const qe_sched_path *paths, size_t n, size_t i);

/*
 * Where a datagram lost on the way goes again (aggregate mode): the alive
 * path that delivers it first from the head of its queue, where the re-send
 * goes (qe_sched_cost with `queued` the caller's re-sends already put at
 * that head, not the bulk behind them), among the alive paths of the lowest
 * `cost`. The receiver holds every later packet until the gap is filled, so
 * the repair's way there is the whole of the stall TCP inside sees: picked
 * as a new packet, behind each path's queue, it often went to a long path
 * with room (a 40 ms one-way Starlink link instead of a 10 ms cable link).
 * QE_SCHED_NONE when no path is alive.
 */
size_t qe_sched_repair(const qe_sched_path *paths, size_t n);

/* What is left of `bytes` queued on `p` `elapsed_ns` ago, gone at the
 * path's rate as qe_sched_cost reckons it (the re-sends at a head). */
uint64_t qe_sched_left(const qe_sched_path *p, uint64_t bytes,
                       uint64_t elapsed_ns);

/*
 * When a traffic class's packet sent on `p` now arrives: half the path's
 * lowest RTT and the bottleneck's standing queue (as qe_sched_cost reckons
 * them; the packet goes ahead of our own queue), its share of repairs, and
 * the wait for window: what is in flight beyond the window is acknowledged
 * first, over about a round trip. BBR's RTT probe (every few seconds, the
 * window cut to half a BDP or to 4 packets for 200 ms) shuts a loaded path
 * that way for part of a round trip, while one that carries little (the
 * ACKs of a download) keeps room under the cut window.
 */
uint64_t qe_sched_class_cost(const qe_sched_path *p);

/*
 * The alive path a traffic class's packet arrives first on
 * (qe_sched_class_cost); `current` (or QE_SCHED_NONE) is kept while its
 * cost is within a quarter of the best's plus 1 ms, so one flow does not
 * flip between paths on noise. Before, a path in BBR's RTT probe was passed
 * over whatever it held: the pings of a download went the 110 ms way while
 * the 32 ms one had room for them, and the replies waited out the long
 * path's queue (p99 +51 to +142 ms over idle in four runs of `lab bond
 * --uplink nr1=23.2/42.2mbit,15.8ms --uplink wifi2=57/106.8mbit,55ms
 * --jitter 2@3.3 --direction down`; +9.0 to +11.3 in three now).
 * With no path alive, the most recently heard up path (as qe_sched_pick):
 * a class's packet never goes into the sequence for want of a path, since
 * its flow would then stay there (qe_flows) behind the bulk.
 */
size_t qe_sched_fastest(const qe_sched_path *paths, size_t n, size_t current);

/*
 * Whether the QUIC stack holds a path to under half of what it carries:
 * its congestion window `cwnd` below half our in-flight cap `cap` (0: not
 * measured yet, never throttled). BBR does this for ~200 ms every 5 s
 * (PROBE_RTT: a quarter of its window, to see the RTT without the queue our
 * cap keeps). A throttled path takes bulk as if it carried cwnd per lowest
 * RTT, and what waits in its queue moves to the others (bond.c): it held
 * a whole path's queue for 200 ms, and the receiver every later packet.
 * For QE_THROTTLE_GRACE_NS after, no early drop on the peer's paths: the
 * others' queues stand longer for a moment, and a drop would tell TCP
 * inside to halve for a dip that is over in 300 ms. In rural lab runs of
 * one flow this took the dips every ~1.5 s (each path's PROBE_RTT every
 * 5 s) from holds of 0.3 s to slowdowns.
 */
int qe_sched_throttled(uint64_t cwnd, uint64_t cap);

/* ---- a path's delivery rate and the in-flight cap it sets ---- */

#define QE_RATE_WINDOWS 10
/* Gain over the measured bandwidth-delay product, in quarters: room for the
 * rate to grow (by the gain per round trip at most) and a queue at the
 * bottleneck of at most (gain - 1) BDP, a quarter of a round trip: short
 * for the traffic classes' packets behind it, and within a link's buffer
 * (at 1.5, a single TCP flow reaching full rate overflowed three one-RTT
 * lab buffers at once). */
#define QE_CAP_GAIN_Q 5
/* Startup: the gain is 4 until the rate stops growing by a quarter for
 * QE_FULL_WINDOWS windows in which the path was the limit, as BBR's startup
 * ends. A sender in slow start (TCP inside) doubles what it has in flight
 * every round trip, and the rate a window measures is what was sent a round
 * trip before it: to let the doubling through, the cap is 2 (the next
 * round's growth) x 2 (the window the measure lags) the measured BDP. At 2,
 * the cap stood in slow start's way each round: our queue grew by up to a
 * round trip, TCP inside took the delay for a full pipe and left slow start
 * (HyStart) at a fraction of the rate: two 94 ms paths of 108 and 218 Mbit/s
 * carried 18-27 Mbit/s of one download (each alone: 92 and 129). At 1.25 a
 * new path took 17 round trips to reach 100 Mbit/s over 80 ms (1.4 s). The
 * path's own congestion control and the early end below (a standing queue
 * or a burst of loss) still bound what startup puts on the link. */
#define QE_CAP_STARTUP_Q 16
#define QE_FULL_WINDOWS 3
/* Startup also ends as soon as the bottleneck is full: a standing queue
 * (the window's lowest RTT a quarter of the lowest RTT, and at least this,
 * above it) or a burst of loss (a sixteenth of the window), as HyStart and
 * BBR's startup do, whether or not the path refused a packet in the window
 * (a queue says we sent faster than the link). Waiting for the plateau
 * alone, a 100 Mbit/s 80 ms path reached full rate at gain 2 with a BDP
 * queued, and its one-RTT buffer overflowed: 530 datagrams lost at once,
 * and TCP inside stalled while they were sent again. A queue counts only in
 * a window that delivered less than a quarter more than the one before (a
 * full bottleneck delivers no more) and that either was held by the path
 * (it refused a packet) or was sent a quarter more than it delivered (the
 * queue grew): a path whose delay wanders (LTE, Starlink: 0-52 ms over 65 ms
 * in the lab) shows long RTTs in windows whose rate still doubles, and in
 * the trickle the scheduler first gives a path it has not measured. Without
 * that, such a path ended startup at the trickle (1 Mbit/s of a 90 Mbit/s
 * uplink), and its cap, 1.25 x that rate per lowest RTT, held it there for
 * seconds. */
#define QE_FULL_QUEUE_NS (4 * 1000000ULL)
#define QE_FULL_LOSS_MIN 4096 /* bytes: a few packets, not one random loss */
#define QE_FULL_SAMPLES 8     /* ACKs in the window, as HyStart's */

/*
 * Delivery rate measured from acknowledged datagrams: bytes per second, the
 * most of the last QE_RATE_WINDOWS windows of about one lowest RTT each
 * (ngtcp2 0.12's own delivery rate overshoots wildly on shaped links).
 */
typedef struct qe_rate {
  uint64_t acked; /* in the current window */
  uint64_t ts;    /* the current window's start; 0: none yet */
  uint64_t max[QE_RATE_WINDOWS];
  unsigned i;
  uint64_t bw;     /* bytes/s; 0: not measured yet */
  int limited;     /* the path refused a bulk packet in this window */
  int filled;      /* startup is over */
  int measured;    /* startup ended once: bw is what the path carried while it
                    * was the limit (qe_rate_restart leaves it set) */
  uint64_t full_bw; /* startup: the rate to beat by a quarter... */
  unsigned full_cnt; /* ...and the windows that did not */
  uint64_t win_rtt;  /* the window's lowest RTT sample; 0: none */
  unsigned win_acks; /* ACKed datagrams in the window */
  uint64_t lost;     /* bytes declared lost in the window */
  uint64_t prev;     /* the previous window's delivery rate, bytes/s */
  uint64_t sent_mark; /* the path's bytes sent when the window began */
  uint64_t last_rtt;  /* the last window's lowest RTT sample; 0: none */
  uint32_t loss_q16;  /* share of bytes lost, /65536, smoothed 1/8 a window */
  /* The lowest wait of the peer's stamps (qe_owd_stamp: the queue our ACKs
   * come back through) in this window and in the last, if any came
   * (qe_rate_back_seen). */
  uint64_t win_back, last_back;
  /* When the latest datagram acknowledged in this window was sent, and the
   * same at the last window's end (0: none): the window's bytes left over
   * that time, and came no faster than they left. */
  uint64_t send_hi, send_mark;
  /* The lowest of the peer's echoes (our own queue, qe_owd_echoed) in this
   * window, if one came (qe_rate_fwd_seen). */
  uint64_t win_fwd;
  int fwd_seen;
  int back_seen; /* a stamp came in this window */
  int last_back_seen; /* ...in the last */
} qe_rate;

/*
 * `bytes` acknowledged at `ts`, with the latest RTT sample `rtt_ns` (0:
 * none), the bytes the path has sent so far (`sent`, its counter of
 * bytes out: startup takes more sent than delivered in a window for a
 * queue growing; 0 if not counted) and when they were sent (`sent_ts`, 0:
 * not known). A window's rate is its bytes over its length or over the
 * time they were sent in, whichever is longer: ACKs that waited in a queue
 * on the way back come in a burst when it drains, and a window that held
 * the burst read up to twice the link (a download beside an upload on the
 * same uplinks: 118 Mbit/s measured on an 83 Mbit/s link, its cap grew to
 * match, and 86 ms stood in its queue). A window in which the path never
 * refused a bulk packet (r->limited unset) is app-limited: it says what
 * was sent, not what the path carries, so it counts only if it is higher.
 * A path that carried 100 Mbit/s and then little keeps its measure, and
 * its cap, for when the load comes back (after a stall, or an uplink's
 * death).
 */
void qe_rate_acked(qe_rate *r, uint64_t bytes, uint64_t ts,
                   uint64_t min_rtt_ns, uint64_t rtt_ns, uint64_t sent,
                   uint64_t sent_ts);
/* A window's length: the lowest RTT, at least 10 ms (ngtcp2's UINT64_MAX,
 * no sample yet: 10 ms). */
uint64_t qe_rate_window(uint64_t min_rtt_ns);
/* A rate known before it is measured (bytes/s, e.g. the uplink's
 * configured bandwidth): taken only while nothing is measured, as one
 * window's sample, so it ages out of the measure as any other does (within
 * QE_RATE_WINDOWS windows the path was the limit in) instead of going at the
 * first. A path that was idle until a transfer began is the limit in that
 * transfer's first window, at a rate its window says nothing of: it took
 * that window's rate (1 Mbit/s of a 152 Mbit/s uplink), and its cap, 1.25 x
 * that per lowest RTT, held it there (`bench/multipath --random 20 --seed
 * 181310126 --mix 1 --directions up`: the 152 Mbit/s, 83 ms uplink carried
 * 2.4 Mbit/s of an upload beside a 36 Mbit/s one). */
void qe_rate_seed(qe_rate *r, uint64_t bw);
/*
 * Startup again: another path of the peer stopped (suspect or dead) and its
 * load moves here. What this path measured while it carried less (its
 * windows app-limited, or held to a cap from that measure) says little of
 * what it carries now: its cap goes back to startup's and early drop waits
 * until a window shows its bottleneck full again. Before, a survivor kept
 * at 2-5 Mbit/s beside a busy short path took the flow at a cap of 1.25 x
 * that rate (native/README, "After a cut").
 * Its measure stays its rate (`measured` stays set): the scheduler prices
 * it at what it carried, not at its window per RTT, until it carries more.
 * Priced at its window, a 5 Mbit/s, 191 ms survivor (window 319 kB: 12.8
 * Mbit/s) took 300 kB, 2.5 x its BDP; its queue reached 190 ms, the link
 * dropped 41 packets, and the whole bond waited 400 ms for their repair
 * (`bench/multipath --random 20 --seed 810805939 --mix 2`, up -P4, cut).
 */
void qe_rate_restart(qe_rate *r);
/* `bytes` sent on the path were declared lost (startup's loss signal). */
void qe_rate_lost(qe_rate *r, uint64_t bytes);

/* The lowest RTT sample of the last window and the current one (0: none):
 * what stands in the path's queue. A queue that stands is in every sample;
 * jitter (a radio link's delay that wanders) is not, and a smoothed RTT
 * counts it as a queue: a clean 161 Mbit/s path with 0-12 ms of jitter each
 * way looked queued, the scheduler priced it out, and a 3%-lossy one
 * carried the download (2-8 of sat2's 161 Mbit/s used, 16-22 on the lossy
 * dsl1: one TCP flow ran at 18-30 Mbit/s in three runs). */
uint64_t qe_rate_low_rtt(const qe_rate *r);

/*
 * The peer echoed that our stamps waited `ns` in our direction's queue
 * (qe_owd_echoed). A window in which the path was the limit and that queue
 * never fell below a quarter of the lowest RTT (at least QE_FULL_QUEUE_NS)
 * had the link busy throughout: what it delivered is what the link carries
 * now, and the higher samples kept from before are forgotten. A link whose
 * rate halved otherwise kept its old measure for QE_RATE_WINDOWS windows,
 * the cap let 2.5 of the new bandwidth-delay products in flight, and a
 * queue of a round trip and more stood in it (a 49 Mbit/s uplink varying
 * by half: 100 ms over its 126).
 */
void qe_rate_fwd_seen(qe_rate *r, uint64_t ns);

/* A stamp from the peer waited `ns` above the lowest (qe_owd_stamp): the
 * queue in the direction our ACKs come back through, in this window. */
void qe_rate_back_seen(qe_rate *r, uint64_t ns);
/*
 * The queue our ACKs wait in on the way back, as the peer's stamps read it
 * lately (the lowest of the current window, else the last's), at most what
 * the round trip holds above its lowest (qe_rate_low_rtt less `min_rtt_ns`,
 * ngtcp2's, UINT64_MAX before a sample: a clock that drifts cannot make it
 * more); 0 when the peer stamps nothing.
 * A download's ACKs behind an upload on the same uplink: the round trip
 * grows by that queue, and bytes in flight must cover it (qe_rate_cap)
 * while the way out has no queue at all (pipe_full, standing_of).
 */
uint64_t qe_rate_back(const qe_rate *r, uint64_t min_rtt_ns);

/* The most bulk bytes in flight: the measured rate times the lowest RTT,
 * times the gain (startup's until it is over), plus the rate times the
 * queue back (`back_ns`, qe_rate_back: bytes that arrived and whose ACKs
 * wait, no queue of ours); at least `floor`; 0: no cap (nothing measured
 * yet). */
uint64_t qe_rate_cap(const qe_rate *r, uint64_t min_rtt_ns, uint64_t back_ns,
                     uint64_t floor);

/* ---- each direction's queue on a path (one-way delay) ---- */

/*
 * A round trip sums the queues of both directions: a download's ACKs wait
 * behind the upload on the same uplink. Each side stamps the NOPs it sends
 * on a bonded path's control stream with its clock, and echoes in its own
 * NOPs how long the peer's stamps waited beyond the lowest (arrival -
 * stamp) it has seen: the queue in the peer's direction (ctrl_frame.h has
 * the stamp's layout). `quicether status` shows both per path (queue out,
 * the peer's echo; back, the peer's stamps' own wait, qe_rate_back).
 * The clocks of two machines differ by an offset, which the lowest cancels;
 * the lowest is kept over QE_OWD_BUCKETS buckets of QE_OWD_BUCKET_NS, as
 * LEDBAT's base delay, so a clock that drifts is followed within that time.
 * Between, drift reads as a queue (the queue back is at most what the round
 * trip holds above its lowest).
 */
#define QE_OWD_BUCKETS 10
#define QE_OWD_BUCKET_NS (60ULL * 1000000000ULL)
#define QE_OWD_NONE UINT32_MAX
typedef struct qe_owd {
  /* the peer's stamps, as they arrive */
  uint64_t bucket_ts; /* the current bucket's start; 0: no stamp yet */
  unsigned bi;
  int64_t base[QE_OWD_BUCKETS]; /* lowest arrival - stamp in each bucket */
  int64_t lo;      /* lowest arrival - stamp since the last echo... */
  int lo_set;      /* ...if any */
  uint64_t echo_ts; /* when we last echoed */
  /* our own stamps' queue, as the peer echoes it: the lowest in the current
   * window (QE_OWD_NONE: none) and in the one before */
  uint32_t fwd_cur_us, fwd_prev_us;
  uint64_t fwd_win_ts; /* the current window's start; 0: no echo yet */
} qe_owd;

/* A stamp `stamp` (the peer's clock) arrived at `now` (ours). Returns how
 * long it waited above the lowest seen (ns): the queue in the peer's
 * direction now. */
uint64_t qe_owd_stamp(qe_owd *o, uint64_t stamp, uint64_t now);
/* What to echo in a NOP sent at `now`: the lowest wait (in µs, above the
 * base) of the stamps since the last echo; QE_OWD_NONE when none came.
 * Starts a new period. */
uint32_t qe_owd_echo(qe_owd *o, uint64_t now);
/* Whether a NOP should go now only to echo (a receiver that sends nothing
 * else): a stamp waits, and the last echo is `interval_ns` old. */
int qe_owd_echo_due(const qe_owd *o, uint64_t now, uint64_t interval_ns);
/* The peer echoed `us` (not QE_OWD_NONE) at `now`; windows of `win_ns`. */
void qe_owd_echoed(qe_owd *o, uint32_t us, uint64_t now, uint64_t win_ns);
/* Our forward queue in ns: the lowest echo of this window and the last
 * (windows of `win_ns`); UINT64_MAX: no echo in that time. */
uint64_t qe_owd_forward(const qe_owd *o, uint64_t now, uint64_t win_ns);

/* ---- early drop on a path's queue ---- */

/*
 * TCP inside would otherwise grow until the queue overflows and loses a
 * burst (a stall of a retransmission timeout). While the queue holds more
 * than QE_AQM_TARGET_NS at the path's measured rate (100 ms: a single TCP
 * flow across paths of different round trips needs deep queues to keep
 * every path busy, 50 ms halved its throughput), one packet is dropped,
 * then the next after QE_AQM_INTERVAL_NS / sqrt(drops so far), as CoDel
 * does: a single loss when TCP merely overshoots, and a quick answer when
 * the capacity falls (an uplink died and its share moved here). Never
 * before the path's rate is known (startup over): a path that has carried
 * only keep-alives measures a few kbit/s, two queued packets looked like a
 * 200 ms queue, and the first burst on a new or backup path lost a packet
 * (TCP inside then left slow start at 25 packets: 2.5 s to reach 50 Mbit/s
 * over 20 ms, and after a failover to a 100 Mbit/s backup, seconds more).
 */
#define QE_AQM_TARGET_NS (100 * 1000000ULL)
#define QE_AQM_INTERVAL_NS (100 * 1000000ULL)

/*
 * A packet's wait is judged by when it arrives: the aggregate scheduler
 * fills a short path's queue until its packets arrive no sooner than the
 * long path's, so at the same delivery delay a 20 ms path queues 30 ms more
 * than an 80 ms one. Each path's target is raised by that difference
 * (`slack_ns`: half the bond's highest lowest-RTT minus half its own, set
 * by bond.c); with one target for all, the shortest path dropped first, at
 * a third of the queue on the long one, and after TCP's cut the long
 * path's queue ran dry.
 */
typedef struct qe_aqm {
  uint64_t count;   /* drops in the current standing queue */
  uint64_t next_ts; /* no drop before */
  uint64_t slack_ns; /* added to QE_AQM_TARGET_NS */
} qe_aqm;

/* Whether the packet that would make the queue `queued` bytes is dropped. */
int qe_aqm_drop(qe_aqm *a, uint64_t queued, const qe_rate *r, uint64_t ts);

/* ---- path liveness ---- */

#define QE_PATH_KEEPALIVE_NS (200 * 1000000ULL)
#define QE_PATH_DEAD_NS (600 * 1000000ULL)
#define QE_PATH_DEAD_FAST_NS (150 * 1000000ULL)
#define QE_PATH_DEAD_LOADED_NS (100 * 1000000ULL)

/*
 * How long a path has been silent past when it should have been heard, at
 * `now`: since its last packet (last_rx), or, when it was idle until lately,
 * since the first ACK for what it sent then was due (busy_ts, the last send
 * while it was not loaded, plus a round trip).
 */
uint64_t qe_sched_silence(uint64_t now, uint64_t last_rx, uint64_t busy_ts,
                          uint64_t srtt_ns);

/*
 * A path is suspect when its oldest unacknowledged datagram, sent at
 * `oldest_sent` (0: none), has waited longer than the QUIC stack's probe
 * timeout `pto` (smoothed RTT, 4 x its variation, the peer's ACK delay):
 * most likely it died. New packets go to the other paths at once, and what
 * it has in flight is sent again on them (bond.c), in time for the
 * receiver's reorder wait: each packet left in a dead path is otherwise a
 * loss TCP inside sees. A hiccup costs a round trip's worth of duplicates,
 * which the receiver drops; the path is declared dead (and closed if it
 * stays so) only later (qe_sched_dead_after).
 */
int qe_sched_overdue(uint64_t now, uint64_t oldest_sent, uint64_t pto);

/*
 * The longest silences a path has had while it had datagrams out and was
 * alive: its ACKs come in bursts when the receiver's CPU is busy or its
 * link aggregates them (Wi-Fi, LTE uplink grants), and a path silent for
 * such a while is not dying. In the lab, with both cores busy, a loaded
 * 100 Mbit/s path went 26-40 ms without an ACK now and then, just past its
 * probe timeout: each time the whole of what it had in flight (up to 750 KB)
 * was sent again on the others, whose queues then stood 50 ms longer, and
 * the receiver dropped the copies.
 *
 * So what a suspect path had in flight is sent again on the others only
 * once it has also been silent for longer than it has been before
 * (qe_gap_tolerance: half again its longest gap in the last one to two
 * windows of QE_GAP_WINDOW_NS); until then it only takes no new packets.
 * A gap is remembered up to the dead-path time, which still declares a
 * path dead (and re-sends its backlog) however long its gaps were.
 */
#define QE_GAP_WINDOW_NS (10 * 1000000000ULL)

typedef struct qe_gap {
  uint64_t max[2]; /* longest gap in the current and the previous window */
  uint64_t win_ts; /* the current window's start; 0: none yet */
} qe_gap;

/* A packet arrived `gap` ns after the one before, while the path had
 * datagrams out; `cap` bounds what is remembered (the dead-path time). */
void qe_gap_heard(qe_gap *g, uint64_t gap, uint64_t cap, uint64_t ts);
/* Silence past which a suspect path's backlog is sent again: 1.5 times
 * its longest recent gap (0: none seen, at once). */
uint64_t qe_gap_tolerance(const qe_gap *g, uint64_t ts);

/*
 * The silence after which a path is declared dead. Loaded: a round trip
 * and QE_PATH_DEAD_LOADED_NS (the sooner it is known, the sooner what it
 * had in flight is sent again on the others). Idle, only keep-alives and
 * their ACKs come, about once an interval: two intervals and two round
 * trips, so one late keep-alive is not a death. With one interval, a LAN
 * path carrying a ping every 200 ms was declared dead (and its traffic sent
 * on the metered uplink beside it) whenever either host ran its daemon a
 * few ms late: beside three busy loops on the lab's two cores, such paths
 * went 205-325 ms unheard, and 2 runs of 15 sent a ping on the metered
 * uplink. An idle path has nothing in flight to lose meanwhile,
 * and a packet sent to it still finds it suspect within a probe timeout
 * (qe_sched_overdue). Between QE_PATH_DEAD_FAST_NS and QE_PATH_DEAD_NS
 * either way; a path declared dead by mistake is alive again when next
 * heard.
 */
uint64_t qe_sched_dead_after(uint64_t srtt_ns, int loaded);

/*
 * How long the receiver waits for a gap in the sequence before it gives it
 * up (and TCP inside sees a loss), from the smoothed RTT of its slowest
 * path, `hi`. The longest a gap can need is a loss on the slowest path: the
 * gap shows when a later packet arrives over the fastest path, lo/2 after
 * both were sent (lo: the fastest path's RTT); the sender declares the lost
 * one lost about a round trip of the slowest path after it sent it (9/8 of
 * it by time alone) and sends it again over the fastest, lo/2 more. So the
 * repair comes up to 9/8 hi after the gap showed, whatever lo is; plus an
 * eighth of hi for the slowest path's jitter and the re-send's wait in a
 * queue, and QE_REORDER_SLACK_NS. (The wait used to subtract lo: with a
 * 20 ms path beside a lossy 85 ms one, 5% of the repairs came after it.)
 * The caller caps it at the configured maximum.
 */
#define QE_REORDER_SLACK_NS (10 * 1000000ULL)
uint64_t qe_reorder_wait(uint64_t hi_ns);

/* ---- traffic classes: a flow's order (what a packet is: pkt.h) ---- */

/*
 * A flow's packets keep their order. A traffic class that matches by size
 * (small packets: pings, ACKs, keystrokes) would otherwise send the short
 * segments of a bulk TCP flow, such as the tail of each super-packet cut to
 * MSS, outside the sequence on the fastest path, ahead of the full segments
 * sent before them. TCP inside reads that as loss: in the lab a single
 * overtaking segment in the first 100 ms made one flow over two 100 Mbit/s
 * uplinks leave slow start at one uplink's rate and spend 8 s creeping to
 * both, in a third of the runs. So a packet whose flow was sent in the
 * sequence within QE_FLOW_ORDER_NS stays in it (longer than any packet
 * waits in a path's queue, crosses it and waits in the reorder buffer). A
 * flow that only sends small packets is classed as before. Flows share
 * QE_FLOW_SLOTS slots by hash: two flows in one slot may keep a small
 * packet in the sequence that could have gone ahead, never the reverse.
 */
#define QE_FLOW_SLOTS 1024
#define QE_FLOW_ORDER_NS (1000 * 1000000ULL)

typedef struct qe_flows {
  uint64_t seq_ts[QE_FLOW_SLOTS]; /* last sent in the sequence; 0: never */
} qe_flows;

/* Whether `flow` sent in the sequence within QE_FLOW_ORDER_NS before ts. */
int qe_flow_in_sequence(const qe_flows *f, uint32_t flow, uint64_t ts);
/* `flow` sends a packet in the sequence at ts. */
void qe_flow_sequenced(qe_flows *f, uint32_t flow, uint64_t ts);

#endif /* QE_SCHED_H */
