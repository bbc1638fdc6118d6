/*
 * Engine lifecycle, the worker's epoll loop, connection slots and
 * demultiplexing, peers, events and stats. Commands from the control thread
 * are in engine_cmd.c, uplinks in uplink.c.
 */
#include "engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <net/if.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>


const char *qe_strerror(int rv) {
  switch (rv) {
  case 0:
    return "ok";
  case QE_ERR_NOMEM:
    return "out of memory";
  case QE_ERR_INVALID:
    return "invalid argument";
  case QE_ERR_SYS:
    return "system call failed";
  case QE_ERR_TLS:
    return "TLS error";
  case QE_ERR_QUIC:
    return "QUIC error";
  case QE_ERR_FULL:
    return "table full";
  case QE_ERR_NOTFOUND:
    return "not found";
  case QE_ERR_STATE:
    return "not allowed in this state";
  default:
    return "unknown error";
  }
}

void qe_event_free(qe_event *ev) {
  if (ev) {
    free(ev->data);
    free(ev);
  }
}

void qe_engine_event_done(qe_engine *e, const qe_event *ev) {
  if (ev->type == QE_EV_CONTROL) {
    atomic_fetch_sub(&e->ctl_backlog, ev->datalen);
  }
}

void qe_stats_free(qe_stats *s) {
  free(s->peers);
  s->peers = NULL;
  s->npeers = 0;
  free(s->acl_hits);
  s->acl_hits = NULL;
  s->nacl_hits = 0;
}

/* ---- events ---- */

static void sockaddr_str(const struct sockaddr_storage *ss, char *out,
                         uint16_t *port) {
  out[0] = '\0';
  *port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const void *)ss;
    inet_ntop(AF_INET, &s4->sin_addr, out, INET6_ADDRSTRLEN);
    *port = ntohs(s4->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const void *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, INET6_ADDRSTRLEN);
    } else {
      inet_ntop(AF_INET6, &s6->sin6_addr, out, INET6_ADDRSTRLEN);
    }
    *port = ntohs(s6->sin6_port);
  }
}

void qe_engine_emit(qe_engine *e, qe_event_type type, const qe_conn *c,
                    const char *reason, uint8_t *data, size_t datalen) {
  qe_event *ev = calloc(1, sizeof(*ev));
  if (ev == NULL) {
    free(data);
    return;
  }
  if (type == QE_EV_CONTROL) {
    atomic_fetch_add(&e->ctl_backlog, datalen);
  }
  ev->type = type;
  ev->reason = reason;
  ev->data = data;
  ev->datalen = datalen;
  if (c != NULL) {
    ev->has_key = c->key_known;
    memcpy(ev->key, c->peer_key, QE_KEYLEN);
    sockaddr_str(&c->remote, ev->addr, &ev->port);
    ev->server = c->server;
    ev->path_index = c->path.index;
    if (c->uplink >= 0) {
      memcpy(ev->uplink, e->uplinks[c->uplink].name, 16);
    }
  }
  e->event_fn(e->event_ud, ev);
}

/* ---- connection slots ---- */

qe_conn *qe_engine_conn_alloc(qe_engine *e) {
  for (size_t n = 0; n < QE_MAX_CONNS; n++) {
    size_t slot = (e->next_slot + n) % QE_MAX_CONNS;
    qe_conn *c = &e->conns[slot];
    if (c->state == QE_CONN_FREE) {
      uint16_t gen = (uint16_t)(c->gen + 1);
      *c = (qe_conn){.eng = e,
                     .state = QE_CONN_HANDSHAKE,
                     .slot = (uint16_t)slot,
                     .gen = gen,
                     .ctl_stream = -1,
                     .udp = &e->udp,
                     .tx = &e->tx,
                     .uplink = -1};
      e->active[e->nactive++] = (uint16_t)slot;
      e->next_slot = slot + 1;
      return c;
    }
  }
  return NULL;
}

/* Was this client DCID used by a connection we already let go? */
static int odcid_seen(qe_engine *e, const uint8_t *dcid, size_t len,
                      qe_ts ts) {
  for (size_t i = 0; i < QE_ODCID_RING; i++) {
    const ngtcp2_cid *c = &e->odcids[i].cid;
    if (c->datalen == len && e->odcids[i].ts + QE_ODCID_TTL_NS > ts &&
        memcmp(c->data, dcid, len) == 0) {
      return 1;
    }
  }
  return 0;
}

