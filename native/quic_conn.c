/*
 * One QUIC connection to a peer: ngtcp2 + a GnuTLS session, the control
 * stream (length-prefixed messages, each direction opened by the magic
 * "QEC1"), DATAGRAM frames for IP packets, and the close paths with the
 * reason reported to the control plane.
 *
 * A connection is freed only through conn_close_ex(); functions that can
 * close it return nonzero afterwards so the caller stops touching it.
 */
#include "engine_int.h"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdlib.h>
#include <string.h>

static void conn_close_ex(qe_conn *c, const char *reason,
                          const ngtcp2_connection_close_error *ccerr,
                          int silent, qe_ts ts);

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((qe_conn *)ref->user_data)->conn;
}

static void make_cid(qe_conn *c, ngtcp2_cid *cid) {
  uint8_t d[QE_CIDLEN] = {(uint8_t)(c->slot >> 8), (uint8_t)c->slot,
                          (uint8_t)(c->gen >> 8), (uint8_t)c->gen};
  gnutls_rnd(GNUTLS_RND_NONCE, d + 4, QE_CIDLEN - 4);
  ngtcp2_cid_init(cid, d, QE_CIDLEN);
}

int qe_conn_has_cid(const qe_conn *c, const uint8_t *cid, size_t cidlen) {
  for (size_t i = 0; i < c->nscids; i++) {
    if (c->scids[i].datalen == cidlen &&
        memcmp(c->scids[i].data, cid, cidlen) == 0) {
      return 1;
    }
  }
  return 0;
}

static int is_v4(const struct sockaddr *sa) {
  const struct sockaddr_in6 *s6 = (const void *)sa;
  return sa->sa_family == AF_INET ||
         (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr));
}

static void conn_sizes(qe_conn *c, size_t dcidlen) {
  int mtu = c->eng->cfg.path_mtu;
  c->max_udp = (size_t)mtu - (is_v4((struct sockaddr *)&c->remote) ? 28 : 48);
  c->max_dgram = c->max_udp - (QE_QUIC_DGRAM_OVERHEAD - QE_CIDLEN + dcidlen);
}

/* ---- ngtcp2 callbacks ---- */

static void cb_rand(uint8_t *dest, size_t destlen,
                    const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  gnutls_rnd(GNUTLS_RND_RANDOM, dest, destlen);
}

static int cb_get_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                          size_t cidlen, void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  if (cidlen != QE_CIDLEN || c->nscids >= QE_CONN_MAX_SCIDS) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  make_cid(c, cid);
  if (ngtcp2_crypto_generate_stateless_reset_token(
          token, c->eng->id.reset_secret, sizeof(c->eng->id.reset_secret),
          cid) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  c->scids[c->nscids++] = *cid;
  return 0;
}

static int cb_remove_cid(ngtcp2_conn *conn, const ngtcp2_cid *cid,
                         void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  for (size_t i = 0; i < c->nscids; i++) {
    if (ngtcp2_cid_eq(&c->scids[i], cid)) {
      c->scids[i] = c->scids[--c->nscids];
      break;
    }
  }
  return 0;
}

/*
 * The server is done when its handshake completes (it has checked the
 * client's certificate by then). A TLS 1.3 client completes first, before
 * the server has judged it: it waits for HANDSHAKE_DONE (confirmation).
 */
static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  if (c->server) {
    c->hs_done = 1;
  }
  return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  if (!c->server) {
    c->hs_done = 1;
  }
  return 0;
}

/*
 * A client that moved (a laptop from Wi-Fi to LTE, a NAT rebinding) showed
 * up from a new address and ngtcp2 validated it: events, stats and the
 * stateless-reset lookup follow the address in use. Once per move, not per
 * packet.
 */
static int cb_path_validation(ngtcp2_conn *conn, uint32_t flags,
                              const ngtcp2_path *path,
                              ngtcp2_path_validation_result res,
                              void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  (void)flags;
  if (c->server && res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS &&
      path->remote.addrlen <= sizeof(c->remote)) {
    memcpy(&c->remote, path->remote.addr, path->remote.addrlen);
    c->remotelen = path->remote.addrlen;
  }
  return 0;
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags,
                            const uint8_t *data, size_t datalen,
                            void *user_data) {
  qe_conn *c = user_data;
  (void)conn, (void)flags;
  c->eng->up->datagram(c, data, datalen);
  return 0;
}

