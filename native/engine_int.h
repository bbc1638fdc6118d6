/*
 * Engine internals shared by engine.c, quic_conn.c, forward.c and icmp.c.
 * Everything here is owned by the worker thread unless marked otherwise.
 */
#ifndef QE_ENGINE_INT_H
#define QE_ENGINE_INT_H

#include "acl.h"
#include "bond.h"
#include "ct.h"
#include "ctrl_frame.h"
#include "engine.h"
#include "fib.h"
#include "reorder.h"
#include "sched.h"
#include "tls.h"
#include "tun.h"
#include "tun_offload.h"
#include "txq.h"
#include "udp.h"

/* Flows the policy tracks at once (about 64 bytes each). */
#define QE_CT_CAPACITY 65536

#include <ngtcp2/ngtcp2.h>
#include <pthread.h>
#include <stdatomic.h>

#define QE_MAX_CONNS 1024
#define QE_MAX_PEERS 4096
#define QE_MAX_HALF_OPEN 64
#define QE_MAX_HALF_OPEN_PER_ADDR 8 /* replayed Initials from one source */
#define QE_CONN_MAX_SCIDS 8
#define QE_CTL_MAX_MSG (1024 * 1024)
/* The control stream's flow-control window (and receive buffer cap). */
#define QE_CTL_WINDOW (2 * 1024 * 1024 + 64)
/* Control bytes handed to JS but not yet delivered: above this the peer is
 * flow-controlled instead of us buffering without bound. */
#define QE_CTL_BACKLOG_MAX (16 * 1024 * 1024)
#define QE_CTL_MAGIC "QEC1"
/* A plain connection dialled through a relay starts "QER1" instead: both
 * sides then know it is relayed, and a direct one replaces it. */
#define QE_RELAY_MAGIC "QER1"
/* Our datagrams that are no QUIC (punches, relay binds) start "\0QEP": a
 * QUIC v1 packet always has the fixed bit (0x40) of its first byte set. */
#define QE_RAW_MAGIC "\0QEP"
#define QE_RAW_MIN 5
#define QE_RAW_MAX 512
#define QE_TUN_BATCH 64
#define QE_TUN_PKT_BUDGET 512 /* packets from the TUN per wakeup */
#define QE_TUN_PAUSE_MAX_NS (10 * 1000000ULL)
#define QE_TUN_BUFSIZE (65536 + 64)
#define QE_UDP_BATCH 32
#define QE_UDP_BUFSIZE 65536
#define QE_REFUSED_RING 64
#define QE_ODCID_RING 256 /* first DCIDs of finished handshakes: replays */
#define QE_ODCID_TTL_NS (30 * 1000000000ULL)
#define QE_SIMULTANEOUS_NS (3 * 1000000000ULL)

/* Application error codes in CONNECTION_CLOSE. */
#define QE_APP_NO_ERROR 0x0
#define QE_APP_DUPLICATE 0x1   /* another connection to the same peer won */
#define QE_APP_NOT_ALLOWED 0x2 /* the key left the allowed set */
#define QE_APP_PROTOCOL 0x3    /* control stream framing error */
#define QE_APP_NO_BOND 0x4     /* this node accepts no bonded paths */

/* epoll tags of the worker's loop; uplink i's socket is TAG_UPLINK0 + i. */
enum { TAG_CMD = 1, TAG_UDP, TAG_TUN, TAG_TIMER, TAG_UPLINK0 = 16 };

typedef struct qe_conn qe_conn;

/* ---- multipath bonding (bond.c) ---- */
#define QE_MAX_UPLINKS 8
#define QE_MAX_PATHS 8
#define QE_MAX_TARGETS 64
/* Before each bonded packet: its sequence number (4 bytes, big-endian; the
 * top bit marks a traffic class's packet, outside the sequence), then how
 * long the receiver holds it before delivery (2 bytes, big-endian, in
 * QE_BOND_HOLD_UNIT_NS: qe_sched_hold). */