void qe_engine_conn_release(qe_engine *e, qe_conn *c) {
  uint16_t gen = c->gen;
  if (c->server && c->odcid.datalen) {
    size_t i = e->odcid_next++ % QE_ODCID_RING;
    e->odcids[i].cid = c->odcid;
    e->odcids[i].ts = c->last_rx_ts ? c->last_rx_ts : 1;
  }
  if (c->half_open) {
    e->half_open--;
  }
  qe_conn_free_state(c);
  for (size_t i = 0; i < e->nactive; i++) {
    if (e->active[i] == c->slot) {
      e->active[i] = e->active[--e->nactive];
      break;
    }
  }
  *c = (qe_conn){.state = QE_CONN_FREE, .gen = gen, .slot = c->slot};
}

uint8_t *qe_engine_tx_reserve(qe_engine *e, size_t len) {
  uint8_t *p = qe_udp_tx_reserve(&e->tx, len);
  if (p == NULL) {
    qe_udp_flush(&e->udp, &e->tx);
    p = qe_udp_tx_reserve(&e->tx, len);
  }
  return p;
}

static qe_conn *conn_find(qe_engine *e, const uint8_t *dcid, size_t dcidlen,
                          int long_header) {
  if (dcidlen == QE_CIDLEN) {
    size_t slot = ((size_t)dcid[0] << 8) | dcid[1];
    uint16_t gen = (uint16_t)((dcid[2] << 8) | dcid[3]);
    if (slot < QE_MAX_CONNS) {
      qe_conn *c = &e->conns[slot];
      if (c->state != QE_CONN_FREE && c->gen == gen &&
          qe_conn_has_cid(c, dcid, dcidlen)) {
        return c;
      }
    }
  }
  if (long_header) {
    for (size_t i = 0; i < e->nactive; i++) {
      qe_conn *c = &e->conns[e->active[i]];
      if (c->server && c->odcid.datalen == dcidlen &&
          memcmp(c->odcid.data, dcid, dcidlen) == 0) {
        return c;
      }
    }
  }
  return NULL;
}

qe_conn *qe_engine_conn_by_remote(qe_engine *e, const struct sockaddr *sa) {
  for (size_t i = 0; i < e->nactive; i++) {
    qe_conn *c = &e->conns[e->active[i]];
    if (qe_sockaddr_eq((const struct sockaddr *)&c->remote, sa)) {
      return c;
    }
  }
  return NULL;
}

static int bucket_take(double *tokens, qe_ts *last, qe_ts ts, double rate,
                       double burst) {
  *tokens += (double)(ts - *last) / 1e9 * rate;
  *last = ts;
  if (*tokens > burst) {
    *tokens = burst;
  }
  if (*tokens < 1) {
    return 0;
  }
  *tokens -= 1;
  return 1;
}

/*
 * A short-header packet for a connection we do not know: if it carries one
 * of our CIDs (we restarted), answer with a stateless reset so the peer
 * notices at once. Smaller than what it answers, and rate-limited.
 */
static void maybe_reset(qe_engine *e, const struct sockaddr *from,
                        socklen_t fromlen, const uint8_t *dcid, size_t dcidlen,
                        size_t len, qe_ts ts) {
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64];
  ngtcp2_cid cid;
  size_t total = len - 1 > 43 ? 43 : len - 1;
  uint8_t *buf;
  ngtcp2_ssize n;
  if (dcidlen != QE_CIDLEN || len < 1 + 1 + 5 + 16 + 1 ||
      !bucket_take(&e->reset_tokens, &e->reset_tokens_ts, ts, 100, 100)) {
    return;
  }
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  if (ngtcp2_crypto_generate_stateless_reset_token(
          token, e->id.reset_secret, sizeof(e->id.reset_secret), &cid) != 0) {
    return;
  }
  gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
  buf = qe_engine_tx_reserve(e, total);
  if (buf == NULL) {
    return;
  }
  n = ngtcp2_pkt_write_stateless_reset(buf, total, token, rnd, total - 17);
  if (n > 0) {
    qe_udp_tx_commit(&e->tx, &e->udp, from, fromlen, (size_t)n);
    e->g.resets_sent++;
  }
}

