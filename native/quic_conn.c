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

#define QE_CTL_WINDOW (2 * 1024 * 1024 + 64)

static void conn_close_ex(qe_conn *c, const char *reason,
                          const ngtcp2_connection_close_error *ccerr,
                          int silent, qe_ts ts);
static void conn_fail(qe_conn *c, int liberr, qe_ts ts);
static void ctl_parse(qe_conn *c);
static int txq_init(qe_txq *q, size_t slots, size_t slotsize);
static int nop_pool_init(qe_conn *c);

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

static int cb_extend_bidi(ngtcp2_conn *conn, uint64_t max_streams,
                          void *user_data) {
  qe_conn *c = user_data;
  (void)max_streams;
  if (!c->server && c->ctl_stream < 0) {
    int64_t sid;
    if (ngtcp2_conn_open_bidi_stream(conn, &sid, NULL) == 0) {
      c->ctl_stream = sid;
    }
  }
  return 0;
}

static int adopt_stream(qe_conn *c, int64_t stream_id) {
  if (c->ctl_stream < 0 && c->server && (stream_id & 0x3) == 0) {
    c->ctl_stream = stream_id;
  }
  return stream_id == c->ctl_stream;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t stream_id,
                          void *user_data) {
  (void)conn;
  adopt_stream(user_data, stream_id);
  return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  qe_conn *c = user_data;
  (void)conn, (void)flags, (void)offset, (void)stream_user_data;
  if (!adopt_stream(c, stream_id) || datalen == 0) {
    return 0;
  }
  if (c->ctl_rlen + datalen > c->ctl_rcap) {
    size_t need = c->ctl_rlen + datalen, cap = c->ctl_rcap ? c->ctl_rcap : 4096;
    uint8_t *p;
    while (cap < need) {
      cap *= 2;
    }
    if (cap > QE_CTL_WINDOW) {
      cap = QE_CTL_WINDOW;
    }
    if (need > cap) {
      return NGTCP2_ERR_CALLBACK_FAILURE; /* flow control was ignored */
    }
    p = realloc(c->ctl_rbuf, cap);
    if (p == NULL) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    c->ctl_rbuf = p;
    c->ctl_rcap = cap;
  }
  memcpy(c->ctl_rbuf + c->ctl_rlen, data, datalen);
  c->ctl_rlen += datalen;
  if (c->announced) {
    ctl_parse(c);
    if (c->ctl_rlen == SIZE_MAX) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  }
  return 0;
}

static int cb_acked_stream(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t offset, uint64_t datalen, void *user_data,
                           void *stream_user_data) {
  qe_conn *c = user_data;
  uint64_t end = offset + datalen;
  (void)conn, (void)stream_id, (void)stream_user_data;
  while (c->ctl_head && c->ctl_head->offset + c->ctl_head->len <= end &&
         c->ctl_head != c->ctl_cur) {
    qe_chunk *ch = c->ctl_head;
    c->ctl_head = ch->next;
    if (c->ctl_tail == ch) {
      c->ctl_tail = NULL;
    }
    if (ch->pooled) {
      c->nop_free[c->nop_nfree++] = ch;
    } else {
      free(ch);
    }
  }
  return 0;
}

/* The control stream is the connection's lifeline: if the peer resets it
 * or stops reading it, the connection is closed (after read_pkt returns). */
static int cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  qe_conn *c = user_data;
  (void)conn, (void)final_size, (void)app_error_code, (void)stream_user_data;
  if (stream_id == c->ctl_stream) {
    c->ctl_broken = 1;
  }
  return 0;
}

static int cb_stream_stop_sending(ngtcp2_conn *conn, int64_t stream_id,
                                  uint64_t app_error_code, void *user_data,
                                  void *stream_user_data) {
  return cb_stream_reset(conn, stream_id, 0, app_error_code, user_data,
                         stream_user_data);
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags,
                            const uint8_t *data, size_t datalen,
                            void *user_data) {
  qe_conn *c = user_data;
  (void)conn, (void)flags;
  if (c->announced && c->is_path) {
    qe_bond_recv(c, data, datalen);
    return 0;
  }
  if (!c->announced) {
    if (c->peer) {
      c->peer->drop_not_up++;
    } else {
      c->eng->g.no_peer++;
    }
    return 0;
  }
  qe_forward_to_tun(c, data, datalen);
  return 0;
}