#define QE_BOND_HDR 6
#define QE_BOND_HOLD_UNIT_NS 100000ULL
/* Held packets come due on multiples of this (bond.c, qe_bond_recv). */
#define QE_BOND_DUE_NS 1000000ULL
/* A bonded path's control stream starts "QEM2" + the hello instead of "QEC1"
 * ("QEM1" paths carried a 4-byte header: the two do not bond, and a path
 * of the other kind fails on its hello as a framing error):
 * session (8), path index (1), mode (1), role (1), cost (1), weight (2),
 * priority (2). Same key + same session = another path of one peer. */
#define QE_PATH_MAGIC "QEM2"
#define QE_HELLO_LEN 20
#define QE_PATH_DEAD_MIN_NS (300 * 1000000ULL)
#define QE_BOND_TICK_NS (50 * 1000000ULL)
#define QE_THROTTLE_GRACE_NS (300 * 1000000ULL) /* see qe_sched_throttled */
#define QE_BOND_REDIAL_NS (2000 * 1000000ULL)


/*
 * An uplink the config names. It may not exist yet (an LTE dongle not
 * plugged in) or vanish and come back: `open` says whether its socket is
 * bound to the device now; qe_uplinks_check follows the device by ifindex.
 */
typedef struct qe_uplink {
  int used, open, failed_once;
  unsigned ifindex; /* the device the socket is bound to, when open */
  char name[16];
  uint16_t weight, priority;
  uint8_t role; /* 0 primary, 1 backup */
  uint8_t cost; /* see qe_uplink_conf */
  uint32_t rate_bps;
  uint8_t rank; /* its place in the list last given (read back in order) */
  qe_udp udp;
  qe_udp_tx tx;
} qe_uplink;

/* How often uplink devices are looked up (appear, vanish, re-created). */
#define QE_UPLINK_CHECK_NS (250 * 1000000ULL)
/* A client path silent this long is closed and dialled again (its uplink's
 * address changed, or the link was down): a new handshake probes it. */
#define QE_PATH_RECYCLE_NS (3000 * 1000000ULL)

typedef struct qe_bond_target {
  int used;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  uint8_t mode;
  /* The endpoint refused bonding (QE_APP_NO_BOND): the next bond tick
   * forgets the target and dials it once plainly instead. */
  int refused;
  qe_ts last_dial[QE_MAX_UPLINKS];
} qe_bond_target;

typedef struct qe_peer {
  uint8_t key[QE_KEYLEN];
  int used;
  qe_conn *conn; /* the one established connection (bonded: the control
                    path), or NULL */
  int bonded;
  uint8_t mode;
  uint64_t session;
  qe_conn *paths[QE_MAX_PATHS];
  size_t npaths;
  uint32_t tx_seq;
  qe_reorder rb;
  qe_flows *flows; /* when its flows last sent in the sequence (bonded) */
  qe_conn *fast; /* the classes' lowest-latency path, kept unless beaten */
  qe_ts suspect_ts; /* when a loaded path of it next becomes suspect */
  qe_ts aqm_grace_ts; /* no early drop before: a path is throttled */
  uint64_t resent, lost_resent, moved, classed_out, classed_in, acks_out;
  uint64_t bytes_in, bytes_out, packets_in, packets_out;
  uint64_t datagrams_lost, datagrams_acked;
  uint64_t drop_congestion, drop_too_big, drop_spoofed, drop_not_up;
} qe_peer;

/* Built on the control thread, then handed to the worker whole. */
typedef struct qe_routes {
  qe_fib *fib;
  size_t nkeys;
  uint8_t (*keys)[QE_KEYLEN];
  qe_peer **peers; /* resolved by the worker when installed */
  qe_route *list;  /* the routes as given, for qe_engine_read_tables */
  size_t nlist;
} qe_routes;

typedef struct qe_chunk {
  struct qe_chunk *next;
  uint64_t offset; /* stream offset of data[0] */
  size_t len, sent;
  int pooled; /* a NOP from the connection's pool, not malloc'd */
  int stamped; /* a NOP with a stamp, whose clock is set as it first leaves */
  uint8_t data[];
} qe_chunk;