/*
 * A datagram of ours that is no QUIC (a punch, a relay's answer): to the
 * control plane, which checks it. At most 200/s (burst 100), so a flood
 * costs the worker a compare, not JS work.
 */
static void on_raw(qe_engine *e, const struct sockaddr *from,
                   socklen_t fromlen, const uint8_t *pkt, size_t len,
                   qe_ts ts) {
  qe_event *ev;
  struct sockaddr_storage ss;
  if (!bucket_take(&e->raw_tokens, &e->raw_tokens_ts, ts, 200, 100)) {
    e->g.raw_dropped++;
    return;
  }
  ev = calloc(1, sizeof(*ev));
  if (ev == NULL || (ev->data = malloc(len)) == NULL) {
    free(ev);
    return;
  }
  e->g.raw_rx++;
  memcpy(ev->data, pkt, len);
  ev->datalen = len;
  ev->type = QE_EV_RAW;
  memset(&ss, 0, sizeof(ss));
  memcpy(&ss, from, fromlen < sizeof(ss) ? fromlen : sizeof(ss));
  sockaddr_str(&ss, ev->addr, &ev->port);
  e->event_fn(e->event_ud, ev);
}

void qe_engine_send_raw_now(qe_engine *e, const struct sockaddr *to,
                            socklen_t tolen, const uint8_t *data, size_t len) {
  uint8_t *buf = qe_engine_tx_reserve(e, len);
  if (buf == NULL) {
    return;
  }
  memcpy(buf, data, len);
  qe_udp_tx_commit(&e->tx, &e->udp, to, tolen, len);
  e->g.raw_tx++;
}

static void on_packet(qe_engine *e, const qe_udp *u, const struct sockaddr *from,
                      socklen_t fromlen, uint8_t *pkt, size_t len, qe_ts ts) {
  ngtcp2_version_cid vc;
  qe_conn *c;
  int long_header;
  e->g.udp_rx++;
  if (u == &e->udp && len >= QE_RAW_MIN && memcmp(pkt, QE_RAW_MAGIC, 4) == 0) {
    if (len <= QE_RAW_MAX) {
      on_raw(e, from, fromlen, pkt, len, ts);
    } else {
      e->g.garbage++;
    }
    return;
  }
  if (len == 0 ||
      ngtcp2_pkt_decode_version_cid(&vc, pkt, len, QE_CIDLEN) != 0) {
    e->g.garbage++;
    return;
  }
  long_header = (pkt[0] & 0x80) != 0;
  c = conn_find(e, vc.dcid, vc.dcidlen, long_header);
  if (c != NULL) {
    if (c->udp == u) {
      qe_conn_read(c, from, fromlen, pkt, len, ts);
    } else {
      e->g.garbage++;
    }
    return;
  }
  if (u != &e->udp) {
    e->g.garbage++; /* uplink sockets only dial */
    return;
  }
  if (long_header) {
    if (vc.version == NGTCP2_PROTO_VER_V1 &&
        !odcid_seen(e, vc.dcid, vc.dcidlen, ts)) {
      qe_conn_server_new(e, from, fromlen, pkt, len, ts);
    } else {
      e->g.garbage++;
    }
    return;
  }
  /* Maybe a stateless reset from a peer that restarted: ngtcp2 checks. */
  c = qe_engine_conn_by_remote(e, from);
  if (c != NULL && len >= 21) {
    qe_conn_read(c, from, fromlen, pkt, len, ts);
    return;
  }
  e->g.garbage++;
  maybe_reset(e, from, fromlen, vc.dcid, vc.dcidlen, len, ts);
}

/* ---- the loop ---- */

static void ack_now(qe_engine *e, qe_ts ts) {
  if (e->tun.vnet_hdr) {
    qe_gro_flush(&e->gro, &e->tun);
  }
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c = &e->conns[e->active[i]];
    if (c->dirty) {
      qe_conn_write(c, ts);
    }
  }
  if (e->tx.nmsgs) {
    qe_udp_flush(&e->udp, &e->tx);
  }
  qe_bond_flush(e);
}

