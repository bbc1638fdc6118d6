/*
 * The forwarding engine: one TUN device, one UDP socket, QUIC connections
 * to peers, a forwarding table, all driven by one worker thread running its
 * own epoll loop. Packets never leave C.
 *
 * Threading: qe_engine_new/start/stop/join/del and every command function
 * are called from one control thread (the JS main thread). Commands are
 * queued under a mutex and the worker is woken through an eventfd; the
 * worker owns every connection, peer and table. Events travel the other way
 * through the `qe_event_fn` given at creation, called on the worker thread;
 * it takes ownership of the event (free it with qe_event_free).
 */
#ifndef QE_ENGINE_H
#define QE_ENGINE_H

#include "qe.h"

#include <netinet/in.h>

typedef struct qe_engine qe_engine;

typedef struct qe_engine_config {
  const char *tun_name;
  int tun_mtu;
  int tun_offload; /* IFF_VNET_HDR + TSO: fewer, bigger reads and writes */
  const char *key_pem;
  size_t key_pem_len;
  const uint8_t *pubkey; /* QE_KEYLEN bytes; must match key_pem */
  const char *listen_addr;
  uint16_t listen_port;
  const char *listen_device; /* NULL or "": no SO_BINDTODEVICE */
  uint32_t fwmark; /* SO_MARK on every socket the tunnel sends from; 0: none */
  uint64_t keepalive_ns;
  uint64_t idle_timeout_ns;
  int path_mtu; /* outer IP MTU of the underlay, e.g. 1500 */
  int cc_algo;  /* ngtcp2_cc_algo */
  /* Bonded peers' reorder buffer: the longest wait for a gap (the adaptive
   * wait, RTT spread + 10 ms, is capped by it) and the bytes held. */
  uint64_t reorder_max_ns;
  size_t reorder_max_bytes;
} qe_engine_config;

typedef enum qe_event_type {
  QE_EV_PEER_UP,
  QE_EV_PEER_DOWN,
  QE_EV_CONTROL,
  QE_EV_REFUSED,
  QE_EV_ERROR,
  QE_EV_DIAL_FAILED, /* a connection we dialled never came up */
  QE_EV_PATH_UP,
  QE_EV_PATH_DOWN,
  QE_EV_RAW, /* a datagram starting QE_RAW_MAGIC on the main socket: data */
  QE_EV_STOPPED, /* the last event: the worker is about to exit */
} qe_event_type;

typedef struct qe_event {
  qe_event_type type;
  int has_key;
  uint8_t key[QE_KEYLEN];
  char addr[INET6_ADDRSTRLEN];
  uint16_t port;
  int server;         /* our role on that connection */
  const char *reason; /* static string */
  uint8_t *data;      /* control message, owned by the event */
  size_t datalen;
  char uplink[16];    /* path events: our uplink ('' accepting side) */
  int path_index;
} qe_event;

typedef void (*qe_event_fn)(void *user_data, qe_event *ev);
void qe_event_free(qe_event *ev);
/* Tells the engine an event was delivered (any thread); then free it. */
void qe_engine_event_done(qe_engine *e, const qe_event *ev);

typedef struct qe_route {
  uint8_t family, plen;
  uint8_t addr[16];
  uint8_t key[QE_KEYLEN];
} qe_route;

#define QE_STATS_MAX_PATHS 8
typedef struct qe_path_stats {
  char uplink[16];
  int index, alive;
  char addr[INET6_ADDRSTRLEN];
  uint16_t port;
  uint64_t rtt_ns, cwnd, delivery_rate;
  uint64_t bytes_out, bytes_in, packets_out, packets_in, lost;
  uint64_t rtt_min_ns, bytes_in_flight, queued, dropped;
  /* The queue our packets wait in on the way out, as the peer measured it
   * (UINT64_MAX: not known), and the one our ACKs wait in on the way back
   * (sched.h, qe_owd). */
  uint64_t queue_out_ns, queue_back_ns;
} qe_path_stats;

typedef struct qe_peer_stats {
  int bonded, mode;
  uint64_t reordered, late, bond_dropped, resent, lost_resent, moved,
      classed_out, classed_in, acks_out;
  size_t npaths;
  qe_path_stats paths[QE_STATS_MAX_PATHS];
  uint8_t key[QE_KEYLEN];
  int up, server;
  int relayed; /* the connection in use was dialled through a relay */
  char addr[INET6_ADDRSTRLEN];
  uint16_t port;
  uint64_t rtt_smoothed_ns, rtt_min_ns, rtt_var_ns, rtt_latest_ns;
  uint64_t silent_ns; /* since anything was last heard from the peer (any path) */
  uint64_t cwnd, bytes_in_flight, delivery_rate;
  uint64_t max_datagram; /* largest inner packet that fits one datagram */
  uint64_t bytes_in, bytes_out, packets_in, packets_out;
  uint64_t datagrams_lost, datagrams_acked;
  uint64_t drop_congestion, drop_too_big, drop_spoofed, drop_not_up;
} qe_peer_stats;