/*
 * We acknowledge every QE_ACK_EVERY-th ack-eliciting packet at once (else
 * after the ACK delay, or sooner with a packet of our own to send), not
 * every second one as RFC 9000 13.2.1 suggests (it allows fewer). ACKs take
 * the reverse uplink, and users' uplinks are asymmetric: acknowledging every
 * second 1,350-byte datagram costs ~3% of the forward rate, 4.5 Mbit/s at
 * 150 Mbit/s, more than a 4 Mbit/s upstream carries beside the TCP ACKs
 * inside. `lab bond --uplink a=4/150mbit,10ms --uplink b=20/40mbit,30ms
 * --direction down --streams 4`: bonded 105-111 Mbit/s at every second
 * (efficiency 0.89-0.92), 131-146 at every eighth (0.99-1.14); uplink a
 * alone 79-86 against 88-98. At 8 the ACKs are under 1% of the forward
 * rate. A path whose in-flight cap holds fewer than 8 packets is acknowledged
 * by the ACK delay or with the peer's own packets: a 4 Mbit/s, 3 ms uplink
 * bonded beside a 1 ms one (upload, -P1) kept its rate (3.6 Mbit/s at 8 and
 * at 2), as did a 5 Mbit/s, 30 ms one beside a 10 Mbit/s, 5 ms one.
 */
#define QE_ACK_EVERY 8

/* The in-flight cap never goes below this many packets: with the peer's ACKs
 * (every QE_ACK_EVERY-th packet, or after its ACK delay, or with its own
 * packets), it keeps the path's ACK clock, and its rate samples, running on
 * a link too slow or too near for its bandwidth-delay product to hold more.
 * Every packet more is a queue at the
 * link: 16 made 22 ms at 8 Mbit/s, and a download's ACKs queued behind an
 * upload's on the same uplink (with `lab bond --direction both` over two
 * 8/30 Mbit/s uplinks, the download carried 15 Mbit/s; at 4, 34). */
#define QE_CAP_MIN_PKTS 4

/* Gaps shorter than this between a path's packets are not worth a look at
 * its statistics (qe_gap_heard keeps only the longest). */
#define QE_GAP_MIN_NS (2 * 1000000ULL)

uint64_t qe_path_cap(const qe_conn *c, const ngtcp2_conn_stat *cs) {
  if (!c->is_path) {
    return 0;
  }
  return qe_rate_cap(&c->path.rate, cs->min_rtt,
                     qe_rate_back(&c->path.rate, cs->min_rtt),
                     QE_CAP_MIN_PKTS * (uint64_t)c->max_udp);
}

int qe_path_loaded(const qe_conn *c, const ngtcp2_conn_stat *cs) {
  return cs->bytes_in_flight >= 4 * (uint64_t)c->max_udp;
}

static int cb_ack_datagram(ngtcp2_conn *conn, uint64_t dgram_id,
                           void *user_data) {
  qe_conn *c = user_data;
  qe_ts sent_ts = 0;
  uint32_t bytes = c->path.sent_id != NULL
                       ? qe_path_acked(&c->path, dgram_id, &sent_ts)
                       : 0;
  if (bytes) {
    /* The path's own delivery rate (qe_rate_acked). */
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(conn, &cs);
    qe_rate_acked(&c->path.rate, bytes, c->eng->now, cs.min_rtt,
                  cs.latest_rtt, c->path.bytes_out, sent_ts);
  }
  if (c->peer) {
    c->peer->datagrams_acked++;
  }
  return 0;
}

/*
 * A tunnelled packet was declared lost. A plain tunnel never retransmits it
 * (TCP inside does). A bonded path notes it, and it is sent again once the
 * QUIC stack has returned (qe_bond_resend_lost), within the time the
 * receiver's reorder buffer waits for the gap: a lossy path bonded with a
 * slow one would otherwise show TCP inside its losses at the slow one's
 * round trip, and that TCP crawls (2% loss at 60 ms: a few Mbit/s).
 * Congestion losses are rare here: bulk in flight is capped (qe_path_cap).
 */