/* `*ts` advances as bursts are handled; the caller's clock moves with it:
 * ngtcp2 requires time never to go backwards between calls. */
static void on_udp(qe_engine *e, qe_udp *u, qe_ts *pts) {
  qe_ts ts = *pts;
  for (int round = 0; round < 8; round++) {
    int n = qe_udp_recv(u, &e->rx);
    if (n <= 0) {
      break;
    }
    for (int i = 0; i < n; i++) {
      uint8_t *buf = qe_udp_rx_buf(&e->rx, (size_t)i);
      size_t len = e->rx.lens[i], seg = e->rx.segsize[i];
      const struct sockaddr *from = (struct sockaddr *)&e->rx.addrs[i];
      socklen_t fromlen = e->rx.msgs[i].msg_hdr.msg_namelen;
      if (seg == 0 || seg > len) {
        seg = len;
      }
      for (size_t off = 0; off < len; off += seg) {
        size_t l = len - off < seg ? len - off : seg;
        e->now = ts;
        on_packet(e, u, from, fromlen, buf + off, l, ts);
      }
      /* ACK what arrived before handling more: the sender's RTT (and so
       * its congestion window) must not include our whole batch. */
      ack_now(e, ts);
      ts = qe_now();
    }
    if ((size_t)n < e->rx.n) {
      break;
    }
  }
  *pts = ts;
}

static int txq_quarters(const qe_engine *e) {
  size_t most = 0;
  for (size_t i = 0; i < e->nactive; i++) {
    const qe_txq *q = &e->conns[e->active[i]].txq;
    size_t quarters = q->cap ? q->count * 4 / q->cap : 0;
    if (quarters > most) {
      most = quarters;
    }
  }
  return (int)most;
}

static void on_tun(qe_engine *e, qe_ts ts) {
  /* Full-size buffers whatever the MTU: someone may raise it under us, and
   * a truncated read must never pass for a packet. */
  size_t bufsize = QE_TUN_BUFSIZE;
  uint64_t start = e->g.tun_rx;
  while (e->g.tun_rx - start < QE_TUN_PKT_BUDGET) {
    /* With offload one frame may be 45 packets: read few at a time. */
    size_t want = e->tun.vnet_hdr ? 8 : QE_TUN_BATCH;
    int n = qe_tun_read(&e->tun, e->tun_bufs, e->tun_sizes, want, bufsize);
    if (n < 0) {
      /* The device is gone or broken: stop watching it (no busy loop),
       * tell the control plane once. */
      e->tun_failed = 1;
      epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->tun.fd, NULL);
      qe_engine_emit(e, QE_EV_ERROR, NULL, "tun-failed", NULL, 0);
      break;
    }
    if (n == 0) {
      break;
    }
    for (int i = 0; i < n; i++) {
      qe_forward_from_tun(e, e->tun_bufs[i], e->tun_sizes[i], ts);
    }
    if ((size_t)n < want || (!e->nclasses && txq_quarters(e) >= 2)) {
      break;
    }
  }
}

/*
 * Backpressure: while a peer's send queue is nearly full, stop reading the
 * TUN so the kernel queues (and TCP inside slows down) instead of us
 * dropping. Bounded in time, so one stuck peer cannot starve the others.
 * Not with traffic classes: an interactive packet would wait in the kernel's
 * queue behind every bulk packet (megabytes with GSO), where no class can
 * reach it. Then bulk waits in our per-path queues, which interactive
 * packets jump, and a full queue drops at its tail as any router does.
 */
static void tun_backpressure(qe_engine *e, qe_ts ts) {
  int most = e->nclasses ? 0 : txq_quarters(e);
  struct epoll_event ev = {.data.u32 = TAG_TUN};
  if (e->tun_failed) {
    return;
  }
  if (!e->tun_paused && most >= 2) {
    e->tun_paused = 1;
    e->tun_paused_ts = ts;
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, e->tun.fd, &ev);
  } else if (e->tun_paused &&
             (most < 1 || ts - e->tun_paused_ts >= QE_TUN_PAUSE_MAX_NS)) {
    e->tun_paused = 0;
    ev.events = EPOLLIN;
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, e->tun.fd, &ev);
  }
}