typedef struct qe_global_stats {
  uint64_t garbage;           /* UDP payloads that are no QUIC we know */
  uint64_t refused;           /* handshakes refused: key not allowed */
  uint64_t handshake_failed;  /* other handshake failures */
  uint64_t half_open_dropped; /* new Initials over the half-open limit */
  uint64_t no_route, no_peer, spoofed, too_big, malformed;
  uint64_t tun_rx, tun_tx, tun_tx_errors, udp_rx, udp_tx, udp_tx_dropped;
  uint64_t resets_sent, icmp_sent;
  uint64_t duplicates; /* crossed dials: connections closed for another */
  uint64_t connections; /* open QUIC connections now */
  uint64_t tables_version; /* of the last tables applied; 0: none yet */
  uint64_t bond_refused;   /* bonded paths refused: accept_bonded is 0 */
  uint64_t raw_rx;      /* punches and relay answers handed to the control plane */
  uint64_t raw_dropped; /* ... dropped over their rate (200/s) */
  uint64_t raw_tx;      /* sent for the control plane (qe_engine_send_raw) */
  /* Policy (acl in qe_tables): packets passed and dropped by reason
   * (QE_CT_* of ct.h), flows tracked now. */
  uint64_t policy_passed;
  uint64_t policy_drops[8];
  uint64_t policy_flows;
} qe_global_stats;

typedef struct qe_stats {
  qe_global_stats g;
  size_t npeers;
  qe_peer_stats *peers; /* malloc'd; free with qe_stats_free */
  /* Per policy rule (in the order of the acl's rules), then the default:
   * flows admitted and packets dropped; malloc'd, nacl_hits = rules + 1. */
  size_t nacl_hits;
  uint64_t *acl_hits;
} qe_stats;

void qe_stats_free(qe_stats *s);

/*
 * Opens the TUN device, the UDP socket and the TLS identity. Returns 0,
 * QE_ERR_INVALID, QE_ERR_TLS, QE_ERR_NOMEM or QE_ERR_SYS (errno set).
 */
int qe_engine_new(qe_engine **pe, const qe_engine_config *cfg, qe_event_fn fn,
                  void *user_data);
/* Spawns the worker. Returns 0, QE_ERR_STATE or QE_ERR_SYS. */
int qe_engine_start(qe_engine *e);
/* Asks the worker to close every connection and exit (QE_EV_STOPPED). */
int qe_engine_stop(qe_engine *e);
/* Waits for the worker to exit; no-op if it never started. */
void qe_engine_join(qe_engine *e);
/* Closes the TUN (it vanishes) and the socket; joins first. */
void qe_engine_del(qe_engine *e);

int qe_engine_ifindex(const qe_engine *e);
uint16_t qe_engine_port(const qe_engine *e);

/* Commands. Each returns 0, QE_ERR_INVALID, QE_ERR_NOMEM or QE_ERR_STATE. */
int qe_engine_connect(qe_engine *e, const char *addr, uint16_t port);
/* Like qe_engine_connect, through a relay at addr:port: the connection says
 * so in its first control bytes, and a direct connection to the same peer
 * replaces it (whichever came first) while a relayed one never replaces a
 * direct one. */
int qe_engine_connect_relayed(qe_engine *e, const char *addr, uint16_t port);
/* Sends one datagram from the main socket (a punch, a relay bind): it must
 * start with the 4 bytes "\0QEP" and be 5..512 bytes long. */
int qe_engine_send_raw(qe_engine *e, const char *addr, uint16_t port,
                       const uint8_t *data, size_t len);
int qe_engine_disconnect(qe_engine *e, const uint8_t key[QE_KEYLEN]);
int qe_engine_set_allowed(qe_engine *e, const uint8_t *keys, size_t n);
int qe_engine_set_routes(qe_engine *e, const qe_route *routes, size_t n);
int qe_engine_send_control(qe_engine *e, const uint8_t key[QE_KEYLEN],
                           const uint8_t *data, size_t len);