/*
 * ngtcp2 0.12 arms no probe timeout for packets that carry only DATAGRAM
 * frames: if a whole window of them is lost, nothing would ever be sent or
 * acknowledged again. So every burst of datagrams is followed by a 4-byte
 * NOP on the control stream (retransmittable, so it arms the timer), and one
 * packet of congestion window is kept free for it.
 */
#define QE_NOP_POOL 16
/* A pooled NOP's room: a bonded path's carries a stamp (ctrl_frame.h);
 * rounded up so that every chunk of the pool is aligned. */
#define QE_NOP_SIZE ((sizeof(qe_chunk) + QE_CTL_HDR + QE_STAMP_LEN + 7) & ~(size_t)7)

#define QE_TXQ_SLOTS 1024
/* A bonded path's queue is deeper: when an uplink dies, what it had in
 * flight and queued (up to a few MB for a single TCP flow's window) comes
 * here at once, and a full queue would lose it as one burst, which TCP
 * inside recovers from at a few packets per round trip. The early drop
 * (QE_AQM_TARGET_NS) keeps the standing queue short; the memory is only
 * touched when used. */
#define QE_TXQ_PATH_SLOTS 4096

/* qe_conn_send_datagram results */
#define QE_SEND_OK 0
#define QE_SEND_BLOCKED 1 /* congestion window full: try again after ACKs */
#define QE_SEND_DROPPED 2 /* not sendable (too big, no DATAGRAM support) */
#define QE_SEND_CLOSED -1 /* the connection failed and is gone */

typedef enum qe_conn_state {
  QE_CONN_FREE,
  QE_CONN_HANDSHAKE,
  QE_CONN_UP,
} qe_conn_state;

struct qe_conn {
  qe_engine *eng;
  qe_conn_state state;
  uint16_t slot, gen;
  int server;
  ngtcp2_conn *conn;
  gnutls_session_t tls;
  ngtcp2_crypto_conn_ref ref;
  struct sockaddr_storage remote;
  socklen_t remotelen;
  ngtcp2_cid odcid; /* server: the client's first DCID */
  ngtcp2_cid scids[QE_CONN_MAX_SCIDS];
  size_t nscids;
  qe_ts created_ts, last_rx_ts;
  qe_ts probe_ts; /* the last liveness probe sent while the peer was silent */
  uint8_t peer_key[QE_KEYLEN];
  int key_known, refused, hs_done, announced, half_open;
  qe_peer *peer;
  size_t max_udp;    /* UDP payload we send on this path */
  size_t max_dgram;  /* largest inner packet that fits one datagram */
  uint64_t dgram_id;
  qe_txq txq;
  int64_t ctl_stream; /* -1 until opened */
  qe_chunk *ctl_head, *ctl_tail, *ctl_cur;
  uint8_t *nop_block;              /* QE_NOP_POOL chunks, one allocation */
  qe_chunk *nop_free[QE_NOP_POOL]; /* the ones not in the stream now */
  size_t nop_nfree;
  int dgram_since_nop;
  int echo_wanted; /* a NOP only to echo the peer's stamps (ctrl_stream.c) */
  uint64_t ctl_next_off;
  uint8_t *ctl_rbuf;
  size_t ctl_rlen, ctl_rcap;
  int ctl_magic_rcvd;
  int ctl_broken; /* the peer reset or stopped the control stream */
  int dirty;
  /* Socket this connection sends on: the engine's, or an uplink's. */
  qe_udp *udp;
  qe_udp_tx *tx;
  int uplink; /* index in e->uplinks, -1: the main socket */
  /* Bonding: this connection is a path (hello sent or received), and its
   * path state (bond.h). */
  int is_path;
  int relayed; /* dialled through a relay (QE_RELAY_MAGIC) */
  qe_path path;
  int urgent; /* the datagram being sent is a traffic class's */
};

typedef struct qe_cmd qe_cmd;

