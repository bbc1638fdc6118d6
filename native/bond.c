/*
 * Multipath bonding: uplinks (one UDP socket each, bound to its device),
 * paths (one QUIC connection per uplink and peer endpoint), the per-peer
 * scheduler, path liveness, re-dialling, and the receive-side reorder.
 *
 * A bonded peer has `paths[]`; `conn` is one of them (control messages go
 * there). Every datagram on a path starts with a 4-byte big-endian
 * sequence number, one sequence per peer and direction.
 */
#include "engine_int.h"

#include <string.h>
#include <sys/epoll.h>

static int path_alive(const qe_conn *c) {
  return c->state == QE_CONN_UP && !c->dead;
}

static void rb_deliver(void *ud, const uint8_t *pkt, size_t len) {
  qe_peer *p = ud;
  qe_conn *c = p->conn;
  if (c != NULL) {
    qe_forward_to_tun_peer(c->eng, p, pkt, len);
  }
}

int qe_bond_path_up(qe_engine *e, qe_peer *p, qe_conn *c, qe_ts ts) {
  if (p->conn != NULL && (!p->bonded || p->session != c->session)) {
    /* A plain connection, or paths of an earlier run of the peer: the
     * peer restarted. The new session takes over. */
    e->g.duplicates++;
    if (p->bonded) {
      while (p->npaths) {
        qe_conn_close(p->paths[p->npaths - 1], "replaced", QE_APP_DUPLICATE,
                      ts);
      }
    } else {
      qe_conn_close(p->conn, "replaced", QE_APP_DUPLICATE, ts);
    }
  }
  if (p->npaths >= QE_MAX_PATHS) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return -1;
  }
  if (p->rb.buf == NULL &&
      qe_reorder_init(&p->rb, c->max_dgram, e->cfg.reorder_max_bytes,
                      20 * 1000000ULL) != 0) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return -1;
  }
  if (!p->bonded || p->npaths == 0) {
    qe_reorder_reset(&p->rb);
    e->nbonded++;
  }
  p->bonded = 1;
  p->session = c->session;
  p->mode = c->mode;
  p->paths[p->npaths++] = c;
  c->announced = 1;
  if (e->bond_next_ts == 0) {
    e->bond_next_ts = ts + QE_BOND_TICK_NS;
  }
  if (p->conn == NULL) {
    p->conn = c;
    qe_engine_emit(e, QE_EV_PEER_UP, c, NULL, NULL, 0);
  }
  qe_engine_emit(e, QE_EV_PATH_UP, c, NULL, NULL, 0);
  qe_conn_ctl_resume(c, ts);
  return 0;
}

int qe_bond_path_gone(qe_engine *e, qe_conn *c, qe_ts ts) {
  qe_peer *p = c->peer;
  for (size_t i = 0; i < p->npaths; i++) {
    if (p->paths[i] == c) {
      p->paths[i] = p->paths[--p->npaths];
      break;
    }
  }
  qe_engine_emit(e, QE_EV_PATH_DOWN, c, "closed", NULL, 0);
  if (p->npaths > 0 && !c->dead) {
    qe_bond_rescue(e, c, ts);
  }
  if (p->npaths == 0) {
    p->bonded = 0;
    if (e->nbonded) {
      e->nbonded--;
    }
    return 0;
  }
  if (p->conn == NULL || p->conn == c) {
    p->conn = p->paths[0];
    for (size_t i = 0; i < p->npaths; i++) {
      if (path_alive(p->paths[i])) {
        p->conn = p->paths[i];
        break;
      }
    }
  }
  return 1;
}

/* ---- scheduler ---- */

