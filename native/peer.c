/*
 * Peers: the connections of each peer key, and the layer a connection
 * reports to. A connection (quic_conn.c, txq.c, ctrl_stream.c) calls
 * upward only through the qe_conn_up table here (engine->up): a slot, the
 * allowed check, established, datagram, control message, closed. Plain
 * connections join their peer here; bonded paths through bond.c.
 * Worker thread only.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

qe_peer *qe_engine_peer_get(qe_engine *e, const uint8_t key[QE_KEYLEN],
                            int create) {
  for (size_t i = 0; i < e->npeers; i++) {
    if (memcmp(e->peers[i].key, key, QE_KEYLEN) == 0) {
      return &e->peers[i];
    }
  }
  if (!create || e->npeers >= QE_MAX_PEERS) {
    return NULL;
  }
  qe_peer *p = &e->peers[e->npeers++];
  *p = (qe_peer){.used = 1};
  memcpy(p->key, key, QE_KEYLEN);
  return p;
}

static int key_cmp(const void *a, const void *b) {
  return memcmp(a, b, QE_KEYLEN);
}

int qe_engine_key_allowed(const qe_engine *e, const uint8_t key[QE_KEYLEN]) {
  return e->nallowed > 0 &&
         bsearch(key, e->allowed, e->nallowed, QE_KEYLEN, key_cmp) != NULL;
}

void qe_engine_note_refused(qe_engine *e, qe_conn *c, qe_ts ts) {
  e->g.refused++;
  for (size_t i = 0; i < QE_REFUSED_RING; i++) {
    qe_refused_entry *r = &e->refused[i];
    if (r->ts != 0 && memcmp(r->key, c->peer_key, QE_KEYLEN) == 0) {
      if (ts - r->ts < 60 * 1000000000ULL) {
        return; /* one event per key per minute */
      }
      r->ts = ts;
      qe_engine_emit(e, QE_EV_REFUSED, c, "not-allowed", NULL, 0);
      return;
    }
  }
  qe_refused_entry *r = &e->refused[e->refused_next++ % QE_REFUSED_RING];
  memcpy(r->key, c->peer_key, QE_KEYLEN);
  r->ts = ts ? ts : 1;
  qe_engine_emit(e, QE_EV_REFUSED, c, "not-allowed", NULL, 0);
}

/* ---- which connection a peer keeps ---- */

static const uint8_t *client_key(const qe_conn *c) {
  return c->server ? c->peer_key : c->eng->id.pubkey;
}

/*
 * Two connections to one peer: which stays. Dials that crossed (created
 * within a few seconds of each other) keep the one whose client has the
 * lower key, the same answer on both sides; otherwise the newer one wins,
 * because the peer must have restarted and forgotten the old one. Before
 * either: a direct connection beats one through a relay.
 */
static int conn_wins(const qe_conn *nc, const qe_conn *old) {
  if (nc->relayed != old->relayed) {
    return !nc->relayed; /* direct beats relayed, both sides alike */
  }
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

/* ---- the connection's upward handlers ---- */

/* Established and allowed, its resources in place: joins its peer, as the
 * plain connection or as a path (bond.c). May close it, or older ones. */
static void conn_joined(qe_conn *c, qe_ts ts) {
  qe_engine *e = c->eng;
  qe_peer *p = qe_engine_peer_get(e, c->peer_key, 1);
  if (p == NULL) {
    qe_conn_close(c, "error", QE_APP_NO_ERROR, ts);
    return;
  }
  c->peer = p;
  if (c->is_path) {
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
      qe_conn_close_quiet(c, "replaced", QE_APP_DUPLICATE, ts);
      return;
    }
    qe_conn_close(p->conn, "replaced", QE_APP_DUPLICATE, ts);
  }
  p->conn = c;
  c->announced = 1;
  qe_engine_emit(e, QE_EV_PEER_UP, c, NULL, NULL, 0);
  qe_conn_ctl_resume(c, ts);
}

static void conn_datagram(qe_conn *c, const uint8_t *data, size_t len) {
  if (c->announced && c->is_path) {
    qe_bond_recv(c, data, len);
    return;
  }
  if (!c->announced) {
    if (c->peer) {
      c->peer->drop_not_up++;
    } else {
      c->eng->g.no_peer++;
    }
    return;
  }
  qe_forward_to_tun(c, data, len);
}

static void conn_control(qe_conn *c, uint8_t *msg, size_t len) {
  qe_engine_emit(c->eng, QE_EV_CONTROL, c, NULL, msg, len);
}

/* Leaves its peer, tells the control plane (unless silent), frees the
 * slot. */
static void conn_closed(qe_conn *c, const char *reason, int silent,
                        qe_ts ts) {
  qe_engine *e = c->eng;
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

static void conn_bond_refused(qe_conn *c) {
  qe_bond_refused(c->eng, c);
}

static void conn_release(qe_conn *c) {
  qe_engine_conn_release(c->eng, c);
}

const qe_conn_up qe_peer_conn_up = {
    .alloc = qe_engine_conn_alloc,
    .release = conn_release,
    .allowed = qe_engine_key_allowed,
    .established = conn_joined,
    .datagram = conn_datagram,
    .control = conn_control,
    .closed = conn_closed,
    .bond_refused = conn_bond_refused,
};