/*
 * What a connection tells the layer above it: quic_conn.c, txq.c and
 * ctrl_stream.c call upward only through this table (e->up, peer.c's
 * qe_peer_conn_up), never into the engine or bond.c directly. Worker
 * thread. `established` and `closed` may close other connections.
 */
typedef struct qe_conn_up {
  /* A free connection slot (QE_CONN_HANDSHAKE), or NULL when all are used. */
  qe_conn *(*alloc)(qe_engine *e);
  /* Gives the slot back (frees the connection's state). */
  void (*release)(qe_conn *c);
  /* Whether a peer key may connect (handshake, then established). */
  int (*allowed)(const qe_engine *e, const uint8_t key[QE_KEYLEN]);
  /* Handshake done, key allowed, queues in place: join a peer. */
  void (*established)(qe_conn *c, qe_ts ts);
  /* One tunnelled packet (a bonded path's: with its sequence number). */
  void (*datagram)(qe_conn *c, const uint8_t *data, size_t len);
  /* One whole control message; the handler owns `msg` (malloc'd). */
  void (*control)(qe_conn *c, uint8_t *msg, size_t len);
  /* Closing for `reason` (silent: no event): leave the peer, release. */
  void (*closed)(qe_conn *c, const char *reason, int silent, qe_ts ts);
  /* A bonded path we dialled was refused (QE_APP_NO_BOND). */
  void (*bond_refused)(qe_conn *c);
} qe_conn_up;

/* peer.c */
extern const qe_conn_up qe_peer_conn_up;
qe_peer *qe_engine_peer_get(qe_engine *e, const uint8_t key[QE_KEYLEN],
                            int create);
int qe_engine_key_allowed(const qe_engine *e, const uint8_t key[QE_KEYLEN]);
void qe_engine_note_refused(qe_engine *e, qe_conn *c, qe_ts ts);

typedef struct qe_refused_entry {
  uint8_t key[QE_KEYLEN];
  qe_ts ts;
} qe_refused_entry;

struct qe_engine {
  /* Set before the worker starts; read-only afterwards. */
  qe_engine_config cfg;
  char *tun_name, *listen_addr, *listen_device;
  qe_tun tun;
  qe_udp udp;
  qe_tls_identity id;
  int epfd, evfd, tfd;
  qe_event_fn event_fn;
  void *event_ud;
  ngtcp2_callbacks cb_client, cb_server;
  const qe_conn_up *up; /* what connections report to (peer.c) */

  /* Control thread <-> worker. */
  pthread_t thread;
  int started, joined;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  qe_cmd *cmd_head, *cmd_tail;
  int worker_done; /* under lock */
  atomic_size_t ctl_backlog; /* control bytes queued towards JS */
  uint64_t posted_version;   /* control thread only: last tables posted */