/* Expected time until a new packet on `c` is delivered, ns. */
static uint64_t path_cost(const qe_conn *c) {
  ngtcp2_conn_stat cs;
  uint64_t rate, queued;
  ngtcp2_conn_get_conn_stat(c->conn, &cs);
  /* ngtcp2 0.12's delivery_rate_sec overshoots wildly on shaped links
   * (GBytes/s on 50 Mbit/s): the window per RTT is the better estimate. */
  rate = cs.smoothed_rtt ? cs.cwnd * 1000000000ULL / cs.smoothed_rtt : 0;
  if (rate < 65536) {
    rate = 65536;
  }
  queued = cs.bytes_in_flight + c->txq.count * (uint64_t)c->max_udp;
  return cs.smoothed_rtt / 2 + queued * 1000000000ULL / rate;
}

static int has_room(const qe_conn *c) {
  return c->txq.count == 0 &&
         ngtcp2_conn_get_cwnd_left(c->conn) >= c->max_udp + 64;
}

/* Lower sorts first: primaries, then by priority, then by index. */
static uint32_t failover_rank(const qe_conn *c) {
  return ((uint32_t)c->role << 24) | ((uint32_t)c->priority << 8) |
         c->path_index;
}

static size_t pick(qe_peer *p, qe_conn **out) {
  qe_conn *best = NULL, *second = NULL;
  uint64_t bc = UINT64_MAX, sc = UINT64_MAX;
  int any_room = 0;
  size_t nalive = 0;
  for (size_t i = 0; i < p->npaths; i++) {
    if (path_alive(p->paths[i])) {
      nalive++;
      any_room |= has_room(p->paths[i]);
    }
  }
  if (nalive == 0) {
    /* Every path looks dead: the most recently heard one still may work. */
    for (size_t i = 0; i < p->npaths; i++) {
      qe_conn *c = p->paths[i];
      if (c->state == QE_CONN_UP &&
          (best == NULL || c->last_rx_ts > best->last_rx_ts)) {
        best = c;
      }
    }
    out[0] = best;
    return best ? 1 : 0;
  }
  switch (p->mode) {
  case QE_BOND_FAILOVER:
    for (size_t i = 0; i < p->npaths; i++) {
      qe_conn *c = p->paths[i];
      if (path_alive(c) &&
          (best == NULL || failover_rank(c) < failover_rank(best))) {
        best = c;
      }
    }
    out[0] = best;
    return 1;
  case QE_BOND_WEIGHTED: {
    int64_t total = 0;
    for (size_t i = 0; i < p->npaths; i++) {
      qe_conn *c = p->paths[i];
      if (path_alive(c)) {
        c->wrr_credit += c->weight;
        total += c->weight;
        if (best == NULL || c->wrr_credit > best->wrr_credit) {
          best = c;
        }
      }
    }
    best->wrr_credit -= total;
    out[0] = best;
    return 1;
  }
  default: /* aggregate, redundant */
    for (size_t i = 0; i < p->npaths; i++) {
      qe_conn *c = p->paths[i];
      uint64_t cost;
      if (!path_alive(c) || (any_room && !has_room(c))) {
        continue;
      }
      cost = path_cost(c);
      if (cost < bc) {
        second = best;
        sc = bc;
        best = c;
        bc = cost;
      } else if (cost < sc) {
        second = c;
        sc = cost;
      }
    }
    if (p->mode == QE_BOND_REDUNDANT && second == NULL && any_room) {
      /* The second best may have no room now: it queues. */
      for (size_t i = 0; i < p->npaths; i++) {
        if (path_alive(p->paths[i]) && p->paths[i] != best) {
          second = p->paths[i];
          break;
        }
      }
    }
    out[0] = best;
    if (p->mode == QE_BOND_REDUNDANT && second != NULL) {
      out[1] = second;
      return 2;
    }
    return best ? 1 : 0;
  }
}