static int cb_lost_datagram(ngtcp2_conn *conn, uint64_t dgram_id,
                            void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  if (qe_path_lost(&c->path, dgram_id)) {
    c->eng->lost_pending = 1;
  }
  if (c->peer) {
    c->peer->datagrams_lost++;
  }
  return 0;
}

static const ngtcp2_callbacks conn_callbacks = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = cb_handshake_completed,
    .handshake_confirmed = cb_handshake_confirmed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = qe_ctl_on_recv,
    .acked_stream_data_offset = qe_ctl_on_acked,
    .stream_open = qe_ctl_on_stream_open,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .extend_max_local_streams_bidi = qe_ctl_on_extend_bidi,
    .stream_reset = qe_ctl_on_reset,
    .stream_stop_sending = qe_ctl_on_stop_sending,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_cid,
    .remove_connection_id = cb_remove_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .recv_datagram = cb_recv_datagram,
    .path_validation = cb_path_validation,
    .ack_datagram = cb_ack_datagram,
    .lost_datagram = cb_lost_datagram,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

/* Called by GnuTLS (through tls_gnutls.c) when the peer's key is known. */
int qe_conn_verify_key(void *user_data, const uint8_t key[QE_KEYLEN]) {
  qe_conn *c = user_data;
  memcpy(c->peer_key, key, QE_KEYLEN);
  c->key_known = 1;
  if (memcmp(key, c->eng->id.pubkey, QE_KEYLEN) == 0 ||
      !c->eng->up->allowed(c->eng, key)) {
    c->refused = 1;
    return -1;
  }
  return 0;
}

/* ---- setup ---- */

static void conn_settings(qe_conn *c, ngtcp2_settings *s, qe_ts ts) {
  qe_engine *e = c->eng;
  uint64_t hs = e->cfg.idle_timeout_ns;
  ngtcp2_settings_default(s);
  s->initial_ts = ts;
  s->cc_algo = (ngtcp2_cc_algo)e->cfg.cc_algo;
  s->max_tx_udp_payload_size = c->max_udp;
  s->no_tx_udp_payload_size_shaping = 1;
  s->no_pmtud = 1;
  s->ack_thresh = QE_ACK_EVERY;
  s->initial_rtt = 100 * NGTCP2_MILLISECONDS;
  s->handshake_timeout = hs < 3 * NGTCP2_SECONDS ? 3 * NGTCP2_SECONDS : hs;
}

static void conn_params(qe_conn *c, ngtcp2_transport_params *p) {
  ngtcp2_transport_params_default(p);
  p->initial_max_streams_bidi = c->server ? 1 : 0;
  p->initial_max_streams_uni = 0;
  p->initial_max_stream_data_bidi_local = QE_CTL_WINDOW;
  p->initial_max_stream_data_bidi_remote = QE_CTL_WINDOW;
  p->initial_max_data = QE_CTL_WINDOW;
  p->max_idle_timeout = c->eng->cfg.idle_timeout_ns;
  p->max_datagram_frame_size = 65535;
  p->active_connection_id_limit = 4;
}

static int conn_common_init(qe_conn *c, const struct sockaddr *remote,
                            socklen_t remotelen, int server, qe_ts ts) {
  memcpy(&c->remote, remote, remotelen);
  c->remotelen = remotelen;
  c->server = server;
  c->created_ts = c->last_rx_ts = ts;
  c->ctl_stream = -1;
  c->ref = (ngtcp2_crypto_conn_ref){.get_conn = get_conn, .user_data = c};
  conn_sizes(c, QE_CIDLEN);
  if (c->is_path) {
    uint8_t h[QE_HELLO_LEN];
    memcpy(h, QE_PATH_MAGIC, 4);
    for (int i = 0; i < 8; i++) {
      h[4 + i] = (uint8_t)(c->path.session >> (56 - 8 * i));
    }
    h[12] = c->path.index;
    h[13] = c->path.mode;
    h[14] = c->path.role;
    h[15] = c->path.cost;
    h[16] = (uint8_t)(c->path.weight >> 8);
    h[17] = (uint8_t)c->path.weight;
    h[18] = (uint8_t)(c->path.priority >> 8);
    h[19] = (uint8_t)c->path.priority;
    return qe_ctl_enqueue(c, h, QE_HELLO_LEN, NULL, 0);
  }
  return qe_ctl_enqueue(
      c, (const uint8_t *)(c->relayed ? QE_RELAY_MAGIC : QE_CTL_MAGIC), 4,
      NULL, 0);
}

