/*
 * A connection's transmit side: one IP packet in one DATAGRAM frame now
 * (qe_conn_send_datagram), or into its queue (txq.h) while the congestion
 * window is full, in four ways: at the tail (qe_conn_forward, and
 * qe_conn_forward_admitted after qe_conn_admit), or at the head for a
 * bonded packet sent again (qe_conn_forward_front) or a traffic class's
 * (qe_conn_forward_urgent). qe_conn_flush_queue drains it as ACKs open the
 * window. Worker thread only; nothing here allocates.
 */
#include "engine_int.h"

#include <string.h>

/* Room for one UDP payload in the batch of the connection's socket
 * (flushing it first when full). */
uint8_t *qe_conn_tx_reserve(qe_conn *c, size_t len) {
  uint8_t *p = qe_udp_tx_reserve(c->tx, len);
  if (p == NULL) {
    qe_udp_flush(c->udp, c->tx);
    p = qe_udp_tx_reserve(c->tx, len);
  }
  return p;
}

/* Copies a packet given in pieces into `dst` (a queue slot). */
static void gather(uint8_t *dst, const ngtcp2_vec *v, size_t vcnt) {
  size_t off = 0;
  for (size_t i = 0; i < vcnt; i++) {
    memcpy(dst + off, v[i].base, v[i].len);
    off += v[i].len;
  }
}

/* A bonded path keeps what it sends (qe_path_sent): NULL keeps nothing. */
static void gather_or_skip(uint8_t *dst, const ngtcp2_vec *v, size_t vcnt) {
  if (dst != NULL) {
    gather(dst, v, vcnt);
  }
}

int qe_conn_send_datagram(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                          size_t total, qe_ts ts) {
  qe_engine *e = c->eng;
  qe_peer *p = c->peer;
  /* Keep room for the NOP that must follow (see QE_NOP_POOL). */
  if (ngtcp2_conn_get_cwnd_left(c->conn) < c->max_udp + 64) {
    c->path.rate.limited = 1;
    return QE_SEND_BLOCKED;
  }
  if (c->is_path) {
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(c->conn, &cs);
    if (!c->urgent && c->path.rate.bw &&
        cs.bytes_in_flight + c->max_udp > qe_path_cap(c, &cs)) {
      c->path.rate.limited = 1;
      return QE_SEND_BLOCKED;
    }
    if (!qe_path_loaded(c, &cs)) {
      c->path.busy_ts = ts;
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
      qe_conn_fail(c, (int)nwrite, ts);
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
      c->path.pkts_out++;
      c->path.bytes_out += total;
      if (c->path.sent_buf != NULL) { /* a bonded path keeps what it sends */
        gather_or_skip(qe_path_sent(&c->path, c->dgram_id - 1, total, ts), v,
                       vcnt);
      }
      return QE_SEND_OK;
    }
  }
  return QE_SEND_BLOCKED;
}

/* Early drop on a bonded path's queue when the TUN is not paused (traffic
 * classes): qe_aqm_drop. */
static int aqm_drop(qe_conn *c, qe_ts ts) {
  if (!c->is_path || !c->eng->nclasses ||
      (c->peer && ts < c->peer->aqm_grace_ts)) {
    return 0;
  }
  return qe_aqm_drop(&c->path.aqm, (c->txq.count + 1) * (uint64_t)c->max_udp,
                     &c->path.rate, ts);
}

int qe_conn_admit(qe_conn *c, size_t total, qe_ts ts) {
  const qe_txq *q = &c->txq;
  if (q->count == q->cap || total > q->slotsize || aqm_drop(c, ts)) {
    c->peer->drop_congestion++;
    c->path.dropped++;
    return 0;
  }
  return 1;
}

/* qe_conn_forward; `admitted`: qe_conn_admit said yes already. */
static int forward(qe_conn *c, const ngtcp2_vec *v, size_t vcnt, size_t total,
                   qe_ts ts, int admitted) {
  qe_txq *q = &c->txq;
  uint8_t *dst;
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
  dst = qe_txq_push_back(q, total);
  if (dst == NULL) { /* admitted by the caller, yet no room: never */
    c->peer->drop_congestion++;
    c->path.dropped++;
    return QE_SEND_DROPPED;
  }
  gather(dst, v, vcnt);
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

/* Puts a packet at the head of c's queue (an urgent one behind the urgent
 * ones there, the rest behind those); a full queue loses its newest packet
 * instead. */
static int push_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                      size_t total, int urgent) {
  int dropped;
  uint8_t *dst = urgent ? qe_txq_push_urgent(&c->txq, total, &dropped)
                        : qe_txq_push_front(&c->txq, total, &dropped);
  if (dst == NULL || dropped) {
    c->peer->drop_congestion++;
    c->path.dropped++;
  }
  if (dst == NULL) {
    return QE_SEND_DROPPED;
  }
  gather(dst, v, vcnt);
  return QE_SEND_BLOCKED;
}

/* Sends from the head of c's queue while the window allows: its urgent
 * packets past the bulk cap (see qe_conn_flush_queue), then, unless
 * `urgent_only`, the bulk within it. Only the urgent ones before a new
 * urgent packet: sending the bulk too could fill the window before it.
 * -1: the connection closed. */
static int flush(qe_conn *c, qe_ts ts, int urgent_only) {
  size_t len;
  uint8_t *pkt;
  while ((c->txq.urgent || !urgent_only) &&
         (pkt = qe_txq_front(&c->txq, &len)) != NULL) {
    ngtcp2_vec v = {.base = pkt, .len = len};
    int rv;
    c->urgent = c->txq.urgent > 0;
    rv = qe_conn_send_datagram(c, &v, 1, len, ts);
    if (rv == QE_SEND_CLOSED) {
      return -1;
    }
    c->urgent = 0;
    if (rv == QE_SEND_BLOCKED) {
      break;
    }
    qe_txq_pop_front(&c->txq);
  }
  return 0;
}

/* Sends now if the window allows, else puts the packet at the head of
 * c's queue. `urgent` (a traffic class's): past the bulk cap, and ahead of
 * a queue that is not empty, but behind the urgent ones waiting there
 * (they go first: FIFO); else only into an empty queue's window. */
static int forward_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                         size_t total, qe_ts ts, int urgent) {
  if (urgent && c->txq.urgent && flush(c, ts, 1) < 0) {
    return QE_SEND_CLOSED; /* the urgent ones before it go first */
  }
  if ((urgent && c->txq.urgent == 0) || c->txq.count == 0) {
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
  return push_front(c, v, vcnt, total, urgent);
}

int qe_conn_forward_front(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                          size_t total, qe_ts ts) {
  return forward_front(c, v, vcnt, total, ts, 0);
}

int qe_conn_forward_urgent(qe_conn *c, const ngtcp2_vec *v, size_t vcnt,
                           size_t total, qe_ts ts) {
  return forward_front(c, v, vcnt, total, ts, 1);
}

/* An urgent packet that found the window full waits at the head of the
 * queue, and leaves as it would have: past the bulk cap. Held to the cap
 * like the bulk queued behind it (a gateway's TCP ACKs, 180 of them), a
 * ping's reply left 0.4-1.4 s later, while the replies after it, finding
 * the window open, went at once. */
int qe_conn_flush_queue(qe_conn *c, qe_ts ts) {
  return flush(c, ts, 0);
}