static void sent_forget(qe_conn *c, uint64_t dgram_id) {
  if (c->sent_id != NULL) {
    size_t slot = dgram_id % QE_SENT_SLOTS;
    if (c->sent_id[slot] == dgram_id + 1) {
      c->sent_id[slot] = 0;
    }
  }
}

#define QE_CAP_MIN_PKTS 16

uint64_t qe_path_cap(const qe_conn *c, const ngtcp2_conn_stat *cs) {
  if (!c->is_path) {
    return 0;
  }
  return qe_rate_cap(&c->rate, cs->min_rtt,
                     QE_CAP_MIN_PKTS * (uint64_t)c->max_udp);
}

int qe_path_loaded(const qe_conn *c, const ngtcp2_conn_stat *cs) {
  return cs->bytes_in_flight >= 4 * (uint64_t)c->max_udp;
}

/* Adds acknowledged bytes to the path's rate (qe_rate_acked). */
static void rate_sample(qe_conn *c, uint64_t bytes, qe_ts ts) {
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(c->conn, &cs);
  qe_rate_acked(&c->rate, bytes, ts, cs.min_rtt, cs.latest_rtt);
}

static int cb_ack_datagram(ngtcp2_conn *conn, uint64_t dgram_id,
                           void *user_data) {
  qe_conn *c = user_data;
  (void)conn;
  if (c->sent_id != NULL &&
      c->sent_id[dgram_id % QE_SENT_SLOTS] == dgram_id + 1) {
    rate_sample(c, c->sent_len[dgram_id % QE_SENT_SLOTS], c->eng->now);
  }
  sent_forget(c, dgram_id);
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
  size_t slot = dgram_id % QE_SENT_SLOTS;
  int kept = c->sent_id != NULL && c->sent_id[slot] == dgram_id + 1;
  (void)conn;
  if (kept) {
    qe_rate_lost(&c->rate, c->sent_len[slot]);
  }
  if (kept && c->lost != NULL && c->nlost < QE_SENT_SLOTS) {
    c->lost[c->nlost++] = (uint16_t)slot;
    c->eng->lost_pending = 1;
  } else {
    sent_forget(c, dgram_id);
  }
  c->p_lost++;
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
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked_stream,
    .stream_open = cb_stream_open,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .extend_max_local_streams_bidi = cb_extend_bidi,
    .stream_reset = cb_stream_reset,
    .stream_stop_sending = cb_stream_stop_sending,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_cid,
    .remove_connection_id = cb_remove_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .recv_datagram = cb_recv_datagram,
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
      !qe_engine_key_allowed(c->eng, key)) {
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

static void ctl_link(qe_conn *c, qe_chunk *ch);

static int ctl_enqueue(qe_conn *c, const uint8_t *hdr, size_t hdrlen,
                       const uint8_t *data, size_t len) {
  qe_chunk *ch = malloc(sizeof(*ch) + hdrlen + len);
  if (ch == NULL) {
    return QE_ERR_NOMEM;
  }
  ch->pooled = 0;
  ch->len = hdrlen + len;
  memcpy(ch->data, hdr, hdrlen);
  if (len) {
    memcpy(ch->data + hdrlen, data, len);
  }
  ctl_link(c, ch);
  return 0;
}

void qe_conn_nop_after_datagrams(qe_conn *c) {
  qe_chunk *ch;
  if (!c->dgram_since_nop || c->ctl_stream < 0 || c->nop_nfree == 0) {
    return; /* with every NOP in flight, the timer is armed already */
  }
  ch = c->nop_free[--c->nop_nfree];
  ch->len = 4;
  ch->data[0] = 0x80; /* length with the top bit set: padding, 0 bytes */
  ch->data[1] = ch->data[2] = ch->data[3] = 0;
  ctl_link(c, ch);
  c->dgram_since_nop = 0;
}

static void ctl_link(qe_conn *c, qe_chunk *ch) {
  ch->next = NULL;
  ch->offset = c->ctl_next_off;
  ch->sent = 0;
  c->ctl_next_off += ch->len;
  if (c->ctl_tail) {
    c->ctl_tail->next = ch;
  } else {
    c->ctl_head = ch;
  }
  c->ctl_tail = ch;
  if (c->ctl_cur == NULL) {
    c->ctl_cur = ch;
  }
  c->dirty = 1;
}

int qe_conn_queue_control(qe_conn *c, const uint8_t *data, size_t len) {
  uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                    (uint8_t)(len >> 8), (uint8_t)len};
  if (len > QE_CTL_MAX_MSG) {
    return QE_ERR_INVALID;
  }
  return ctl_enqueue(c, hdr, 4, data, len);
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
      h[4 + i] = (uint8_t)(c->session >> (56 - 8 * i));
    }
    h[12] = c->path_index;
    h[13] = c->mode;
    h[14] = c->role;
    h[15] = 0;
    h[16] = (uint8_t)(c->weight >> 8);
    h[17] = (uint8_t)c->weight;
    h[18] = (uint8_t)(c->priority >> 8);
    h[19] = (uint8_t)c->priority;
    return ctl_enqueue(c, h, QE_HELLO_LEN, NULL, 0);
  }
  return ctl_enqueue(c, (const uint8_t *)QE_CTL_MAGIC, 4, NULL, 0);
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
                       socklen_t remotelen, qe_ts ts) {
  return qe_conn_client_new_on(e, remote, remotelen, -1, 0, ts);
}