  /* Worker only. */
  int stopping;
  qe_conn *conns;
  uint16_t *active; /* slots in use */
  size_t nactive;
  size_t next_slot, half_open;
  qe_peer *peers;
  size_t npeers;
  uint8_t (*allowed)[QE_KEYLEN];
  size_t nallowed;
  qe_routes *routes;
  /* Tables that are not one of the above (see qe_tables); version: of the
   * last set_tables applied, 0 before it. */
  uint64_t tables_version;
  /* The policy: the compiled table, the bytes it came from (read back), its
   * generation (flows are decided again when it changes) and the flow
   * tracker (made with the first policy). NULL acl: no policy. */
  struct qe_acl *acl;
  uint8_t *acl_blob;
  size_t acl_len;
  uint64_t acl_gen;
  struct qe_ct *ct;
  int accept_bonded;
  uint64_t reorder_max_ns;
  size_t reorder_max_bytes;
  qe_refused_entry refused[QE_REFUSED_RING];
  size_t refused_next;
  struct {
    ngtcp2_cid cid;
    qe_ts ts;
  } odcids[QE_ODCID_RING];
  size_t odcid_next;
  qe_udp_rx rx;
  qe_udp_tx tx;
  uint8_t **tun_bufs;
  size_t *tun_sizes;
  uint8_t *scratch;  /* ICMP output */
  uint8_t *scratch2; /* a two-part packet made contiguous (ICMP input) */
  uint8_t hdr_scratch[128]; /* one rebuilt header while splitting TSO */
  qe_gro gro;
  qe_ts timer_armed;
  int tun_failed;    /* the TUN read failed for good: out of epoll */
  int tun_paused;    /* TUN taken out of epoll: a send queue is near full */
  qe_ts tun_paused_ts;
  qe_ts reset_tokens_ts, icmp_tokens_ts, raw_tokens_ts;
  double reset_tokens, icmp_tokens, raw_tokens;
  qe_global_stats g;
  /* Bonding. */
  uint64_t session; /* random, per engine run */
  qe_uplink uplinks[QE_MAX_UPLINKS];
  qe_bond_target targets[QE_MAX_TARGETS];
  qe_class *classes; /* nclasses, replaced whole by QE_CMD_CLASSES */
  size_t nclasses;
  size_t nbonded; /* peers with paths: bond ticks run while > 0 */
  qe_ts bond_next_ts, uplinks_checked_ts;
  int lost_pending; /* some path has lost datagrams to re-send */
  qe_ts now;
};

/* uplink.c */
/* Opens uplinks whose device appeared, closes (with their paths) those
 * whose device vanished or was re-created; then they reopen. */
void qe_uplinks_check(qe_engine *e, qe_ts ts);
/* Replaces the uplinks (n <= QE_MAX_UPLINKS, names valid): same name keeps
 * its socket, a removed one closes its paths, a new one opens or waits. */
void qe_uplinks_apply(qe_engine *e, const qe_uplink_conf *want, size_t n,
                      qe_ts ts);

/* engine_cmd.c */
/* Runs every queued command (the eventfd woke the worker). */
void qe_engine_run_commands(qe_engine *e, qe_ts ts);
/* Frees commands never run (the worker is gone). */
void qe_engine_cmds_free(qe_engine *e);
/* Frees a routes table (NULL is fine). */
void qe_routes_free(qe_routes *r);

/* engine.c */
/* Copies the counters out (the worker, for a stats command). */
void qe_engine_fill_stats(qe_engine *e, qe_stats *out);
/* Any connection (plain or path) whose remote is `sa`, or NULL. */
qe_conn *qe_engine_conn_by_remote(qe_engine *e, const struct sockaddr *sa);
void qe_engine_emit(qe_engine *e, qe_event_type type, const qe_conn *c,
                    const char *reason, uint8_t *data, size_t datalen);
qe_conn *qe_engine_conn_alloc(qe_engine *e);
void qe_engine_conn_release(qe_engine *e, qe_conn *c);
/* Appends one packet for `c` to the UDP batch; returns the place to write. */
uint8_t *qe_engine_tx_reserve(qe_engine *e, size_t len);
/* One raw datagram (QE_RAW_MAGIC) from the main socket, batched with the
 * rest of this wakeup's sends. */
void qe_engine_send_raw_now(qe_engine *e, const struct sockaddr *to,
                            socklen_t tolen, const uint8_t *data, size_t len);

/* quic_conn.c */
/* A plain connection from the main socket; `relayed`: through a relay. */
int qe_conn_client_new(qe_engine *e, const struct sockaddr *remote,
                       socklen_t remotelen, int relayed, qe_ts ts);
int qe_conn_server_new(qe_engine *e, const struct sockaddr *remote,
                       socklen_t remotelen, const uint8_t *pkt, size_t len,
                       qe_ts ts);
void qe_conn_read(qe_conn *c, const struct sockaddr *remote,
                  socklen_t remotelen, const uint8_t *pkt, size_t len,
                  qe_ts ts);
/*
 * The next three may close (free) the connection: they return -1 then, and
 * the caller must not touch `c` again; 0 otherwise.
 */