static ngtcp2_path conn_path(qe_conn *c, const struct sockaddr *remote,
                             socklen_t remotelen) {
  return (ngtcp2_path){
      .local = {.addr = (ngtcp2_sockaddr *)&c->udp->local,
                .addrlen = c->udp->locallen},
      .remote = {.addr = (ngtcp2_sockaddr *)remote, .addrlen = remotelen},
  };
}

int qe_conn_client_new(qe_engine *e, const struct sockaddr *remote,
                       socklen_t remotelen, int relayed, qe_ts ts) {
  return qe_conn_client_new_on(e, remote, remotelen, relayed ? -2 : -1, 0,
                               ts);
}

void qe_conn_path_keepalive(qe_conn *c) {
  ngtcp2_conn_set_keep_alive_timeout(c->conn, QE_PATH_KEEPALIVE_NS);
}

int qe_conn_client_new_on(qe_engine *e, const struct sockaddr *remote,
                          socklen_t remotelen, int uplink, uint8_t mode,
                          qe_ts ts) {
  qe_conn *c = e->up->alloc(e);
  ngtcp2_cid dcid, scid;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  uint8_t d[16];
  int rv = QE_ERR_NOMEM;
  if (c == NULL) {
    return QE_ERR_FULL;
  }
  if (uplink == -2) {
    c->relayed = 1; /* before the hello is queued (conn_common_init) */
    uplink = -1;
  }
  if (uplink >= 0) {
    qe_uplink *u = &e->uplinks[uplink];
    c->udp = &u->udp;
    c->tx = &u->tx;
    c->uplink = uplink;
    c->is_path = 1;
    c->path.session = e->session;
    c->path.index = (uint8_t)uplink;
    c->path.mode = mode;
    c->path.role = u->role;
    c->path.weight = u->weight;
    c->path.priority = u->priority;
    c->path.cost = u->cost;
    qe_rate_seed(&c->path.rate, u->rate_bps);
  }
  if (conn_common_init(c, remote, remotelen, 0, ts) != 0) {
    goto fail;
  }
  gnutls_rnd(GNUTLS_RND_NONCE, d, sizeof(d));
  ngtcp2_cid_init(&dcid, d, sizeof(d));
  make_cid(c, &scid);
  c->scids[c->nscids++] = scid;
  conn_settings(c, &settings, ts);
  conn_params(c, &params);
  path = conn_path(c, (struct sockaddr *)&c->remote, c->remotelen);
  if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path,
                             NGTCP2_PROTO_VER_V1, &conn_callbacks, &settings,
                             &params, NULL, c) != 0) {
    rv = QE_ERR_QUIC;
    goto fail;
  }
  if (qe_tls_session_new(&c->tls, &e->id, 0, &c->ref) != 0) {
    rv = QE_ERR_TLS;
    goto fail;
  }
  ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
  ngtcp2_conn_set_keep_alive_timeout(c->conn, e->cfg.keepalive_ns);
  if (c->is_path) {
    qe_conn_path_keepalive(c);
  }
  qe_conn_write(c, ts);
  return 0;
fail:
  e->up->release(c);
  return rv;
}

static int same_ip(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) {
    return 0;
  }
  if (a->sa_family == AF_INET6) {
    return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                  16) == 0;
  }
  return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
         ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
}

/* Server handshakes in progress from the same IP address as `remote`. */
static size_t half_open_from(qe_engine *e, const struct sockaddr *remote) {
  size_t n = 0;
  for (size_t i = 0; i < e->nactive; i++) {
    const qe_conn *c = &e->conns[e->active[i]];
    if (c->half_open && same_ip((const struct sockaddr *)&c->remote, remote)) {
      n++;
    }
  }
  return n;
}