void qe_conn_path_keepalive(qe_conn *c) {
  ngtcp2_conn_set_keep_alive_timeout(c->conn, QE_PATH_KEEPALIVE_NS);
}

int qe_conn_client_new_on(qe_engine *e, const struct sockaddr *remote,
                          socklen_t remotelen, int uplink, uint8_t mode,
                          qe_ts ts) {
  qe_conn *c = qe_engine_conn_alloc(e);
  ngtcp2_cid dcid, scid;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  uint8_t d[16];
  int rv = QE_ERR_NOMEM;
  if (c == NULL) {
    return QE_ERR_FULL;
  }
  if (uplink >= 0) {
    qe_uplink *u = &e->uplinks[uplink];
    c->udp = &u->udp;
    c->tx = &u->tx;
    c->uplink = uplink;
    c->is_path = 1;
    c->session = e->session;
    c->path_index = (uint8_t)uplink;
    c->mode = mode;
    c->role = u->role;
    c->weight = u->weight;
    c->priority = u->priority;
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
  qe_engine_conn_release(e, c);
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
  c = qe_engine_conn_alloc(e);
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
  qe_engine_conn_release(e, c);
  return QE_ERR_QUIC;
}

/* ---- established ---- */

static const uint8_t *client_key(const qe_conn *c) {
  return c->server ? c->peer_key : c->eng->id.pubkey;
}

/*
 * Two connections to one peer: which stays. Dials that crossed (created
 * within a few seconds of each other) keep the one whose client has the
 * lower key, the same answer on both sides; otherwise the newer one wins,
 * because the peer must have restarted and forgotten the old one.
 */
static int conn_wins(const qe_conn *nc, const qe_conn *old) {
  qe_ts d = nc->created_ts > old->created_ts ? nc->created_ts - old->created_ts
                                              : old->created_ts - nc->created_ts;
  if (d < QE_SIMULTANEOUS_NS) {
    int cmp = memcmp(client_key(nc), client_key(old), QE_KEYLEN);
    if (cmp != 0) {
      return cmp < 0;
    }
  }
  return nc->created_ts >= old->created_ts;
}

static void conn_established(qe_conn *c, qe_ts ts) {
  qe_engine *e = c->eng;
  qe_peer *p;
  ngtcp2_connection_close_error ccerr;
  if (!c->key_known || qe_tls_check_alpn(c->tls) != 0) {
    ngtcp2_connection_close_error_set_transport_error(
        &ccerr, NGTCP2_PROTOCOL_VIOLATION, NULL, 0);
    conn_close_ex(c, "handshake-failed", &ccerr, 0, ts);
    return;
  }
  if (!qe_engine_key_allowed(e, c->peer_key)) {
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
  p = qe_engine_peer_get(e, c->peer_key, 1);
  if (p == NULL) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return;
  }
  c->peer = p;
  if (txq_init(&c->txq, c->is_path ? QE_TXQ_PATH_SLOTS : QE_TXQ_SLOTS,
               c->max_dgram + (c->is_path ? QE_BOND_HDR : 0)) !=
          0 ||
      nop_pool_init(c) != 0) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return;
  }
  if (c->is_path) {
    if (c->mode != QE_MODE_REDUNDANT) {
      c->sent_buf = malloc(QE_SENT_SLOTS * c->txq.slotsize);
      c->sent_id = calloc(QE_SENT_SLOTS, sizeof(uint64_t));
      c->sent_len = calloc(QE_SENT_SLOTS, sizeof(uint32_t));
      c->sent_ts = calloc(QE_SENT_SLOTS, sizeof(qe_ts));
      c->lost = calloc(QE_SENT_SLOTS, sizeof(uint16_t));
      if (!c->sent_buf || !c->sent_id || !c->sent_len || !c->sent_ts ||
          !c->lost) {
        qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
        return;
      }
    }
    qe_bond_path_up(e, p, c, ts);
    return;
  }
  if (p->bonded) {
    /* A plain connection from a bonded peer: it restarted unbonded. */
    e->g.duplicates++;
    while (p->npaths) {
      qe_conn_close(p->paths[p->npaths - 1], "replaced", QE_APP_DUPLICATE,
                    ts);
    }
  }
  if (p->conn != NULL && p->conn != c) {
    e->g.duplicates++;
    if (!conn_wins(c, p->conn)) {
      ngtcp2_connection_close_error_set_application_error(
          &ccerr, QE_APP_DUPLICATE, NULL, 0);
      conn_close_ex(c, "replaced", &ccerr, 1, ts);
      return;
    }
    qe_conn_close(p->conn, "replaced", QE_APP_DUPLICATE, ts);
  }
  p->conn = c;
  c->announced = 1;
  qe_engine_emit(e, QE_EV_PEER_UP, c, NULL, NULL, 0);
  ctl_parse(c);
  if (c->ctl_rlen == SIZE_MAX) {
    qe_conn_close(c, "error", QE_APP_PROTOCOL, ts);
  }
}

