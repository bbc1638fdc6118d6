/*
 * Uplinks (bonding): the kernel interfaces bonded paths send through, each
 * with its own UDP socket bound to the device. Worker thread only.
 */
#include "engine_int.h"

#include <net/if.h>
#include <string.h>
#include <sys/epoll.h>

/* Binds the uplink's socket to its device; 0, or -1 if it cannot (yet). */
static int uplink_open(qe_engine *e, qe_uplink *u) {
  struct epoll_event ev = {.events = EPOLLIN};
  unsigned idx = if_nametoindex(u->name);
  if (idx == 0 ||
      qe_udp_open(&u->udp, e->udp.family == AF_INET6 ? "::" : "0.0.0.0", 0,
                  u->name) != 0 ||
      qe_udp_set_mark(&u->udp, e->cfg.fwmark) != 0) {
    qe_udp_close(&u->udp);
    return -1;
  }
  ev.data.u32 = TAG_UPLINK0 + (uint32_t)(u - e->uplinks);
  epoll_ctl(e->epfd, EPOLL_CTL_ADD, u->udp.fd, &ev);
  u->ifindex = idx;
  u->open = 1;
  return 0;
}

/* Closes the uplink's paths and socket; the uplink stays wanted. */
static void uplink_close(qe_engine *e, qe_uplink *u, qe_ts ts) {
  int i = (int)(u - e->uplinks);
  if (!u->open) {
    return;
  }
  for (size_t k = e->nactive; k-- > 0;) {
    qe_conn *c = &e->conns[e->active[k]];
    if (c->uplink == i) {
      qe_conn_close(c, "closed", QE_APP_NO_ERROR, ts);
    }
  }
  if (u->tx.nmsgs) {
    qe_udp_flush(&u->udp, &u->tx);
  }
  u->tx.nmsgs = 0;
  epoll_ctl(e->epfd, EPOLL_CTL_DEL, u->udp.fd, NULL);
  qe_udp_close(&u->udp);
  u->open = 0;
  u->ifindex = 0;
}

void qe_uplinks_check(qe_engine *e, qe_ts ts) {
  if (ts < e->uplinks_checked_ts + QE_UPLINK_CHECK_NS) {
    return;
  }
  e->uplinks_checked_ts = ts;
  for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
    qe_uplink *u = &e->uplinks[i];
    if (!u->used) {
      continue;
    }
    if (u->open && if_nametoindex(u->name) != u->ifindex) {
      uplink_close(e, u, ts); /* gone, or a new device of that name */
    }
    if (!u->open) {
      uplink_open(e, u);
    }
  }
}

/* Replaces the uplinks: same name keeps its socket (settings updated),
 * a removed one closes its paths and socket, a new one opens (or waits for
 * its device to appear). */
void qe_uplinks_apply(qe_engine *e, const qe_uplink_conf *want, size_t n,
                      qe_ts ts) {
  for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
    qe_uplink *u = &e->uplinks[i];
    int keep = 0;
    if (!u->used) {
      continue;
    }
    for (size_t k = 0; k < n; k++) {
      if (strcmp(want[k].name, u->name) == 0) {
        keep = 1;
        u->weight = want[k].weight;
        u->priority = want[k].priority;
        u->role = want[k].role;
        u->cost = want[k].cost;
        u->rate_bps = want[k].rate_bps;
        u->rank = (uint8_t)k;
      }
    }
    if (keep) {
      continue;
    }
    uplink_close(e, u, ts);
    qe_udp_tx_free(&u->tx);
    memset(u, 0, sizeof(*u));
  }
  for (size_t k = 0; k < n; k++) {
    int have = 0;
    qe_uplink *slot = NULL;
    for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
      if (e->uplinks[i].used && strcmp(e->uplinks[i].name, want[k].name) == 0) {
        have = 1;
      } else if (!e->uplinks[i].used && slot == NULL) {
        slot = &e->uplinks[i];
      }
    }
    if (have || slot == NULL) {
      continue;
    }
    *slot = (qe_uplink){.weight = want[k].weight,
                        .priority = want[k].priority,
                        .role = want[k].role,
                        .cost = want[k].cost,
                        .rate_bps = want[k].rate_bps,
                        .rank = (uint8_t)k};
    memcpy(slot->name, want[k].name, sizeof(slot->name));
    slot->udp.fd = -1;
    if (qe_udp_tx_init(&slot->tx, 256 * 1024, 256) != 0) {
      memset(slot, 0, sizeof(*slot));
      qe_engine_emit(e, QE_EV_ERROR, NULL, "uplink-failed", NULL, 0);
      continue;
    }
    slot->used = 1;
    if (uplink_open(e, slot) != 0) {
      /* Not there (yet): checked again every QE_UPLINK_CHECK_NS. */
      qe_engine_emit(e, QE_EV_ERROR, NULL, "uplink-waiting", NULL, 0);
    }
  }
}