void qe_bond_send(qe_engine *e, qe_peer *p, const ngtcp2_vec *v, size_t vcnt,
                  size_t total, qe_ts ts) {
  qe_conn *to[2];
  size_t n = pick(p, to);
  uint32_t seq = p->tx_seq++;
  uint8_t hdr[QE_BOND_HDR] = {(uint8_t)(seq >> 24), (uint8_t)(seq >> 16),
                              (uint8_t)(seq >> 8), (uint8_t)seq};
  ngtcp2_vec vv[3] = {{.base = hdr, .len = QE_BOND_HDR}};
  (void)e;
  for (size_t i = 0; i < vcnt && i < 2; i++) {
    vv[1 + i] = v[i];
  }
  if (n == 0) {
    p->drop_not_up++;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    /* May close to[i]: nothing below touches it again. */
    qe_conn_forward(to[i], vv, vcnt + 1, total + QE_BOND_HDR, ts);
  }
}

void qe_bond_recv(qe_conn *c, const uint8_t *data, size_t len) {
  qe_peer *p = c->peer;
  uint32_t seq;
  if (len <= QE_BOND_HDR || p == NULL) {
    c->eng->g.malformed++;
    return;
  }
  c->p_pkts_in++;
  c->p_bytes_in += len - QE_BOND_HDR;
  seq = ((uint32_t)data[0] << 24) | ((uint32_t)data[1] << 16) |
        ((uint32_t)data[2] << 8) | data[3];
  qe_reorder_push(&p->rb, seq, data + QE_BOND_HDR, len - QE_BOND_HDR,
                  c->eng->now, rb_deliver, p);
}

/* ---- liveness, reorder timeouts, re-dialling ---- */

void qe_bond_rescue(qe_engine *e, qe_conn *c, qe_ts ts) {
  qe_peer *p = c->peer;
  size_t start;
  (void)e;
  if (c->sent_id == NULL || p == NULL) {
    return;
  }
  start = c->dgram_id % QE_SENT_SLOTS; /* the oldest first */
  for (size_t n = 0; n < QE_SENT_SLOTS; n++) {
    size_t slot = (start + n) % QE_SENT_SLOTS;
    qe_conn *to[2];
    ngtcp2_vec v;
    if (c->sent_id[slot] == 0) {
      continue;
    }
    c->sent_id[slot] = 0;
    if (pick(p, to) == 0 || to[0] == c) {
      continue;
    }
    v.base = c->sent_buf + slot * c->txq.slotsize;
    v.len = c->sent_len[slot];
    p->resent++;
    if (qe_conn_forward(to[0], &v, 1, v.len, ts) == QE_SEND_CLOSED) {
      return; /* the paths changed under us: stop here */
    }
  }  /* And what waited in its queue, never sent. */
  while (c->txq.count) {
    qe_txq *q = &c->txq;
    qe_conn *to[2];
    ngtcp2_vec v = {.base = q->buf + q->head * q->slotsize,
                    .len = q->lens[q->head]};
    q->head = (q->head + 1) % q->cap;
    q->count--;
    if (pick(p, to) == 0 || to[0] == c) {
      continue;
    }
    p->resent++;
    if (qe_conn_forward(to[0], &v, 1, v.len, ts) == QE_SEND_CLOSED) {
      return;
    }
  }
}