void qe_conn_ctl_resume(qe_conn *c, qe_ts ts) {
  ctl_parse(c);
  if (c->ctl_rlen == SIZE_MAX) {
    qe_conn_close(c, "error", QE_APP_PROTOCOL, ts);
  }
}

/*
 * Delivers whole control messages; on a framing error sets rlen = SIZE_MAX.
 * Stops while JS has too much undelivered: the bytes stay here, the stream
 * window is not extended, and the peer is held back by flow control.
 */
static void ctl_parse(qe_conn *c) {
  size_t pos = 0, consumed;
  if (!c->ctl_magic_rcvd) {
    if (c->ctl_rlen < 4) {
      return;
    }
    if (memcmp(c->ctl_rbuf, QE_CTL_MAGIC, 4) == 0) {
      pos = 4;
    } else if (memcmp(c->ctl_rbuf, QE_PATH_MAGIC, 4) == 0) {
      if (c->ctl_rlen < QE_HELLO_LEN) {
        return;
      }
      pos = QE_HELLO_LEN;
    } else {
      c->ctl_rlen = SIZE_MAX;
      return;
    }
    c->ctl_magic_rcvd = 1;
  }
  while (c->ctl_rlen - pos >= 4) {
    const uint8_t *h = c->ctl_rbuf + pos;
    size_t n = ((size_t)(h[0] & 0x7f) << 24) | ((size_t)h[1] << 16) |
               ((size_t)h[2] << 8) | h[3];
    uint8_t *msg;
    if (h[0] & 0x80) {
      /* Padding (the NOP after datagrams): skipped, never delivered. */
      if (n > QE_CTL_MAX_MSG) {
        c->ctl_rlen = SIZE_MAX;
        return;
      }
      if (c->ctl_rlen - pos - 4 < n) {
        break;
      }
      pos += 4 + n;
      continue;
    }
    if (n > QE_CTL_MAX_MSG) {
      c->ctl_rlen = SIZE_MAX;
      return;
    }
    if (c->ctl_rlen - pos - 4 < n ||
        atomic_load(&c->eng->ctl_backlog) > QE_CTL_BACKLOG_MAX) {
      break;
    }
    msg = malloc(n ? n : 1);
    if (msg != NULL) {
      memcpy(msg, h + 4, n);
      qe_engine_emit(c->eng, QE_EV_CONTROL, c, NULL, msg, n);
    }
    pos += 4 + n;
  }
  consumed = pos;
  if (consumed) {
    memmove(c->ctl_rbuf, c->ctl_rbuf + consumed, c->ctl_rlen - consumed);
    c->ctl_rlen -= consumed;
    ngtcp2_conn_extend_max_stream_offset(c->conn, c->ctl_stream, consumed);
    ngtcp2_conn_extend_max_offset(c->conn, consumed);
    c->dirty = 1;
  }
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
  if (memcmp(h, QE_PATH_MAGIC, 4) != 0) {
    return 1;
  }
  if (c->ctl_rlen < QE_HELLO_LEN) {
    return 0;
  }
  if (!c->is_path) {
    c->is_path = 1;
    c->session = 0;
    for (int i = 0; i < 8; i++) {
      c->session = (c->session << 8) | h[4 + i];
    }
    c->path_index = h[12];
    c->mode = h[13] < QE_MODE_COUNT ? h[13] : QE_MODE_AGGREGATE;
    c->role = h[14] ? 1 : 0;
    c->weight = (uint16_t)((h[16] << 8) | h[17]);
    c->priority = (uint16_t)((h[18] << 8) | h[19]);
    if (c->weight == 0) {
      c->weight = 1;
    }
    qe_conn_path_keepalive(c);
  }
  return 1;
}