int qe_conn_server_new(qe_engine *e, const struct sockaddr *remote,
                       socklen_t remotelen, const uint8_t *pkt, size_t len,
                       qe_ts ts) {
  ngtcp2_pkt_hd hd;
  ngtcp2_cid scid;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  qe_conn *c;
  size_t before;
  if (ngtcp2_accept(&hd, pkt, len) != 0) {
    e->g.garbage++;
    return QE_ERR_INVALID;
  }
  if (e->half_open >= QE_MAX_HALF_OPEN ||
      half_open_from(e, remote) >= QE_MAX_HALF_OPEN_PER_ADDR) {
    e->g.half_open_dropped++;
    return QE_ERR_FULL;
  }
  c = e->up->alloc(e);
  if (c == NULL) {
    e->g.half_open_dropped++;
    return QE_ERR_FULL;
  }
  if (conn_common_init(c, remote, remotelen, 1, ts) != 0) {
    goto fail;
  }
  c->odcid = hd.dcid;
  make_cid(c, &scid);
  c->scids[c->nscids++] = scid;
  conn_settings(c, &settings, ts);
  conn_params(c, &params);
  params.original_dcid = hd.dcid;
  params.stateless_reset_token_present = 1;
  if (ngtcp2_crypto_generate_stateless_reset_token(
          params.stateless_reset_token, e->id.reset_secret,
          sizeof(e->id.reset_secret), &scid) != 0) {
    goto fail;
  }
  path = conn_path(c, (struct sockaddr *)&c->remote, c->remotelen);
  if (ngtcp2_conn_server_new(&c->conn, &hd.scid, &scid, &path, hd.version,
                             &conn_callbacks, &settings, &params, NULL,
                             c) != 0) {
    goto fail;
  }
  if (qe_tls_session_new(&c->tls, &e->id, 1, &c->ref) != 0) {
    goto fail;
  }
  ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
  ngtcp2_conn_set_keep_alive_timeout(c->conn, e->cfg.keepalive_ns);
  e->half_open++;
  c->half_open = 1;
  if (ngtcp2_conn_read_pkt(c->conn, &path, NULL, pkt, len, ts) != 0) {
    /* Not a real client: leave no trace beyond a counter. */
    e->g.garbage++;
    conn_close_ex(c, "handshake-failed", NULL, 1, ts);
    return QE_ERR_INVALID;
  }
  /* A genuine ClientHello always gets an answer; junk that decrypted as
   * nothing does not: drop that state at once. */
  before = e->tx.used;
  if (qe_conn_write(c, ts) != 0) {
    return QE_ERR_INVALID;
  }
  if (e->tx.used == before && e->tx.nmsgs == 0) {
    e->g.garbage++;
    conn_close_ex(c, "handshake-failed", NULL, 1, ts);
    return QE_ERR_INVALID;
  }
  return 0;
fail:
  e->g.handshake_failed++;
  e->up->release(c);
  return QE_ERR_QUIC;
}

/* ---- established ---- */

static void conn_established(qe_conn *c, qe_ts ts) {
  qe_engine *e = c->eng;
  ngtcp2_connection_close_error ccerr;
  if (!c->key_known || qe_tls_check_alpn(c->tls) != 0) {
    ngtcp2_connection_close_error_set_transport_error(
        &ccerr, NGTCP2_PROTOCOL_VIOLATION, NULL, 0);
    conn_close_ex(c, "handshake-failed", &ccerr, 0, ts);
    return;
  }
  if (!e->up->allowed(e, c->peer_key)) {
    c->refused = 1;
    qe_conn_close(c, "refused", QE_APP_NOT_ALLOWED, ts);
    return;
  }
  if (c->is_path && c->server && !e->accept_bonded) {
    /* The dialler falls back to one plain connection (qe_bond_refused). */
    e->g.bond_refused++;
    qe_conn_close(c, "bonding-refused", QE_APP_NO_BOND, ts);
    return;
  }
  if (c->half_open) {
    e->half_open--;
    c->half_open = 0;
  }
  c->state = QE_CONN_UP;
  conn_sizes(c, ngtcp2_conn_get_dcid(c->conn)->datalen);
  if (c->is_path) {
    c->max_dgram -= QE_BOND_HDR;
  }
  if (qe_txq_init(&c->txq, c->is_path ? QE_TXQ_PATH_SLOTS : QE_TXQ_SLOTS,
                  c->max_dgram + (c->is_path ? QE_BOND_HDR : 0)) != 0 ||
      qe_ctl_init(c) != 0 ||
      (c->is_path && c->path.mode != QE_MODE_REDUNDANT &&
       qe_path_init(&c->path, c->txq.slotsize) != 0)) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return;
  }
  e->up->established(c, ts);
}