static void on_timer(qe_engine *e, qe_ts ts) {
  uint64_t x;
  while (read(e->tfd, &x, sizeof(x)) > 0) {
  }
  e->timer_armed = UINT64_MAX;
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c = &e->conns[e->active[i]];
    if (qe_conn_expiry(c) <= ts) {
      qe_conn_handle_expiry(c, ts);
    }
  }
  e->now = ts;
  qe_bond_tick(e, ts);
}

static void rearm(qe_engine *e) {
  qe_ts next = UINT64_MAX;
  struct itimerspec its = {0};
  for (size_t i = 0; i < e->nactive; i++) {
    qe_ts x = qe_conn_expiry(&e->conns[e->active[i]]);
    if (x < next) {
      next = x;
    }
  }
  {
    qe_ts b = qe_bond_expiry(e);
    if (b < next) {
      next = b;
    }
  }
  if (e->tun_paused && e->tun_paused_ts + QE_TUN_PAUSE_MAX_NS < next) {
    next = e->tun_paused_ts + QE_TUN_PAUSE_MAX_NS;
  }
  if (next == e->timer_armed) {
    return;
  }
  e->timer_armed = next;
  if (next != UINT64_MAX) {
    next = next ? next : 1;
    its.it_value.tv_sec = (time_t)(next / 1000000000ULL);
    its.it_value.tv_nsec = (long)(next % 1000000000ULL);
  }
  timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void flush_all(qe_engine *e, qe_ts ts) {
  if (e->tun.vnet_hdr) {
    qe_gro_flush(&e->gro, &e->tun);
  }
  if (e->lost_pending) {
    qe_bond_resend_lost(e, ts);
  }
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c = &e->conns[e->active[i]];
    if (c->txq.count && qe_conn_flush_queue(c, ts) != 0) {
      continue;
    }
    if (c->announced && c->ctl_rlen >= 4) {
      qe_conn_ctl_resume(c, ts);
    }
    qe_conn_nop_after_datagrams(c);
    if (c->dirty) {
      qe_conn_write(c, ts);
    }
  }
  if (e->tx.nmsgs) {
    qe_udp_flush(&e->udp, &e->tx);
  }
  qe_bond_flush(e);
  tun_backpressure(e, ts);
  rearm(e);
}