/* Writes whatever the connection has to send (ACKs, control data ...). */
int qe_conn_write(qe_conn *c, qe_ts ts);
/* The connection failed inside ngtcp2 (`liberr`): closes it, with the
 * reason the error implies. */
void qe_conn_fail(qe_conn *c, int liberr, qe_ts ts);

/* ctrl_stream.c */
/* Queues a NOP after datagrams sent since the last one (see QE_NOP_POOL). */
void qe_conn_nop_after_datagrams(qe_conn *c);
/* Parses buffered control data if JS has room for it (see backlog); may
 * close `c` on a framing error. */
void qe_conn_ctl_resume(qe_conn *c, qe_ts ts);
/* Queues one control message (a copy) on the stream: 0, QE_ERR_INVALID or
 * QE_ERR_NOMEM. */
int qe_conn_queue_control(qe_conn *c, const uint8_t *data, size_t len);
/* Queues raw bytes (`hdr` then `data`) on the stream: the magic or hello. */
int qe_ctl_enqueue(qe_conn *c, const uint8_t *hdr, size_t hdrlen,
                   const uint8_t *data, size_t len);
/* The NOP pool, when the connection comes up: 0 or QE_ERR_NOMEM. */
int qe_ctl_init(qe_conn *c);
/* Frees queued and received control data and the NOP pool. */
void qe_ctl_free(qe_conn *c);
/* ngtcp2 callbacks for the control stream (quic_conn.c's table). */
int qe_ctl_on_extend_bidi(ngtcp2_conn *conn, uint64_t max_streams,
                          void *user_data);
int qe_ctl_on_stream_open(ngtcp2_conn *conn, int64_t stream_id,
                          void *user_data);
int qe_ctl_on_recv(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                   uint64_t offset, const uint8_t *data, size_t datalen,
                   void *user_data, void *stream_user_data);
int qe_ctl_on_acked(ngtcp2_conn *conn, int64_t stream_id, uint64_t offset,
                    uint64_t datalen, void *user_data, void *stream_user_data);
int qe_ctl_on_reset(ngtcp2_conn *conn, int64_t stream_id, uint64_t final_size,
                    uint64_t app_error_code, void *user_data,
                    void *stream_user_data);
int qe_ctl_on_stop_sending(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t app_error_code, void *user_data,
                           void *stream_user_data);

/* txq.c */
/* Like qe_engine_tx_reserve, on the connection's own socket. */
uint8_t *qe_conn_tx_reserve(qe_conn *c, size_t len);
/*
 * Sends one IP packet, given as `vcnt` (1 or 2) pieces of `total` bytes, in
 * one DATAGRAM frame: a QE_SEND_* result.
 */
int qe_conn_send_datagram(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                          size_t total, qe_ts ts);
/* Sends now if nothing is queued and the window allows, else queues. */
int qe_conn_forward(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                    size_t total, qe_ts ts);
/* Whether a packet of `total` bytes that must wait may join c's queue now
 * (room, size, early drop); 0: it is dropped, and counted. */
int qe_conn_admit(qe_conn *c, size_t total, qe_ts ts);
/* qe_conn_forward for a packet qe_conn_admit has let in. */
int qe_conn_forward_admitted(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                             size_t total, qe_ts ts);
/* Like qe_conn_forward, but ahead of every queued packet, with no early
 * drop (a full queue loses its newest packet instead): a bonded datagram
 * sent again. It is older than anything queued, and the receiver holds
 * every later packet until it comes; behind a deep queue it would come
 * after the receiver stopped waiting. */
int qe_conn_forward_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                          size_t total, qe_ts ts);
/* Like qe_conn_forward, but ahead of every queued packet (a traffic
 * class's); a full queue loses its newest packet instead. */
int qe_conn_forward_urgent(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                           size_t total, qe_ts ts);
/* Sends queued packets while the window allows; -1: `c` was closed. */
int qe_conn_flush_queue(qe_conn *c, qe_ts ts);