/* ---- I/O ---- */

/*
 * The server decides what a new connection is (a plain one, or a path of a
 * bonded peer) from the first control bytes, so it waits for them.
 */
static int server_hello_ready(qe_conn *c) {
  const uint8_t *h = c->ctl_rbuf;
  if (c->ctl_rlen < 4) {
    return 0;
  }
  if (memcmp(h, QE_RELAY_MAGIC, 4) == 0) {
    c->relayed = 1;
    return 1;
  }
  if (memcmp(h, QE_PATH_MAGIC, 4) != 0) {
    return 1;
  }
  if (c->ctl_rlen < QE_HELLO_LEN) {
    return 0;
  }
  if (!c->is_path) {
    c->is_path = 1;
    c->path.session = 0;
    for (int i = 0; i < 8; i++) {
      c->path.session = (c->path.session << 8) | h[4 + i];
    }
    c->path.index = h[12];
    c->path.mode = h[13] < QE_MODE_COUNT ? h[13] : QE_MODE_AGGREGATE;
    c->path.role = h[14] ? 1 : 0;
    c->path.cost = h[15];
    c->path.weight = (uint16_t)((h[16] << 8) | h[17]);
    c->path.priority = (uint16_t)((h[18] << 8) | h[19]);
    if (c->path.weight == 0) {
      c->path.weight = 1;
    }
    qe_conn_path_keepalive(c);
  }
  return 1;
}

void qe_conn_read(qe_conn *c, const struct sockaddr *remote,
                  socklen_t remotelen, const uint8_t *pkt, size_t len,
                  qe_ts ts) {
  ngtcp2_path path = conn_path(c, remote, remotelen);
  int rv;
  if (c->is_path && c->state == QE_CONN_UP && !c->path.dead &&
      ts > c->last_rx_ts + QE_GAP_MIN_NS) {
    /* A silence while it had datagrams out (qe_gap_heard). */
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(c->conn, &cs);
    if (qe_path_loaded(c, &cs)) {
      qe_gap_heard(&c->path.gap, ts - c->last_rx_ts,
                   qe_sched_dead_after(cs.smoothed_rtt, 1), ts);
    }
  }
  rv = ngtcp2_conn_read_pkt(c->conn, &path, NULL, pkt, len, ts);
  if (rv != 0) {
    qe_conn_fail(c, rv, ts);
    return;
  }
  c->last_rx_ts = ts;
  c->dirty = 1;
  if (c->ctl_broken) {
    qe_conn_close(c, "error", QE_APP_PROTOCOL, ts);
    return;
  }
  if (c->hs_done && c->state == QE_CONN_HANDSHAKE &&
      (!c->server || server_hello_ready(c))) {
    conn_established(c, ts);
  }
}