void qe_engine_fill_stats(qe_engine *e, qe_stats *out) {
  out->g = e->g;
  out->g.udp_tx_dropped = e->tx.dropped;
  out->g.connections = e->nactive;
  out->g.tables_version = e->tables_version;
  out->nacl_hits = 0;
  out->acl_hits = NULL;
  if (e->ct) {
    qe_ct_stats cs;
    qe_ct_stats_get(e->ct, &cs);
    out->g.policy_passed = cs.passed;
    for (int r = 0; r < QE_CT_NREASONS && r < 8; r++) {
      out->g.policy_drops[r] = cs.drops[r];
    }
    out->g.policy_flows = cs.entries;
  }
  if (e->acl) {
    size_t n = qe_acl_size(e->acl);
    out->acl_hits = calloc(n + 1, sizeof(uint64_t));
    if (out->acl_hits) {
      for (size_t i = 0; i < n; i++) {
        out->acl_hits[i] = qe_acl_hits(e->acl, (uint32_t)i);
      }
      out->acl_hits[n] = qe_acl_hits(e->acl, QE_ACL_DEFAULT);
      out->nacl_hits = n + 1;
    }
  }
  out->npeers = 0;
  out->peers = calloc(e->npeers ? e->npeers : 1, sizeof(qe_peer_stats));
  if (out->peers == NULL) {
    return;
  }
  for (size_t i = 0; i < e->npeers; i++) {
    qe_peer *p = &e->peers[i];
    qe_peer_stats *ps = &out->peers[out->npeers++];
    memcpy(ps->key, p->key, QE_KEYLEN);
    ps->bytes_in = p->bytes_in;
    ps->bytes_out = p->bytes_out;
    ps->packets_in = p->packets_in;
    ps->packets_out = p->packets_out;
    ps->datagrams_lost = p->datagrams_lost;
    ps->datagrams_acked = p->datagrams_acked;
    ps->drop_congestion = p->drop_congestion;
    ps->drop_too_big = p->drop_too_big;
    ps->drop_spoofed = p->drop_spoofed;
    ps->drop_not_up = p->drop_not_up;
    if (p->conn) {
      qe_ts last = p->conn->last_rx_ts, now = qe_now();
      for (size_t k = 0; k < p->npaths; k++) {
        if (p->paths[k]->last_rx_ts > last) {
          last = p->paths[k]->last_rx_ts;
        }
      }
      sockaddr_str(&p->conn->remote, ps->addr, &ps->port);
      qe_conn_fill_stats(p->conn, ps);
      ps->silent_ns = now > last ? now - last : 0;
    }
    ps->bonded = p->bonded;
    ps->mode = p->mode;
    ps->reordered = p->rb.reordered;
    ps->late = p->rb.late;
    ps->bond_dropped = p->rb.dropped;
    ps->resent = p->resent;
    ps->lost_resent = p->lost_resent;
    ps->moved = p->moved;
    ps->classed_out = p->classed_out;
    ps->classed_in = p->classed_in;
    ps->acks_out = p->acks_out;
    for (size_t k = 0; k < p->npaths && k < QE_STATS_MAX_PATHS; k++) {
      qe_conn *c = p->paths[k];
      qe_path_stats *x = &ps->paths[ps->npaths++];
      ngtcp2_conn_stat cs;
      ngtcp2_conn_get_conn_stat(c->conn, &cs);
      if (c->uplink >= 0) {
        memcpy(x->uplink, e->uplinks[c->uplink].name, 16);
      }
      x->index = c->path.index;
      x->alive = !c->path.dead;
      sockaddr_str(&c->remote, x->addr, &x->port);
      x->rtt_ns = cs.smoothed_rtt;
      x->cwnd = cs.cwnd;
      x->delivery_rate =
          c->path.rate.bw ? c->path.rate.bw : cs.delivery_rate_sec;
      x->bytes_out = c->path.bytes_out;
      x->bytes_in = c->path.bytes_in;
      x->packets_out = c->path.pkts_out;
      x->packets_in = c->path.pkts_in;
      x->lost = c->path.lost;
      x->rtt_min_ns = cs.min_rtt;
      x->bytes_in_flight = cs.bytes_in_flight;
      x->queued = c->txq.count;
      x->dropped = c->path.dropped;
      {
        /* now, not e->now: an idle engine's clock is that of its last
         * event, and an echo would look fresh long after */
        uint64_t win = qe_rate_window(cs.min_rtt), now = qe_now();
        x->queue_out_ns = qe_owd_forward(&c->path.owd, now, win);
        x->queue_back_ns = qe_rate_back(&c->path.rate, cs.min_rtt);
      }
    }
  }
}

static void *engine_main(void *arg) {
  qe_engine *e = arg;
  sigset_t all;
  struct epoll_event evs[8];
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  while (!e->stopping) {
    int n = epoll_wait(e->epfd, evs, 8, -1);
    int udp = 0, tun = 0, tmr = 0, cmd = 0;
    uint32_t upl = 0;
    qe_ts ts;
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      qe_engine_emit(e, QE_EV_ERROR, NULL, "epoll-failed", NULL, 0);
      break;
    }
    for (int i = 0; i < n; i++) {
      switch (evs[i].data.u32) {
      case TAG_CMD:
        cmd = 1;
        break;
      case TAG_UDP:
        udp = 1;
        break;
      case TAG_TUN:
        tun = 1;
        break;
      case TAG_TIMER:
        tmr = 1;
        break;
      default:
        if (evs[i].data.u32 >= TAG_UPLINK0 &&
            evs[i].data.u32 < TAG_UPLINK0 + QE_MAX_UPLINKS) {
          upl |= 1u << (evs[i].data.u32 - TAG_UPLINK0);
        }
        break;
      }
    }
    ts = qe_now();
    if (cmd) {
      qe_engine_run_commands(e, ts);
    }
    if (udp) {
      on_udp(e, &e->udp, &ts);
    }
    for (size_t i = 0; upl && i < QE_MAX_UPLINKS; i++) {
      if ((upl & (1u << i)) && e->uplinks[i].open) {
        on_udp(e, &e->uplinks[i].udp, &ts);
      }
    }
    if (tmr) {
      on_timer(e, ts);
    }
    if (tun) {
      on_tun(e, ts);
    }
    flush_all(e, ts);
  }
  {
    qe_ts ts = qe_now();
    for (size_t i = e->nactive; i-- > 0;) {
      qe_conn_close(&e->conns[e->active[i]], "stopped", QE_APP_NO_ERROR, ts);
    }
    if (e->tx.nmsgs) {
      qe_udp_flush(&e->udp, &e->tx);
    }
    qe_bond_flush(e);
  }
  qe_engine_emit(e, QE_EV_STOPPED, NULL, "stopped", NULL, 0);
  pthread_mutex_lock(&e->lock);
  e->worker_done = 1;
  pthread_cond_broadcast(&e->cond);
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

