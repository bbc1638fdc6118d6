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
#include "pkt.h"
#include "sched.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

static int path_alive(const qe_conn *c) {
  return c->state == QE_CONN_UP && !c->path.dead;
}

static qe_ts silence(const qe_conn *c, const ngtcp2_conn_stat *cs, qe_ts ts) {
  return qe_sched_silence(ts, c->last_rx_ts, c->path.busy_ts, cs->smoothed_rtt);
}

/* When c's oldest unacknowledged datagram was sent; 0: none. The cursor
 * moves past acknowledged, lost and rescued ones (their slots are clear or
 * hold a later datagram). */
static qe_ts oldest_sent(qe_conn *c) {
  qe_path *x = &c->path;
  if (x->sent_id == NULL) {
    return 0;
  }
  if (c->dgram_id - x->oldest_id > QE_SENT_SLOTS) {
    x->oldest_id = c->dgram_id - QE_SENT_SLOTS;
  }
  while (x->oldest_id < c->dgram_id &&
         x->sent_id[x->oldest_id % QE_SENT_SLOTS] != x->oldest_id + 1) {
    x->oldest_id++;
  }
  return x->oldest_id < c->dgram_id
             ? x->sent_ts[x->oldest_id % QE_SENT_SLOTS]
             : 0;
}

/* What c had was sent on the others, and it has not been heard since. */
static int rescued(const qe_conn *c) {
  return c->path.rescue_ts != 0 && c->last_rx_ts <= c->path.rescue_ts;
}

/* Suspect (qe_sched_overdue), or rescued. */
static int suspect(qe_conn *c, qe_ts ts) {
  return rescued(c) ||
         qe_sched_overdue(ts, oldest_sent(c), ngtcp2_conn_get_pto(c->conn));
}

/* Whether a path of p other than c may take c's traffic: with none, a
 * rescue would have nowhere to go, and c keeps what it sent. */
static int another_alive(const qe_peer *p, const qe_conn *c, qe_ts ts) {
  for (size_t i = 0; i < p->npaths; i++) {
    qe_conn *o = p->paths[i];
    if (o != c && path_alive(o) && !suspect(o, ts)) {
      return 1;
    }
  }
  return 0;
}

static void rb_deliver(void *ud, const uint8_t *pkt, size_t len) {
  qe_peer *p = ud;
  qe_conn *c = p->conn;
  if (c != NULL) {
    qe_forward_to_tun_peer(c->eng, p, pkt, len);
  }
}