static void peer_tick(qe_engine *e, qe_peer *p, qe_ts ts) {
  uint64_t lo = UINT64_MAX, hi = 0;
  qe_conn *died[QE_MAX_PATHS];
  size_t ndied = 0;
  for (size_t i = 0; i < p->npaths; i++) {
    qe_conn *c = p->paths[i];
    ngtcp2_conn_stat cs;
    if (c->state != QE_CONN_UP) {
      continue;
    }
    if (!c->dead && ts > c->last_rx_ts + QE_PATH_DEAD_NS) {
      c->dead = 1;
      died[ndied++] = c;
      qe_engine_emit(e, QE_EV_PATH_DOWN, c, "dead", NULL, 0);
      if (p->conn == c) {
        for (size_t k = 0; k < p->npaths; k++) {
          if (path_alive(p->paths[k])) {
            p->conn = p->paths[k];
            break;
          }
        }
      }
    } else if (c->dead && ts < c->last_rx_ts + QE_PATH_DEAD_NS / 2) {
      /* Heard again (our keep-alive PINGs are the probe). */
      c->dead = 0;
      qe_engine_emit(e, QE_EV_PATH_UP, c, NULL, NULL, 0);
    }
    if (c->dead) {
      continue;
    }
    ngtcp2_conn_get_conn_stat(c->conn, &cs);
    if (cs.smoothed_rtt < lo) {
      lo = cs.smoothed_rtt;
    }
    if (cs.smoothed_rtt > hi) {
      hi = cs.smoothed_rtt;
    }
  }
  if (hi >= lo) {
    /* Wait for a gap about as long as the paths' RTT spread, plus jitter. */
    uint64_t t = hi - lo + 10 * 1000000ULL;
    p->rb.timeout_ns = t > e->cfg.reorder_max_ns ? e->cfg.reorder_max_ns : t;
  }
  qe_reorder_tick(&p->rb, ts, rb_deliver, p);
  for (size_t i = 0; i < ndied; i++) {
    /* Still a path of p (a rescue may close paths): re-send its backlog. */
    for (size_t k = 0; k < p->npaths; k++) {
      if (p->paths[k] == died[i]) {
        qe_bond_rescue(e, died[i], ts);
        break;
      }
    }
  }
}

static int have_path(qe_engine *e, const qe_bond_target *t, size_t u) {
  for (size_t i = 0; i < e->nactive; i++) {
    const qe_conn *c = &e->conns[e->active[i]];
    if (c->uplink == (int)u && !c->server &&
        qe_sockaddr_eq((const struct sockaddr *)&c->remote,
                       (const struct sockaddr *)&t->addr)) {
      return 1;
    }
  }
  return 0;
}

void qe_bond_tick(qe_engine *e, qe_ts ts) {
  int targets = 0;
  for (size_t i = 0; i < e->npeers && e->nbonded; i++) {
    qe_peer *p = &e->peers[i];
    if (p->bonded && p->npaths) {
      if (ts >= e->bond_next_ts || qe_reorder_deadline(&p->rb) <= ts) {
        peer_tick(e, p, ts);
      }
    }
  }
  if (ts < e->bond_next_ts) {
    return;
  }
  for (size_t k = 0; k < QE_MAX_TARGETS; k++) {
    qe_bond_target *t = &e->targets[k];
    if (!t->used) {
      continue;
    }
    targets = 1;
    for (size_t u = 0; u < QE_MAX_UPLINKS; u++) {
      if (!e->uplinks[u].used || have_path(e, t, u) ||
          (t->last_dial[u] && ts < t->last_dial[u] + QE_BOND_REDIAL_NS)) {
        continue;
      }
      t->last_dial[u] = ts;
      qe_conn_client_new_on(e, (struct sockaddr *)&t->addr, t->addrlen,
                            (int)u, t->mode, ts);
    }
  }
  e->bond_next_ts = (e->nbonded || targets) ? ts + QE_BOND_TICK_NS : 0;
}

qe_ts qe_bond_expiry(const qe_engine *e) {
  qe_ts x = e->bond_next_ts ? e->bond_next_ts : UINT64_MAX;
  for (size_t i = 0; i < e->npeers && e->nbonded; i++) {
    const qe_peer *p = &e->peers[i];
    if (p->bonded) {
      qe_ts d = qe_reorder_deadline(&p->rb);
      if (d < x) {
        x = d;
      }
    }
  }
  return x;
}

void qe_bond_flush(qe_engine *e) {
  for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
    qe_uplink *u = &e->uplinks[i];
    if (u->used && u->tx.nmsgs) {
      qe_udp_flush(&u->udp, &u->tx);
    }
  }
}

void qe_bond_close_all(qe_engine *e) {
  for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
    qe_uplink *u = &e->uplinks[i];
    if (u->used) {
      qe_udp_close(&u->udp);
      qe_udp_tx_free(&u->tx);
      u->used = 0;
    }
  }
  if (e->peers) {
    for (size_t i = 0; i < e->npeers; i++) {
      qe_reorder_free(&e->peers[i].rb);
    }
  }
}