/* ---- control thread API ---- */

static int epoll_add(int epfd, int fd, uint32_t tag) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int qe_engine_new(qe_engine **pe, const qe_engine_config *cfg, qe_event_fn fn,
                  void *user_data) {
  qe_engine *e;
  int rv = QE_ERR_NOMEM;
  size_t tunbuf;
  if (cfg->tun_name == NULL || cfg->listen_addr == NULL ||
      cfg->key_pem == NULL || fn == NULL || cfg->path_mtu < 1280 ||
      cfg->cc_algo < NGTCP2_CC_ALGO_RENO || cfg->cc_algo > NGTCP2_CC_ALGO_BBR2 ||
      cfg->path_mtu > 65535 || cfg->idle_timeout_ns == 0 ||
      cfg->reorder_max_bytes < 65536) {
    return QE_ERR_INVALID;
  }
  e = calloc(1, sizeof(*e));
  if (e == NULL) {
    return QE_ERR_NOMEM;
  }
  e->epfd = e->evfd = e->tfd = -1;
  e->tun.fd = e->udp.fd = -1;
  e->timer_armed = UINT64_MAX;
  gnutls_rnd(GNUTLS_RND_NONCE, &e->session, sizeof(e->session));
  pthread_mutex_init(&e->lock, NULL);
  pthread_cond_init(&e->cond, NULL);
  e->cfg = *cfg;
  e->up = &qe_peer_conn_up;
  e->accept_bonded = 1;
  e->reorder_max_ns = cfg->reorder_max_ns;
  e->reorder_max_bytes = cfg->reorder_max_bytes;
  e->event_fn = fn;
  e->event_ud = user_data;
  e->tun_name = strdup(cfg->tun_name);
  e->listen_addr = strdup(cfg->listen_addr);
  e->listen_device = strdup(cfg->listen_device ? cfg->listen_device : "");
  if (!e->tun_name || !e->listen_addr || !e->listen_device) {
    goto fail;
  }
  e->cfg.tun_name = e->tun_name;
  e->cfg.listen_addr = e->listen_addr;
  e->cfg.listen_device = e->listen_device;
  e->cfg.key_pem = NULL; /* not kept */
  e->cfg.pubkey = NULL;
  rv = qe_tls_identity_init(&e->id, cfg->key_pem, cfg->key_pem_len,
                            cfg->pubkey, qe_conn_verify_key);
  if (rv != 0) {
    goto fail;
  }
  rv = qe_udp_open(&e->udp, e->listen_addr, cfg->listen_port,
                   e->listen_device);
  if (rv == 0) {
    /* The tunnel's own packets carry the mark, so policy routing keeps
     * them out of the tunnel when the overlay holds a default route. */
    rv = qe_udp_set_mark(&e->udp, cfg->fwmark);
  }
  if (rv != 0) {
    goto fail;
  }
  rv = qe_tun_open(&e->tun, e->tun_name, cfg->tun_mtu, cfg->tun_offload);
  if (rv != 0) {
    goto fail;
  }
  rv = QE_ERR_SYS;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (e->epfd < 0 || e->evfd < 0 || e->tfd < 0 ||
      epoll_add(e->epfd, e->evfd, TAG_CMD) < 0 ||
      epoll_add(e->epfd, e->udp.fd, TAG_UDP) < 0 ||
      epoll_add(e->epfd, e->tun.fd, TAG_TUN) < 0 ||
      epoll_add(e->epfd, e->tfd, TAG_TIMER) < 0) {
    goto fail;
  }
  rv = QE_ERR_NOMEM;
  e->conns = calloc(QE_MAX_CONNS, sizeof(qe_conn));
  e->active = calloc(QE_MAX_CONNS, sizeof(uint16_t));
  e->peers = calloc(QE_MAX_PEERS, sizeof(qe_peer));
  tunbuf = QE_TUN_BUFSIZE;
  e->tun_bufs = calloc(QE_TUN_BATCH, sizeof(uint8_t *));
  e->tun_sizes = calloc(QE_TUN_BATCH, sizeof(size_t));
  e->scratch = malloc(QE_TUN_BUFSIZE);
  e->scratch2 = malloc(QE_TUN_BUFSIZE);
  if (!e->conns || !e->active || !e->peers || !e->tun_bufs ||
      !e->tun_sizes || !e->scratch || !e->scratch2 ||
      qe_gro_init(&e->gro) != 0) {
    goto fail;
  }
  for (size_t i = 0; i < QE_TUN_BATCH; i++) {
    e->tun_bufs[i] = malloc(tunbuf);
    if (e->tun_bufs[i] == NULL) {
      goto fail;
    }
  }
  if (qe_udp_rx_init(&e->rx, QE_UDP_BATCH, QE_UDP_BUFSIZE) != 0 ||
      qe_udp_tx_init(&e->tx, 512 * 1024, 512) != 0) {
    goto fail;
  }
  *pe = e;
  return 0;
fail: {
  int err = errno;
  qe_engine_del(e);
  errno = err;
  return rv;
}
}