/*
 * A traffic class: packets that match every given criterion bypass the
 * bonding scheduler and go, outside the sequence (no reorder wait at the
 * receiver), on one path: the lowest-latency live one, or a named uplink's.
 */
#define QE_MAX_CLASSES 16
#define QE_CLASS_MAX_PORTS 32
typedef struct qe_class {
  uint64_t dscp;     /* bit n set: DSCP n matches; 0: any DSCP */
  uint16_t max_size; /* 0: any size */
  uint8_t nports;    /* 0: any port */
  uint16_t port_lo[QE_CLASS_MAX_PORTS], port_hi[QE_CLASS_MAX_PORTS];
  char uplink[16]; /* "": the lowest-latency live path */
} qe_class;

/* Replaces the traffic classes (at most QE_MAX_CLASSES; first match wins). */
int qe_engine_set_classes(qe_engine *e, const qe_class *classes, size_t n);
/* One uplink as qe_engine_set_uplinks takes it. */
typedef struct qe_uplink_conf {
  char name[16];     /* 1..15 characters, NUL-terminated */
  uint16_t weight;   /* hundredths; 0 is taken as 1 */
  uint16_t priority; /* failover: lower is preferred */
  uint8_t role;      /* 0 primary, 1 backup */
  /* Bulk goes to a higher-cost uplink's paths only when every cheaper live
   * path has no room (metered LTE); 0..255, 0 the cheapest. */
  uint8_t cost;
  /* Bytes/s the uplink is known to send (config bandwidth.up): seeds its
   * paths' delivery rate until measured; 0: unknown. */
  uint32_t rate_bps;
} qe_uplink_conf;

/*
 * Every table the engine enforces, given at once (qe_engine_set_tables):
 * the worker swaps them all in one step between two packets, and live
 * connections stay (those whose key left `allowed` close, 'not-allowed').
 * As input the arrays are the caller's and only read; as output
 * (qe_engine_read_tables) they are malloc'd: free with qe_tables_free.
 */
typedef struct qe_tables {
  uint64_t version; /* > every version given before; 0 is never valid */
  uint8_t (*allowed)[QE_KEYLEN];
  size_t nallowed; /* read back sorted by key */
  qe_route *routes;
  size_t nroutes; /* read back in the order given */
  qe_uplink_conf *uplinks;
  size_t nuplinks; /* at most 8; read back in the order given */
  qe_class *classes;
  size_t nclasses; /* at most QE_MAX_CLASSES; first match wins */
  /* 0: a bonded path dialled to us is refused (QE_APP_NO_BOND); the
   * dialler then stops bonding to us and dials one plain connection. */
  int accept_bonded;
  uint64_t reorder_max_ns;  /* see qe_engine_config */
  size_t reorder_max_bytes; /* 65536.. */
  /* The policy (packed rules, see qe_acl_parse in engine_cmd.c); acl_len 0:
   * no policy, every packet of an admitted peer passes. Read back as given. */
  const uint8_t *acl;
  size_t acl_len;
} qe_tables;

/*
 * Validates every table, then posts them as ONE command. Returns 0, or
 * QE_ERR_INVALID (bad entry, or version not above the last one given) /
 * QE_ERR_NOMEM / QE_ERR_STATE, and then nothing was posted.
 */
int qe_engine_set_tables(qe_engine *e, const qe_tables *t);
/*
 * Synchronous: the tables the worker enforces now, read from its memory.
 * Commands run in call order, so every qe_engine_set_tables made before
 * this call is in it. out->version is 0 before the first set_tables (the
 * one-table setters below change tables but not the version). Returns 0,
 * QE_ERR_NOMEM or QE_ERR_STATE.
 */
int qe_engine_read_tables(qe_engine *e, qe_tables *out);
void qe_tables_free(qe_tables *t);

/* Replaces the uplinks (at most 8, distinct names) live: sockets open and
 * close on the worker, bonded peers gain and lose paths. */
int qe_engine_set_uplinks(qe_engine *e, const qe_uplink_conf *uplinks,
                          size_t n);
/* Bonds the peer at addr:port: one path per uplink, kept dialled. `mode` is
 * a qe_mode (sched.h). */
int qe_engine_connect_bonded(qe_engine *e, const char *addr, uint16_t port,
                             int mode);
/* Stops dialling the bonded endpoint addr:port and closes the paths dialled
 * to it (the endpoint left the config). */
int qe_engine_forget_bonded(qe_engine *e, const char *addr, uint16_t port);
/* Synchronous snapshot (waits for the worker, microseconds). */
int qe_engine_stats(qe_engine *e, qe_stats *out);

#endif /* QE_ENGINE_H */