int qe_bond_path_up(qe_engine *e, qe_peer *p, qe_conn *c, qe_ts ts) {
  if (p->conn != NULL && (!p->bonded || p->session != c->path.session)) {
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
  if (p->flows == NULL) {
    p->flows = calloc(1, sizeof(qe_flows));
  }
  if (p->flows == NULL ||
      (p->rb.buf == NULL &&
       qe_reorder_init(&p->rb, c->max_dgram, e->reorder_max_bytes,
                       20 * 1000000ULL) != 0)) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return -1;
  }
  if (!p->bonded || p->npaths == 0) {
    qe_reorder_reset(&p->rb);
    p->suspect_ts = UINT64_MAX;
    e->nbonded++;
  }
  p->bonded = 1;
  p->session = c->path.session;
  p->mode = c->path.mode;
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
  if (p->fast == c) {
    p->fast = NULL;
  }
  qe_engine_emit(e, QE_EV_PATH_DOWN, c, "closed", NULL, 0);
  if (p->npaths > 0 && !c->path.dead) {
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

/* ---- scheduler (decisions in sched.c) ---- */

/* The scheduler's view of p's paths, from the QUIC stack's statistics. */
static void view(const qe_peer *p, qe_sched_path *v) {
  for (size_t i = 0; i < p->npaths; i++) {
    qe_conn *c = p->paths[i];
    ngtcp2_conn_stat cs;
    uint64_t cap;
    int room, throttled;
    uint64_t rate;
    ngtcp2_conn_get_conn_stat(c->conn, &cs);
    cap = qe_path_cap(c, &cs);
    throttled = qe_sched_throttled(cs.cwnd, cap);
    room = c->txq.count == 0 &&
           ngtcp2_conn_get_cwnd_left(c->conn) >= c->max_udp + 64 &&
           (cap == 0 || cs.bytes_in_flight + c->max_udp <= cap);
    /* No room is not yet the limit for its rate's window: the send that
     * the path refuses is (qe_conn_send_datagram). Marked here, on every
     * look, a path that carried only a download's ACKs (sent past its cap)
     * was the limit in every window at the ACKs' rate, ended its startup
     * there, and kept the download off it (mix 1 of seed 181310126, both
     * directions at once, -P4: 1-3 of a 259 Mbit/s uplink's Mbit/s). */
    rate = c->path.rate.bw;
    if (throttled && cs.min_rtt != UINT64_MAX && cs.min_rtt != 0) {
      rate = cs.cwnd * 1000000000ULL / cs.min_rtt; /* what it carries now */
    }
    v[i] = (qe_sched_path){
        .up = c->state == QE_CONN_UP,
        .alive = path_alive(c) && !suspect(c, c->eng->now),
        .srtt_ns = cs.smoothed_rtt,
        .min_rtt_ns = cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt,
        .low_rtt_ns = qe_rate_low_rtt(&c->path.rate),
        .loss_q16 = c->path.rate.loss_q16,
        .measured = c->path.rate.measured,
        .back_ns = qe_rate_back(&c->path.rate, cs.min_rtt),
        .cwnd = cs.cwnd,
        .rate = rate,
        .inflight = cs.bytes_in_flight,
        .queued = c->txq.count * (uint64_t)c->max_udp,
        .room = room,
        .last_rx = c->last_rx_ts,
        .role = c->path.role,
        .priority = c->path.priority,
        .index = c->path.index,
        .weight = c->path.weight,
        .credit = c->path.wrr_credit,
        /* The dialler's uplink, live (the config may change it). */
        .cost = c->uplink >= 0 ? c->eng->uplinks[c->uplink].cost
                               : c->path.cost,
    };
  }
}

/* The path(s) for the next packet (qe_sched_pick); `hold` (NULL: not
 * asked): how long the receiver holds an aggregate bulk packet
 * (qe_sched_hold; 0 for redundant copies and the other modes). */
static size_t pick_held(qe_peer *p, qe_conn **out, uint64_t *hold) {
  qe_sched_path v[QE_MAX_PATHS];
  size_t idx[2], n;
  view(p, v);
  n = qe_sched_pick(p->mode, v, p->npaths, idx);
  if (hold != NULL) {
    *hold = n == 1 && p->mode == QE_MODE_AGGREGATE
                ? qe_sched_hold(v, p->npaths, idx[0])
                : 0;
  }
  if (p->mode == QE_MODE_WEIGHTED) {
    for (size_t i = 0; i < p->npaths; i++) {
      p->paths[i]->path.wrr_credit = v[i].credit;
    }
  }
  for (size_t i = 0; i < n; i++) {
    out[i] = p->paths[idx[i]];
  }
  return n;
}

static size_t pick(qe_peer *p, qe_conn **out) {
  return pick_held(p, out, NULL);
}

/* ---- traffic classes ---- */

/* Byte `off` of the packet given as pieces, or -1 past its end. */
static int port_in(const qe_class *k, int port) {
  for (size_t i = 0; i < k->nports; i++) {
    if (port >= k->port_lo[i] && port <= k->port_hi[i]) {
      return 1;
    }
  }
  return 0;
}

/* Whether a parsed packet is TCP with any of `flags` set. */
static int tcp_flag(const qe_pkt_info *pi, int flags) {
  return pi->tcp_flags >= 0 && (pi->tcp_flags & flags);
}

/* The first class the packet matches, or NULL. A class that matches by size
 * does not take a packet whose flow is in the sequence (qe_flows), nor a
 * TCP SYN, which puts its connection there (number()): TCP's round trips,
 * the handshake's first, all take the bond's delay (qe_sched_hold), and its
 * ACKs spread over the paths with its data. Classed, the handshake on the
 * fastest path set HyStart's lowest RTT below every later sample, and a
 * download's ACKs queued on that one uplink: either way slow start ended
 * early (the demo's rural download: 111-123 Mbit/s, 143-148 with both). */
static const qe_class *classify(const qe_engine *e, const qe_peer *p,
                                const qe_pkt_info *pi, size_t total,
                                qe_ts ts) {
  for (size_t i = 0; i < e->nclasses; i++) {
    const qe_class *k = &e->classes[i];
    if (k->dscp && !(k->dscp >> pi->dscp & 1)) {
      continue;
    }
    if (k->max_size &&
        (total > k->max_size || qe_flow_in_sequence(p->flows, pi->flow, ts) ||
         tcp_flag(pi, QE_TCP_SYN))) {
      continue;
    }
    if (k->nports &&
        (pi->sport < 0 || (!port_in(k, pi->sport) && !port_in(k, pi->dport)))) {
      continue;
    }
    return k;
  }
  return NULL;
}

/* The packet's first bytes, contiguous (a split super-packet's segment
 * comes as its rebuilt header and its payload). */
static size_t gather(const ngtcp2_vec *v, size_t vcnt,
                     uint8_t h[QE_PKT_HDR_MAX]) {
  size_t n = 0;
  for (size_t i = 0; i < vcnt && n < QE_PKT_HDR_MAX; i++) {
    size_t take = v[i].len < QE_PKT_HDR_MAX - n ? v[i].len : QE_PKT_HDR_MAX - n;
    memcpy(h + n, v[i].base, take);
    n += take;
  }
  return n;
}

/*
 * The path for a class: its named uplink's path while that is alive, else
 * the live path it arrives first on (its way, the bottleneck's queue, the
 * wait for window), kept while it stays about as fast (qe_sched_fastest).
 */
static qe_conn *class_path(qe_peer *p, const qe_class *k) {
  qe_sched_path v[QE_MAX_PATHS];
  size_t cur = QE_SCHED_NONE, best;
  if (k->uplink[0]) {
    for (size_t i = 0; i < p->npaths; i++) {
      qe_conn *c = p->paths[i];
      if (path_alive(c) && c->uplink >= 0 &&
          strcmp(c->eng->uplinks[c->uplink].name, k->uplink) == 0) {
        return c;
      }
    }
  }
  view(p, v);
  for (size_t i = 0; i < p->npaths; i++) {
    if (p->paths[i] == p->fast) {
      cur = i;
    }
  }
  best = qe_sched_fastest(v, p->npaths, cur);
  p->fast = best == QE_SCHED_NONE ? NULL : p->paths[best];
  return p->fast;
}

/*
 * Where a datagram sent before goes again (a dead path's backlog, a loss):
 * a packet outside the sequence (a traffic class's, a pure ACK) to the
 * lowest-latency live path, not behind bulk on a slow path;
 * the rest through the scheduler. NULL: no path.
 */
static qe_conn *resend_path(qe_peer *p, const uint8_t *dgram) {
  static const qe_class any; /* no uplink: the lowest-latency path */
  qe_conn *to[2];
  if (dgram[0] & 0x80) {
    return class_path(p, &any);
  }
  return pick(p, to) ? to[0] : NULL;
}

/* Sends a datagram again on `to`, ahead of the bulk queued there: a
 * traffic class's packet as urgently as the first time, the rest within
 * the path's window (qe_conn_forward_front). Several go at the front
 * newest first, so that they leave oldest first; a traffic class's
 * packets queue behind the class's packets already waiting (FIFO: a
 * ping must not be starved by the pings after it), so those of one rescue
 * leave newest first among themselves. */
static int resend_on(qe_conn *to, ngtcp2_vec *v, qe_ts ts) {
  if (v->base[0] & 0x80) {
    return qe_conn_forward_urgent(to, v, 1, v->len, ts);
  }
  /* Its hold was for the way it went first: a re-send is late already. */
  v->base[4] = v->base[5] = 0;
  return qe_conn_forward_front(to, v, 1, v->len, ts);
}

/* Writes a bonded packet's hold (QE_BOND_HDR) into its header. */
static void put_hold(uint8_t *hdr, uint64_t hold_ns) {
  uint64_t units = hold_ns / QE_BOND_HOLD_UNIT_NS;
  units = units > 0xffff ? 0xffff : units;
  hdr[4] = (uint8_t)(units >> 8);
  hdr[5] = (uint8_t)units;
}

/* Gives the next packet of p's sequence its number (big-endian in hdr) and
 * its hold, and notes its flow in the sequence (`pi`: NULL when not
 * classified). */
static void number(qe_peer *p, uint8_t hdr[QE_BOND_HDR],
                   const qe_pkt_info *pi, uint64_t hold_ns, qe_ts ts) {
  uint32_t seq = p->tx_seq;
  p->tx_seq = (p->tx_seq + 1) & QE_RB_SEQ_MASK;
  hdr[0] = (uint8_t)(seq >> 24);
  hdr[1] = (uint8_t)(seq >> 16);
  hdr[2] = (uint8_t)(seq >> 8);
  hdr[3] = (uint8_t)seq;
  put_hold(hdr, hold_ns);
  if (pi != NULL) {
    qe_flow_sequenced(p->flows, pi->flow, ts);
  }
}

/* Sends a packet outside the sequence on c, ahead of its bulk queue: the
 * receiver delivers it on arrival (the header's top bit). */
static void send_unsequenced(qe_conn *c, uint8_t hdr[QE_BOND_HDR],
                             ngtcp2_vec *vv, size_t vcnt, size_t total,
                             qe_ts ts) {
  memset(hdr, 0, QE_BOND_HDR);
  hdr[0] = 0x80;
  qe_conn_forward_urgent(c, vv, vcnt + 1, total + QE_BOND_HDR, ts);
}

void qe_bond_send(qe_engine *e, qe_peer *p, const ngtcp2_vec *v, size_t vcnt,
                  size_t total, qe_ts ts) {
  qe_conn *to[2];
  size_t n;
  uint8_t hdr[QE_BOND_HDR];
  ngtcp2_vec vv[3] = {{.base = hdr, .len = QE_BOND_HDR}};
  qe_pkt_info info;
  const qe_pkt_info *pi = NULL; /* parsed (aggregate, weighted) */
  uint64_t hold = 0;
  int ack;
  for (size_t i = 0; i < vcnt && i < 2; i++) {
    vv[1 + i] = v[i];
  }
  if (p->flows &&
      (p->mode == QE_MODE_AGGREGATE || p->mode == QE_MODE_WEIGHTED)) {
    uint8_t h[QE_PKT_HDR_MAX];
    pi = qe_pkt_parse(h, gather(v, vcnt, h), &info) == 0 ? &info : NULL;
  }
  /* A TCP segment without payload that only acknowledges (not a SYN, FIN
   * or RST, which must arrive in their place): see below. */
  ack = pi != NULL && pi->tcp_data >= 0 && total <= (size_t)pi->tcp_data &&
        !tcp_flag(pi, QE_TCP_SYN | QE_TCP_FIN | QE_TCP_RST);
  if (pi != NULL && e->nclasses) {
    const qe_class *k = classify(e, p, pi, total, ts);
    qe_conn *c = k ? class_path(p, k) : NULL;
    if (c != NULL) {
      p->classed_out++;
      send_unsequenced(c, hdr, vv, vcnt, total, ts);
      return;
    }
  }
  /* An ACK takes no hold: the scheduler's delay for the bond is not
   * worked out for it. */
  n = pick_held(p, to, ack ? NULL : &hold);
  if (n == 0) {
    p->drop_not_up++;
    return;
  }
  if (n == 1 && ack) {
    /*
     * Outside the sequence, on the path the scheduler picked (the ACKs
     * spread over the paths as data does), delivered on arrival: in the
     * sequence, an ACK waited at the far end for every packet numbered
     * before it, and beside an upload those are the upload's, queued
     * behind the uplinks' bottlenecks, lost and repaired. The download's
     * round trip grew by that queue: two 8/30 Mbit/s uplinks carried
     * 30-37 Mbit/s of a download beside a full upload, 52-53 now
     * (test/e2e/lab-bond.test.ts); seed 181310126 mix 2, -P4: 22-24
     * Mbit/s, 63-109 now (four runs). TCP takes an older cumulative ACK
     * as old, so ACKs that overtake each other or the flow's data cost
     * nothing.
     * Ahead of the path's queue and past its bulk cap: the cap is for
     * data, measured on data. A path that had carried only ACKs (a
     * download's, the way up) measured a rate of about 1 Mbit/s; when an
     * upload's ACKs all came to it (its other path cut), they queued
     * behind that cap, which never grew with a few packets in flight, and
     * the upload ran at 35 Mbit/s of 90. The flow stays in the sequence:
     * no traffic class takes its packets (classify).
     */
    qe_flow_sequenced(p->flows, pi->flow, ts);
    p->acks_out++;
    send_unsequenced(to[0], hdr, vv, vcnt, total, ts);
    return;
  }
  if (n == 1 && to[0]->txq.count > 0) {
    /* It will wait in the path's queue: a drop (full, or early) happens
     * before it takes a sequence number. A hole in the sequence would hold
     * the receiver's later packets for the whole reorder wait, and TCP
     * inside sees the loss either way. */
    if (!qe_conn_admit(to[0], total + QE_BOND_HDR, ts)) {
      return;
    }
    number(p, hdr, pi, hold, ts);
    qe_conn_forward_admitted(to[0], vv, vcnt + 1, total + QE_BOND_HDR, ts);
    return;
  }
  number(p, hdr, pi, hold, ts);
  for (size_t i = 0; i < n; i++) {
    /* May close to[i]: nothing below touches it again. */
    qe_conn_forward(to[i], vv, vcnt + 1, total + QE_BOND_HDR, ts);
  }
}

void qe_bond_recv(qe_conn *c, const uint8_t *data, size_t len) {
  qe_peer *p = c->peer;
  uint32_t seq;
  uint64_t hold, due;
  if (len <= QE_BOND_HDR || p == NULL) {
    c->eng->g.malformed++;
    return;
  }
  c->path.pkts_in++;
  c->path.bytes_in += len - QE_BOND_HDR;
  if (data[0] & 0x80) {
    /* A traffic class's packet or a pure ACK, outside the sequence. */
    p->classed_in++;
    p->rb.delivered++;
    rb_deliver(p, data + QE_BOND_HDR, len - QE_BOND_HDR);
    return;
  }
  seq = ((uint32_t)data[0] << 24) | ((uint32_t)data[1] << 16) |
        ((uint32_t)data[2] << 8) | data[3];
  hold = ((uint64_t)data[4] << 8 | data[5]) * QE_BOND_HOLD_UNIT_NS;
  /* Never held past the longest a gap is waited on. Held ones come due on
   * whole milliseconds: a timer a millisecond at most, not one per packet. */
  hold = hold < c->eng->reorder_max_ns ? hold : c->eng->reorder_max_ns;
  due = c->eng->now;
  if (hold) {
    due = (due + hold + QE_BOND_DUE_NS - 1) / QE_BOND_DUE_NS * QE_BOND_DUE_NS;
  }
  qe_reorder_push(&p->rb, seq, data + QE_BOND_HDR, len - QE_BOND_HDR,
                  c->eng->now, due, rb_deliver, p);
}

/* ---- liveness, reorder timeouts, re-dialling ---- */

/* Sends one rescued datagram of c again; 0: stop (the paths changed). */
static int rescue_one(qe_peer *p, qe_conn *c, ngtcp2_vec *v, qe_ts ts) {
  qe_conn *to = resend_path(p, v->base);
  if (to == NULL || to == c) {
    return 1;
  }
  p->resent++;
  return resend_on(to, v, ts) != QE_SEND_CLOSED;
}

/*
 * Moves what waits in c's queue to the paths the scheduler picks, ahead of
 * their queues: newest first, so that they leave oldest first. What it
 * would keep on c, or has no path for, stays queued. Each moved counts in
 * *moved. 0: the paths changed under us (a send closed one).
 */
static int move_queue(qe_peer *p, qe_conn *c, uint64_t *moved, qe_ts ts) {
  size_t len;
  uint8_t *pkt;
  while ((pkt = qe_txq_back(&c->txq, &len)) != NULL) {
    ngtcp2_vec v = {.base = pkt, .len = len};
    qe_conn *to = resend_path(p, v.base);
    if (to == NULL || to == c) {
      return 1;
    }
    qe_txq_pop_back(&c->txq);
    (*moved)++;
    if (resend_on(to, &v, ts) == QE_SEND_CLOSED) {
      return 0;
    }
  }
  return 1;
}

/*
 * Sends what c has not delivered on the other paths: what waits in its
 * queue, and what it sent that is not acknowledged, newest first (they go
 * ahead of the others' queues, so they leave oldest first).
 */
void qe_bond_rescue(qe_engine *e, qe_conn *c, qe_ts ts) {
  qe_peer *p = c->peer;
  (void)e;
  if (c->path.sent_id == NULL || p == NULL ||
      !move_queue(p, c, &p->resent, ts)) {
    return;
  }
  for (size_t n = 0; n < QE_SENT_SLOTS; n++) {
    /* From the newest sent back: dgram_id - 1 is the last one. */
    size_t slot = (c->dgram_id + QE_SENT_SLOTS - 1 - n) % QE_SENT_SLOTS;
    ngtcp2_vec v;
    if (c->path.sent_id[slot] == 0) {
      continue;
    }
    c->path.sent_id[slot] = 0;
    v.base = c->path.sent_buf + slot * c->txq.slotsize;
    v.len = c->path.sent_len[slot];
    if (!rescue_one(p, c, &v, ts)) {
      return;
    }
  }
}

/* Where a datagram the QUIC stack declared lost goes again: in aggregate
 * mode the path that delivers it first from the head of its queue
 * (qe_sched_repair), counting the re-sends put there before it that have
 * not left yet (repair_q, drained at the path's rate), so that a burst of
 * losses spreads; else as resend_path. NULL: no path. */
static qe_conn *repair_path(qe_peer *p, const uint8_t *dgram, qe_ts ts) {
  qe_sched_path v[QE_MAX_PATHS];
  size_t k;
  if ((dgram[0] & 0x80) || p->mode != QE_MODE_AGGREGATE) {
    return resend_path(p, dgram);
  }
  view(p, v);
  for (size_t i = 0; i < p->npaths; i++) {
    const qe_path *x = &p->paths[i]->path;
    v[i].queued = qe_sched_left(&v[i], x->repair_q,
                                ts > x->repair_ts ? ts - x->repair_ts : 0);
  }
  k = qe_sched_repair(v, p->npaths);
  if (k == QE_SCHED_NONE) {
    return resend_path(p, dgram);
  }
  p->paths[k]->path.repair_q = v[k].queued + p->paths[k]->max_udp;
  p->paths[k]->path.repair_ts = ts;
  return p->paths[k];
}

void qe_bond_resend_lost(qe_engine *e, qe_ts ts) {
  e->lost_pending = 0;
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c = &e->conns[e->active[i]];
    qe_peer *p = c->peer;
    size_t n = c->path.nlost;
    c->path.nlost = 0;
    if (n == 0 || p == NULL || !p->bonded) {
      continue;
    }
    for (size_t k = n; k-- > 0;) {
      /* Newest first: they go ahead of the queue, and leave oldest first. */
      size_t slot = c->path.lost_slots[k];
      qe_conn *to;
      ngtcp2_vec v;
      if (c->path.sent_id[slot] == 0) {
        continue;
      }
      /* A copy: sending on c may reuse this very slot. */
      v.base = e->scratch2;
      v.len = c->path.sent_len[slot];
      memcpy(e->scratch2, c->path.sent_buf + slot * c->txq.slotsize, v.len);
      c->path.sent_id[slot] = 0;
      if ((to = repair_path(p, e->scratch2, ts)) == NULL) {
        continue;
      }
      p->lost_resent++;
      if (resend_on(to, &v, ts) == QE_SEND_CLOSED) {
        return; /* the paths changed under us: the rest is TCP's */
      }
    }
  }
}

/* Each alive path's early-drop slack (qe_aqm): half the difference between
 * the bond's highest lowest-RTT and its own. */
static void aqm_slack(qe_peer *p, const uint64_t min_rtt[QE_MAX_PATHS]) {
  uint64_t top = 0;
  for (size_t i = 0; i < p->npaths; i++) {
    if (min_rtt[i] > top) {
      top = min_rtt[i];
    }
  }
  for (size_t i = 0; i < p->npaths; i++) {
    if (min_rtt[i]) {
      p->paths[i]->path.aqm.slack_ns = (top - min_rtt[i]) / 2;
    }
  }
}

/* Whether c is still a path of p (a rescue or a move may close paths). */
static int is_path_of(const qe_peer *p, const qe_conn *c) {
  for (size_t k = 0; k < p->npaths; k++) {
    if (p->paths[k] == c) {
      return 1;
    }
  }
  return 0;
}

static void peer_tick(qe_engine *e, qe_peer *p, qe_ts ts) {
  uint64_t lo = UINT64_MAX, hi = 0, min_rtt[QE_MAX_PATHS] = {0};
  qe_conn *rescue[QE_MAX_PATHS], *stale[QE_MAX_PATHS], *held[QE_MAX_PATHS];
  int carried[QE_MAX_PATHS]; /* rescue[i] was loaded: it had a load to move */
  size_t nrescue = 0, nstale = 0, nheld = 0;
  p->suspect_ts = UINT64_MAX;
  for (size_t i = 0; i < p->npaths; i++) {
    qe_conn *c = p->paths[i];
    ngtcp2_conn_stat cs;
    qe_ts quiet;
    int loaded;
    if (c->state != QE_CONN_UP) {
      continue;
    }
    ngtcp2_conn_get_conn_stat(c->conn, &cs);
    quiet = silence(c, &cs, ts);
    loaded = qe_path_loaded(c, &cs);
    if (!c->path.dead && quiet > qe_sched_dead_after(cs.smoothed_rtt, loaded)) {
      c->path.dead = 1;
      carried[nrescue] = loaded;
      rescue[nrescue++] = c; /* what it sent since it was suspect, if any */
      qe_engine_emit(e, QE_EV_PATH_DOWN, c, "dead", NULL, 0);
      if (p->conn == c) {
        for (size_t k = 0; k < p->npaths; k++) {
          if (path_alive(p->paths[k])) {
            p->conn = p->paths[k];
            break;
          }
        }
      }
    } else if (c->path.dead && ts < c->last_rx_ts + QE_PATH_DEAD_MIN_NS / 2) {
      /* Heard again (our keep-alive PINGs are the probe). */
      c->path.dead = 0;
      qe_engine_emit(e, QE_EV_PATH_UP, c, NULL, NULL, 0);
    }
    if (c->path.dead) {
      if (!c->server && ts > c->last_rx_ts + QE_PATH_RECYCLE_NS) {
        stale[nstale++] = c;
      }
      continue;
    }
    if (suspect(c, ts)) {
      /* Suspect: no new packets. Its backlog goes to the others only
       * once it is also quieter than it has ever been lately. */
      uint64_t tol = qe_gap_tolerance(&c->path.gap, ts);
      if (!rescued(c) && quiet > tol && another_alive(p, c, ts)) {
        c->path.rescue_ts = ts; /* once, until heard again */
        carried[nrescue] = loaded;
        rescue[nrescue++] = c;
      } else if (!rescued(c) && quiet <= tol &&
                 ts + (tol - quiet) + 1 < p->suspect_ts) {
        p->suspect_ts = ts + (tol - quiet) + 1; /* look again then */
      }
    } else {
      qe_ts at = oldest_sent(c);
      if (at != 0) {
        at += ngtcp2_conn_get_pto(c->conn);
        if (at < p->suspect_ts) {
          p->suspect_ts = at;
        }
      }
      if (qe_sched_throttled(cs.cwnd, qe_path_cap(c, &cs))) {
        p->aqm_grace_ts = ts + QE_THROTTLE_GRACE_NS;
        if (c->txq.count) {
          held[nheld++] = c;
        }
      }
    }
    if (cs.min_rtt != UINT64_MAX) {
      min_rtt[i] = cs.min_rtt;
    }
    if (cs.smoothed_rtt < lo) {
      lo = cs.smoothed_rtt;
    }
    if (cs.smoothed_rtt > hi) {
      hi = cs.smoothed_rtt;
    }
  }
  if (hi >= lo) {
    /* Long enough for a loss on the slowest path to be repaired
     * (qe_reorder_wait). Early drops take no sequence number, so a gap is
     * a loss the sender repairs or reordering: waiting for it costs
     * little, and TCP inside seeing it costs a congestion-window cut. */
    uint64_t t = qe_reorder_wait(hi);
    p->rb.timeout_ns = t > e->reorder_max_ns ? e->reorder_max_ns : t;
  }
  aqm_slack(p, min_rtt);
  qe_reorder_tick(&p->rb, ts, rb_deliver, p);
  for (size_t i = 0; i < nrescue; i++) {
    /* Suspect or dead: re-send what it has not delivered, and its load
     * moves to the others: their startup begins again. Only if it had a
     * load (a few packets in flight): startup lets each survivor queue 4
     * BDPs, and for a path that carried nothing, nothing moves. A cut of
     * an idle 17 Mbit/s uplink restarted a 2.6%-lossy 107 Mbit/s one: its
     * queue grew from 50 to 1270 kB, its link dropped 104 packets in 60
     * ms, and the bond stalled on their repair (`bench/multipath --random
     * 20 --seed 810805939 --mix 2`, both directions, -P4, cut). */
    if (is_path_of(p, rescue[i])) {
      for (size_t k = 0; carried[i] && k < p->npaths; k++) {
        if (p->paths[k] != rescue[i] && path_alive(p->paths[k])) {
          qe_rate_restart(&p->paths[k]->path.rate);
        }
      }
      qe_bond_rescue(e, rescue[i], ts);
    }
  }
  for (size_t i = 0; i < nheld; i++) {
    /* Throttled (qe_sched_throttled): its queue goes to the others. */
    if (is_path_of(p, held[i])) {
      move_queue(p, held[i], &p->moved, ts);
    }
  }
  for (size_t i = 0; i < nstale && lo != UINT64_MAX; i++) {
    /* Only while another path is alive (lo: some alive path's RTT): with
     * every path silent the keep-alives and the idle timeout decide. */
    if (is_path_of(p, stale[i])) {
      qe_conn_close(stale[i], "dead", QE_APP_NO_ERROR, ts);
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

static int plain_conn_to(qe_engine *e, const qe_bond_target *t) {
  for (size_t i = 0; i < e->nactive; i++) {
    const qe_conn *c = &e->conns[e->active[i]];
    if (!c->is_path &&
        qe_sockaddr_eq((const struct sockaddr *)&c->remote,
                       (const struct sockaddr *)&t->addr)) {
      return 1;
    }
  }
  return 0;
}

void qe_bond_refused(qe_engine *e, const qe_conn *c) {
  for (size_t k = 0; k < QE_MAX_TARGETS; k++) {
    qe_bond_target *t = &e->targets[k];
    if (t->used && qe_sockaddr_eq((const struct sockaddr *)&t->addr,
                                  (const struct sockaddr *)&c->remote)) {
      t->refused = 1;
    }
  }
}

void qe_bond_set_reorder(qe_engine *e, uint64_t max_ns, size_t max_bytes) {
  e->reorder_max_ns = max_ns;
  e->reorder_max_bytes = max_bytes;
  for (size_t i = 0; i < e->npeers; i++) {
    qe_peer *p = &e->peers[i];
    p->rb.max_bytes = max_bytes;
    if (p->rb.timeout_ns > max_ns) {
      p->rb.timeout_ns = max_ns;
    }
  }
}

void qe_bond_tick(qe_engine *e, qe_ts ts) {
  int targets = 0;
  for (size_t i = 0; i < e->npeers && e->nbonded; i++) {
    qe_peer *p = &e->peers[i];
    if (p->bonded && p->npaths) {
      if (ts >= e->bond_next_ts || qe_reorder_deadline(&p->rb) <= ts ||
          p->suspect_ts <= ts) {
        peer_tick(e, p, ts);
      }
    }
  }
  if (ts < e->bond_next_ts) {
    return;
  }
  qe_uplinks_check(e, ts);
  for (size_t k = 0; k < QE_MAX_TARGETS; k++) {
    qe_bond_target *t = &e->targets[k];
    if (!t->used) {
      continue;
    }
    if (t->refused) {
      /* It accepts no bonded paths: one plain connection instead. */
      t->used = 0;
      if (!plain_conn_to(e, t)) {
        qe_conn_client_new(e, (struct sockaddr *)&t->addr, t->addrlen, 0, ts);
      }
      continue;
    }
    targets = 1;
    for (size_t u = 0; u < QE_MAX_UPLINKS; u++) {
      if (!e->uplinks[u].open || have_path(e, t, u) ||
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
      if (p->suspect_ts < x) {
        x = p->suspect_ts;
      }
    }
  }
  return x;
}

void qe_bond_flush(qe_engine *e) {
  for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
    qe_uplink *u = &e->uplinks[i];
    if (u->open && u->tx.nmsgs) {
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
      free(e->peers[i].flows);
      e->peers[i].flows = NULL;
    }
  }
}