int qe_conn_write(qe_conn *c, qe_ts ts) {
  qe_engine *e = c->eng;
  for (int guard = 0; guard < 256; guard++) {
    ngtcp2_path_storage ps;
    ngtcp2_ssize nwrite, ndatalen = -1;
    uint8_t *buf = qe_conn_tx_reserve(c, c->max_udp);
    qe_chunk *ch = c->ctl_cur;
    ngtcp2_path_storage_zero(&ps);
    if (ch != NULL && c->ctl_stream >= 0) {
      ngtcp2_vec v = {.base = ch->data + ch->sent, .len = ch->len - ch->sent};
      if (ch->stamped && ch->sent == 0) {
        /* A stamp says when it left, not when it was queued: a NOP that
         * waited behind a full window read as that much forward queue at
         * the peer (94 ms echoed against 11 ms in the link's queue, in a
         * startup). Its bytes are read again only for a re-send. */
        qe_stamp_set_ts(ch->data + QE_CTL_HDR, qe_now());
      }
      nwrite = ngtcp2_conn_writev_stream(
          c->conn, &ps.path, NULL, buf, c->max_udp, &ndatalen,
          NGTCP2_WRITE_STREAM_FLAG_NONE, c->ctl_stream, &v, 1, ts);
      if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
          nwrite == NGTCP2_ERR_STREAM_SHUT_WR ||
          nwrite == NGTCP2_ERR_STREAM_NOT_FOUND) {
        nwrite = ngtcp2_conn_write_pkt(c->conn, &ps.path, NULL, buf,
                                       c->max_udp, ts);
        ndatalen = -1;
      }
      if (ndatalen > 0) {
        ch->sent += (size_t)ndatalen;
        if (ch->sent == ch->len) {
          c->ctl_cur = ch->next;
        }
      }
    } else {
      nwrite =
          ngtcp2_conn_write_pkt(c->conn, &ps.path, NULL, buf, c->max_udp, ts);
    }
    if (nwrite < 0) {
      qe_conn_fail(c, (int)nwrite, ts);
      return -1;
    }
    if (nwrite == 0) {
      break;
    }
    qe_udp_tx_commit(c->tx, c->udp, (struct sockaddr *)ps.path.remote.addr,
                     ps.path.remote.addrlen, (size_t)nwrite);
    e->g.udp_tx++;
  }
  c->dirty = 0;
  return 0;
}

/* The keep-alive interval of this connection; 0: none. */
static qe_ts keepalive_of(const qe_conn *c) {
  return c->is_path ? QE_PATH_KEEPALIVE_NS : c->eng->cfg.keepalive_ns;
}

/*
 * When the peer has been silent for two keep-alive intervals, a NOP goes on
 * the control stream every interval. New stream data is sent as soon as the
 * window allows, unlike QUIC's probes, whose timeout doubles each time: after
 * an outage of a few seconds the next probe could come later than our idle
 * timeout, and a link that is back would be declared dead. The NOP is
 * ack-eliciting, so the peer's ACK shows it alive within one round trip.
 */
static qe_ts probe_deadline(const qe_conn *c) {
  qe_ts k = keepalive_of(c), a, b;
  if (c->state != QE_CONN_UP || k == 0 || c->ctl_stream < 0) {
    return UINT64_MAX;
  }
  a = c->last_rx_ts + 2 * k;
  b = c->probe_ts + k;
  return a > b ? a : b;
}

qe_ts qe_conn_expiry(const qe_conn *c) {
  qe_ts x = ngtcp2_conn_get_expiry(c->conn), p = probe_deadline(c);
  if (c->state == QE_CONN_UP && c->eng->cfg.idle_timeout_ns) {
    qe_ts idle = c->last_rx_ts + c->eng->cfg.idle_timeout_ns;
    if (idle < x) {
      x = idle;
    }
  }
  return p < x ? p : x;
}

int qe_conn_handle_expiry(qe_conn *c, qe_ts ts) {
  int rv;
  if (c->state == QE_CONN_UP && c->eng->cfg.idle_timeout_ns &&
      ts >= c->last_rx_ts + c->eng->cfg.idle_timeout_ns) {
    qe_conn_close(c, "idle-timeout", QE_APP_NO_ERROR, ts);
    return -1;
  }
  if (probe_deadline(c) <= ts) {
    c->probe_ts = ts;
    c->dgram_since_nop = 1;
    qe_conn_nop_after_datagrams(c);
  }
  rv = ngtcp2_conn_handle_expiry(c->conn, ts);
  if (rv != 0) {
    qe_conn_fail(c, rv, ts);
    return -1;
  }
  c->dirty = 1;
  return 0;
}

/* ---- closing ---- */

static const char *draining_reason(qe_conn *c) {
  ngtcp2_connection_close_error ccerr;
  ngtcp2_conn_get_connection_close_error(c->conn, &ccerr);
  if (ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
    if (ccerr.error_code == QE_APP_DUPLICATE) {
      return "replaced";
    }
    if (ccerr.error_code == QE_APP_NOT_ALLOWED) {
      return "refused-by-peer";
    }
    if (ccerr.error_code == QE_APP_NO_BOND) {
      return "bonding-refused";
    }
  }
  if (c->state != QE_CONN_UP) {
    return "handshake-failed";
  }
  return "closed-by-peer";
}