int qe_engine_start(qe_engine *e) {
  if (e->started) {
    return QE_ERR_STATE;
  }
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
    return QE_ERR_SYS;
  }
  pthread_setname_np(e->thread, "qe-engine");
  e->started = 1;
  return 0;
}

void qe_engine_join(qe_engine *e) {
  if (e->started && !e->joined) {
    pthread_join(e->thread, NULL);
    e->joined = 1;
  }
}

void qe_engine_del(qe_engine *e) {
  if (e == NULL) {
    return;
  }
  if (e->started && !e->joined) {
    qe_engine_stop(e);
    qe_engine_join(e);
  }
  if (e->conns) {
    for (size_t i = e->nactive; i-- > 0;) {
      qe_engine_conn_release(e, &e->conns[e->active[i]]);
    }
  }
  qe_engine_cmds_free(e);
  qe_routes_free(e->routes);
  free(e->allowed);
  free(e->classes);
  qe_acl_del(e->acl);
  free(e->acl_blob);
  qe_ct_del(e->ct);
  if (e->epfd >= 0) {
    close(e->epfd);
  }
  if (e->evfd >= 0) {
    close(e->evfd);
  }
  if (e->tfd >= 0) {
    close(e->tfd);
  }
  qe_tun_close(&e->tun);
  qe_udp_close(&e->udp);
  qe_bond_close_all(e);
  qe_tls_identity_free(&e->id);
  qe_udp_rx_free(&e->rx);
  qe_udp_tx_free(&e->tx);
  if (e->tun_bufs) {
    for (size_t i = 0; i < QE_TUN_BATCH; i++) {
      free(e->tun_bufs[i]);
    }
  }
  free(e->tun_bufs);
  free(e->tun_sizes);
  free(e->scratch);
  free(e->scratch2);
  qe_gro_free(&e->gro);
  free(e->conns);
  free(e->active);
  free(e->peers);
  free(e->tun_name);
  free(e->listen_addr);
  free(e->listen_device);
  pthread_mutex_destroy(&e->lock);
  pthread_cond_destroy(&e->cond);
  free(e);
}

int qe_engine_ifindex(const qe_engine *e) {
  return e->tun.ifindex;
}

uint16_t qe_engine_port(const qe_engine *e) {
  return e->udp.port;
}