/* quic_conn.c, bonded paths */
/* Bytes of bulk packets a bonded path may have in flight (cs: its
 * statistics, which the caller has at hand); 0: no cap. */
uint64_t qe_path_cap(const qe_conn *c, const ngtcp2_conn_stat *cs);
/* More than a keep-alive's PING or a NOP in flight: ACKs come all the time. */
int qe_path_loaded(const qe_conn *c, const ngtcp2_conn_stat *cs);

/* quic_conn.c */
int qe_conn_handle_expiry(qe_conn *c, qe_ts ts);
qe_ts qe_conn_expiry(const qe_conn *c);
/* Sends CONNECTION_CLOSE with `app_code` and frees, telling no one (a
 * crossed dial that lost). */
void qe_conn_close_quiet(qe_conn *c, const char *reason, int64_t app_code,
                         qe_ts ts);
/* Closes: sends CONNECTION_CLOSE when `app_code` >= 0, emits, frees. */
void qe_conn_close(qe_conn *c, const char *reason, int64_t app_code,
                   qe_ts ts);
int qe_conn_has_cid(const qe_conn *c, const uint8_t *cid, size_t cidlen);
void qe_conn_fill_stats(qe_conn *c, qe_peer_stats *ps);
void qe_conn_free_state(qe_conn *c);
int qe_conn_verify_key(void *user_data, const uint8_t key[QE_KEYLEN]);

int qe_conn_client_new_on(qe_engine *e, const struct sockaddr *remote,
                          socklen_t remotelen, int uplink, uint8_t mode,
                          qe_ts ts);
void qe_conn_path_keepalive(qe_conn *c);

/* bond.c */
/* A path connection is established: joins (or restarts) its peer. Returns
 * -1 if `c` was closed. */
int qe_bond_path_up(qe_engine *e, qe_peer *p, qe_conn *c, qe_ts ts);
/* A path connection is closing: leaves its peer. Returns 1 if the peer
 * still has paths (emit path-down only), 0 if it was the last. */
int qe_bond_path_gone(qe_engine *e, qe_conn *c, qe_ts ts);
void qe_bond_send(qe_engine *e, qe_peer *p, const ngtcp2_vec *v, size_t vcnt,
                  size_t total, qe_ts ts);
void qe_bond_recv(qe_conn *c, const uint8_t *data, size_t len);
void qe_bond_tick(qe_engine *e, qe_ts ts);
/* Re-sends what `c` sent and never saw acknowledged on the other paths. */
void qe_bond_rescue(qe_engine *e, qe_conn *c, qe_ts ts);
/* Re-sends what the QUIC stack declared lost on bonded paths. */
void qe_bond_resend_lost(qe_engine *e, qe_ts ts);
qe_ts qe_bond_expiry(const qe_engine *e);
void qe_bond_flush(qe_engine *e);
void qe_bond_close_all(qe_engine *e);
/* The path `c` we dialled was refused (QE_APP_NO_BOND): stop bonding to its
 * endpoint; the next tick dials it once plainly. */
void qe_bond_refused(qe_engine *e, const qe_conn *c);
/* The reorder limits changed (qe_tables): every bonded peer follows. */
void qe_bond_set_reorder(qe_engine *e, uint64_t max_ns, size_t max_bytes);

/* forward.c */
void qe_forward_to_tun_peer(qe_engine *e, qe_peer *p, const uint8_t *pkt,
                            size_t len);
/* Writes one IP packet into the TUN (adds the vnet header if needed). */
int qe_engine_tun_write(qe_engine *e, const uint8_t *pkt, size_t len);
void qe_forward_from_tun(qe_engine *e, uint8_t *pkt, size_t len, qe_ts ts);
void qe_forward_to_tun(qe_conn *c, const uint8_t *pkt, size_t len);

/* icmp.c: writes an ICMP "too big" for `pkt` into the TUN. */
int qe_icmp_too_big(qe_engine *e, const uint8_t *pkt, size_t len,
                    size_t mtu, qe_ts ts);

#endif /* QE_ENGINE_INT_H */