void qe_conn_fail(qe_conn *c, int liberr, qe_ts ts) {
  ngtcp2_connection_close_error ccerr;
  const char *reason = c->state == QE_CONN_UP ? "error" : "handshake-failed";
  switch (liberr) {
  case NGTCP2_ERR_DRAINING:
    reason = draining_reason(c);
    if (c->is_path && !c->server && strcmp(reason, "bonding-refused") == 0) {
      c->eng->up->bond_refused(c);
    }
    /* A crossed dial that lost on the other side says nothing here. */
    conn_close_ex(c, reason, NULL,
                  !c->announced && strcmp(reason, "replaced") == 0, ts);
    return;
  case NGTCP2_ERR_IDLE_CLOSE:
    conn_close_ex(c, "idle-timeout", NULL, 0, ts);
    return;
  case NGTCP2_ERR_DROP_CONN:
  case NGTCP2_ERR_RETRY:
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    conn_close_ex(c, c->refused ? "refused" : reason, NULL, 0, ts);
    return;
  case NGTCP2_ERR_CRYPTO: {
    uint8_t alert = ngtcp2_conn_get_tls_alert(c->conn);
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &ccerr, alert ? alert : 42 /* bad_certificate */, NULL, 0);
    break;
  }
  default:
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr,
                                                             NULL, 0);
    break;
  }
  conn_close_ex(c, c->refused ? "refused" : reason, &ccerr, 0, ts);
}

void qe_conn_close_quiet(qe_conn *c, const char *reason, int64_t app_code,
                         qe_ts ts) {
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_set_application_error(
      &ccerr, (uint64_t)app_code, NULL, 0);
  conn_close_ex(c, reason, &ccerr, 1, ts);
}

void qe_conn_close(qe_conn *c, const char *reason, int64_t app_code,
                   qe_ts ts) {
  ngtcp2_connection_close_error ccerr;
  if (app_code < 0) {
    conn_close_ex(c, reason, NULL, 0, ts);
    return;
  }
  ngtcp2_connection_close_error_set_application_error(
      &ccerr, (uint64_t)app_code, NULL, 0);
  conn_close_ex(c, reason, &ccerr, 0, ts);
}

static void conn_close_ex(qe_conn *c, const char *reason,
                          const ngtcp2_connection_close_error *ccerr,
                          int silent, qe_ts ts) {
  qe_engine *e = c->eng;
  if (ccerr != NULL && c->conn != NULL &&
      !ngtcp2_conn_is_in_closing_period(c->conn) &&
      !ngtcp2_conn_is_in_draining_period(c->conn)) {
    ngtcp2_path_storage ps;
    uint8_t *buf = qe_conn_tx_reserve(c, c->max_udp);
    ngtcp2_ssize n;
    ngtcp2_path_storage_zero(&ps);
    n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, NULL, buf,
                                           c->max_udp, ccerr, ts);
    if (n > 0) {
      qe_udp_tx_commit(c->tx, c->udp,
                       (struct sockaddr *)ps.path.remote.addr,
                       ps.path.remote.addrlen, (size_t)n);
      e->g.udp_tx++;
    }
  }
  e->up->closed(c, reason, silent, ts);
}

void qe_conn_fill_stats(qe_conn *c, qe_peer_stats *ps) {
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(c->conn, &cs);
  ps->up = 1;
  ps->server = c->server;
  ps->relayed = c->relayed;
  ps->rtt_smoothed_ns = cs.smoothed_rtt;
  ps->rtt_min_ns = cs.min_rtt;
  ps->rtt_var_ns = cs.rttvar;
  ps->rtt_latest_ns = cs.latest_rtt;
  ps->cwnd = cs.cwnd;
  ps->bytes_in_flight = cs.bytes_in_flight;
  ps->delivery_rate = cs.delivery_rate_sec;
  ps->max_datagram = c->max_dgram;
}

/* Frees everything a connection holds; the slot becomes free. */
void qe_conn_free_state(qe_conn *c) {
  qe_txq_free(&c->txq);
  qe_path_free(&c->path);
  qe_ctl_free(c);
  if (c->conn) {
    ngtcp2_conn_del(c->conn);
  }
  if (c->tls) {
    gnutls_deinit(c->tls);
  }
}