void qe_conn_read(qe_conn *c, const struct sockaddr *remote,
                  socklen_t remotelen, const uint8_t *pkt, size_t len,
                  qe_ts ts) {
  ngtcp2_path path = conn_path(c, remote, remotelen);
  int rv = ngtcp2_conn_read_pkt(c->conn, &path, NULL, pkt, len, ts);
  if (rv != 0) {
    conn_fail(c, rv, ts);
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
      conn_fail(c, (int)nwrite, ts);
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

int qe_conn_send_datagram(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                          size_t total, qe_ts ts) {
  qe_engine *e = c->eng;
  qe_peer *p = c->peer;
  /* Keep room for the NOP that must follow (see QE_NOP_POOL). */
  if (ngtcp2_conn_get_cwnd_left(c->conn) < c->max_udp + 64) {
    c->rate.limited = 1;
    return QE_SEND_BLOCKED;
  }
  if (c->is_path) {
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(c->conn, &cs);
    if (!c->urgent && c->rate.bw &&
        cs.bytes_in_flight + c->max_udp > qe_path_cap(c, &cs)) {
      c->rate.limited = 1;
      return QE_SEND_BLOCKED;
    }
    if (!qe_path_loaded(c, &cs)) {
      c->busy_ts = ts;
    }
  }
  c->dgram_since_nop = 1;
  c->dirty = 1;
  for (int tries = 0; tries < 4; tries++) {
    ngtcp2_path_storage ps;
    int accepted = 0;
    uint8_t *buf = qe_conn_tx_reserve(c, c->max_udp);
    ngtcp2_ssize nwrite;
    ngtcp2_path_storage_zero(&ps);
    nwrite = ngtcp2_conn_writev_datagram(
        c->conn, &ps.path, NULL, buf, c->max_udp, &accepted,
        NGTCP2_WRITE_DATAGRAM_FLAG_NONE, c->dgram_id++, v, vcnt, ts);
    if (nwrite < 0) {
      if (nwrite == NGTCP2_ERR_INVALID_ARGUMENT ||
          nwrite == NGTCP2_ERR_INVALID_STATE) {
        p->drop_too_big++;
        return QE_SEND_DROPPED;
      }
      conn_fail(c, (int)nwrite, ts);
      return QE_SEND_CLOSED;
    }
    if (nwrite == 0) {
      return QE_SEND_BLOCKED;
    }
    qe_udp_tx_commit(c->tx, c->udp, (struct sockaddr *)ps.path.remote.addr,
                     ps.path.remote.addrlen, (size_t)nwrite);
    e->g.udp_tx++;
    if (accepted) {
      p->packets_out++;
      p->bytes_out += total;
      c->p_pkts_out++;
      c->p_bytes_out += total;
      if (c->sent_buf != NULL && total <= c->txq.slotsize) {
        uint64_t id = c->dgram_id - 1;
        size_t slot = id % QE_SENT_SLOTS, off = 0;
        uint8_t *dst = c->sent_buf + slot * c->txq.slotsize;
        for (size_t i = 0; i < vcnt; i++) {
          memcpy(dst + off, v[i].base, v[i].len);
          off += v[i].len;
        }
        c->sent_id[slot] = id + 1;
        c->sent_ts[slot] = ts;
        c->sent_len[slot] = (uint32_t)total;
      }
      return QE_SEND_OK;
    }
  }
  return QE_SEND_BLOCKED;
}

static int txq_init(qe_txq *q, size_t slots, size_t slotsize) {
  q->buf = malloc(slots * slotsize);
  q->lens = calloc(slots, sizeof(uint32_t));
  if (q->buf == NULL || q->lens == NULL) {
    free(q->buf);
    free(q->lens);
    *q = (qe_txq){0};
    return QE_ERR_NOMEM;
  }
  q->cap = slots;
  q->slotsize = slotsize;
  return 0;
}

static int nop_pool_init(qe_conn *c) {
  c->nop_block = malloc(QE_NOP_POOL * QE_NOP_SIZE);
  if (c->nop_block == NULL) {
    return QE_ERR_NOMEM;
  }
  for (size_t i = 0; i < QE_NOP_POOL; i++) {
    qe_chunk *ch = (qe_chunk *)(void *)(c->nop_block + i * QE_NOP_SIZE);
    ch->pooled = 1;
    c->nop_free[i] = ch;
  }
  c->nop_nfree = QE_NOP_POOL;
  return 0;
}

static void txq_free(qe_txq *q) {
  free(q->buf);
  free(q->lens);
  *q = (qe_txq){0};
}

/* Early drop on a bonded path's queue when the TUN is not paused (traffic
 * classes): qe_aqm_drop. */
static int aqm_drop(qe_conn *c, qe_ts ts) {
  if (!c->is_path || !c->eng->nclasses ||
      (c->peer && ts < c->peer->aqm_grace_ts)) {
    return 0;
  }
  return qe_aqm_drop(&c->aqm, (c->txq.count + 1) * (uint64_t)c->max_udp,
                     &c->rate, ts);
}

int qe_conn_admit(qe_conn *c, size_t total, qe_ts ts) {
  qe_txq *q = &c->txq;
  if (q->count == q->cap || total > q->slotsize || aqm_drop(c, ts)) {
    c->peer->drop_congestion++;
    c->p_dropped++;
    return 0;
  }
  return 1;
}

/* qe_conn_forward; `admitted`: qe_conn_admit said yes already. */
static int forward(qe_conn *c, const ngtcp2_vec *v, size_t vcnt, size_t total,
                   qe_ts ts, int admitted) {
  qe_txq *q = &c->txq;
  int rv;
  if (q->count == 0) {
    rv = qe_conn_send_datagram(c, v, vcnt, total, ts);
    if (rv != QE_SEND_BLOCKED) {
      return rv;
    }
  }
  if (!admitted && !qe_conn_admit(c, total, ts)) {
    return QE_SEND_DROPPED;
  }
  {
    size_t slot = (q->head + q->count) % q->cap, off = 0;
    uint8_t *dst = q->buf + slot * q->slotsize;
    for (size_t i = 0; i < vcnt; i++) {
      memcpy(dst + off, v[i].base, v[i].len);
      off += v[i].len;
    }
    q->lens[slot] = (uint32_t)total;
    q->count++;
  }
  return QE_SEND_BLOCKED;
}

int qe_conn_forward(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                    size_t total, qe_ts ts) {
  return forward(c, v, vcnt, total, ts, 0);
}

int qe_conn_forward_admitted(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                             size_t total, qe_ts ts) {
  return forward(c, v, vcnt, total, ts, 1);
}

/* Puts a packet at the head of c's queue; a full queue loses its newest
 * packet instead. */
static int push_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                      size_t total) {
  qe_txq *q = &c->txq;
  size_t off = 0;
  uint8_t *dst;
  if (total > q->slotsize) {
    c->peer->drop_congestion++;
    c->p_dropped++;
    return QE_SEND_DROPPED;
  }
  if (q->count == q->cap) {
    q->count--; /* the newest packet makes room */
    c->peer->drop_congestion++;
    c->p_dropped++;
  }
  q->head = (q->head + q->cap - 1) % q->cap;
  q->count++;
  dst = q->buf + q->head * q->slotsize;
  for (size_t i = 0; i < vcnt; i++) {
    memcpy(dst + off, v[i].base, v[i].len);
    off += v[i].len;
  }
  q->lens[q->head] = (uint32_t)total;
  return QE_SEND_BLOCKED;
}

/* Sends now if the window allows, else puts the packet at the head of
 * c's queue. `urgent` (a traffic class's): past the bulk cap, and ahead of
 * a queue that is not empty; else only into an empty queue's window. */
static int forward_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                         size_t total, qe_ts ts, int urgent) {
  if (urgent || c->txq.count == 0) {
    int rv;
    c->urgent = urgent; /* the congestion window still holds */
    rv = qe_conn_send_datagram(c, v, vcnt, total, ts);
    if (rv != QE_SEND_CLOSED) {
      c->urgent = 0;
    }
    if (rv != QE_SEND_BLOCKED) {
      return rv;
    }
  }
  return push_front(c, v, vcnt, total);
}

int qe_conn_forward_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                          size_t total, qe_ts ts) {
  return forward_front(c, v, vcnt, total, ts, 0);
}

int qe_conn_forward_urgent(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                           size_t total, qe_ts ts) {
  return forward_front(c, v, vcnt, total, ts, 1);
}

int qe_conn_flush_queue(qe_conn *c, qe_ts ts) {
  qe_txq *q = &c->txq;
  while (q->count) {
    ngtcp2_vec v = {.base = q->buf + q->head * q->slotsize,
                    .len = q->lens[q->head]};
    int rv = qe_conn_send_datagram(c, &v, 1, v.len, ts);
    if (rv == QE_SEND_CLOSED) {
      return -1;
    }
    if (rv == QE_SEND_BLOCKED) {
      break;
    }
    q->head = (q->head + 1) % q->cap;
    q->count--;
  }
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
    conn_fail(c, rv, ts);
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

static void conn_fail(qe_conn *c, int liberr, qe_ts ts) {
  ngtcp2_connection_close_error ccerr;
  const char *reason = c->state == QE_CONN_UP ? "error" : "handshake-failed";
  switch (liberr) {
  case NGTCP2_ERR_DRAINING:
    reason = draining_reason(c);
    if (c->is_path && !c->server && strcmp(reason, "bonding-refused") == 0) {
      qe_bond_refused(c->eng, c);
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
  if (c->refused) {
    qe_engine_note_refused(e, c, ts);
  } else if (!c->announced && !silent && c->state == QE_CONN_HANDSHAKE) {
    e->g.handshake_failed++;
  }
  if (c->peer && c->peer->conn == c) {
    c->peer->conn = NULL;
  }
  if (c->is_path && c->announced && c->peer &&
      qe_bond_path_gone(e, c, ts)) {
    /* Other paths carry the peer on: only path-down (emitted there). */
  } else if (!silent && c->announced) {
    qe_engine_emit(e, QE_EV_PEER_DOWN, c, reason, NULL, 0);
  } else if (!silent && !c->server && !c->is_path) {
    qe_engine_emit(e, QE_EV_DIAL_FAILED, c, reason, NULL, 0);
  }
  qe_engine_conn_release(e, c);
}

void qe_conn_fill_stats(qe_conn *c, qe_peer_stats *ps) {
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(c->conn, &cs);
  ps->up = 1;
  ps->server = c->server;
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
  txq_free(&c->txq);
  free(c->sent_buf);
  free(c->sent_id);
  free(c->sent_len);
  free(c->sent_ts);
  free(c->lost);
  c->lost = NULL;
  c->nlost = 0;
  while (c->ctl_head) {
    qe_chunk *ch = c->ctl_head;
    c->ctl_head = ch->next;
    if (!ch->pooled) {
      free(ch);
    }
  }
  free(c->nop_block);
  free(c->ctl_rbuf);
  if (c->conn) {
    ngtcp2_conn_del(c->conn);
  }
  if (c->tls) {
    gnutls_deinit(c->tls);
  }
}
