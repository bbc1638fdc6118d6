/*
 * The data path between the TUN device and the connections: destination
 * lookup towards a peer, source check (anti-spoofing) from a peer.
 */
#include "engine_int.h"

#include <string.h>

/* Where the addresses of an IP packet are, after a sanity check of the
 * header against the packet's real length `len`. */
static int ip_parse(const uint8_t *pkt, size_t hdrlen, size_t len,
                    const uint8_t **src, const uint8_t **dst, int *family) {
  if (hdrlen < 20) {
    return -1;
  }
  switch (pkt[0] >> 4) {
  case 4: {
    size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
    size_t total = ((size_t)pkt[2] << 8) | pkt[3];
    if (ihl < 20 || ihl > hdrlen || total != len) {
      return -1;
    }
    *src = pkt + 12;
    *dst = pkt + 16;
    *family = 4;
    return 0;
  }
  case 6: {
    size_t plen = ((size_t)pkt[4] << 8) | pkt[5];
    if (hdrlen < 40 || plen + 40 != len) {
      return -1;
    }
    *src = pkt + 8;
    *dst = pkt + 24;
    *family = 6;
    return 0;
  }
  default:
    return -1;
  }
}

static uint32_t route_lookup(const qe_routes *r, int family,
                             const uint8_t *addr) {
  if (r == NULL) {
    return QE_FIB_NONE;
  }
  return family == 4 ? qe_fib_lookup4(r->fib, addr)
                     : qe_fib_lookup6(r->fib, addr);
}

typedef struct fwd_ctx {
  qe_engine *e;
  qe_ts ts;
} fwd_ctx;

/* The policy's verdict on a packet either way (1 pass, 0 drop; counted by
 * the tracker per reason and by the table per rule). No policy: pass. */
static int policy_pass(qe_engine *e, const uint8_t *hdr, size_t hdrlen,
                       size_t total, qe_ts ts) {
  qe_ct_verdict v;
  if (e->acl == NULL || e->ct == NULL) {
    return 1;
  }
  if (ts == 0) {
    ts = qe_now();
  }
  return qe_ct_check_hdr(e->ct, e->acl, e->acl_gen, hdr, hdrlen, total,
                         ts / 1000000, &v);
}

/* One IP packet from the TUN, as a header part and an optional payload. */
static void forward_one(void *arg, const uint8_t *hdr, size_t hdrlen,
                        const uint8_t *payload, size_t paylen) {
  fwd_ctx *ctx = arg;
  qe_engine *e = ctx->e;
  size_t total = hdrlen + paylen;
  const uint8_t *src, *dst;
  int family;
  uint32_t idx;
  qe_peer *p;
  qe_conn *c;
  ngtcp2_vec v[2] = {{.base = (uint8_t *)hdr, .len = hdrlen},
                     {.base = (uint8_t *)payload, .len = paylen}};
  e->g.tun_rx++;
  if (ip_parse(hdr, hdrlen, total, &src, &dst, &family) != 0) {
    e->g.malformed++;
    return;
  }
  idx = route_lookup(e->routes, family, dst);
  if (idx == QE_FIB_NONE) {
    e->g.no_route++;
    return;
  }
  if (!policy_pass(e, hdr, hdrlen, total, ctx->ts)) {
    return;
  }
  p = e->routes->peers[idx];
  c = p ? p->conn : NULL;
  if (c == NULL) {
    e->g.no_peer++;
    if (p) {
      p->drop_not_up++;
    }
    return;
  }
  if (total > c->max_dgram) {
    e->g.too_big++;
    p->drop_too_big++;
    memcpy(e->scratch2, hdr, hdrlen);
    if (paylen) {
      memcpy(e->scratch2 + hdrlen, payload, paylen);
    }
    qe_icmp_too_big(e, e->scratch2, total, c->max_dgram, ctx->ts);
    return;
  }
  if (p->bonded) {
    qe_bond_send(e, p, v, paylen ? 2 : 1, total, ctx->ts);
    return;
  }
  qe_conn_forward(c, v, paylen ? 2 : 1, total, ctx->ts);
}

void qe_forward_from_tun(qe_engine *e, uint8_t *pkt, size_t len, qe_ts ts) {
  fwd_ctx ctx = {.e = e, .ts = ts};
  if (e->tun.vnet_hdr) {
    if (qe_tun_split(pkt, len, e->hdr_scratch, forward_one, &ctx) < 0) {
      e->g.malformed++;
    }
    return;
  }
  forward_one(&ctx, pkt, len, NULL, 0);
}

int qe_engine_tun_write(qe_engine *e, const uint8_t *pkt, size_t len) {
  if (e->tun.vnet_hdr) {
    int rv = qe_gro_flush(&e->gro, &e->tun);
    return qe_tun_write_vnet(&e->tun, pkt, len) || rv ? QE_ERR_SYS : 0;
  }
  return qe_tun_write(&e->tun, pkt, len);
}

void qe_forward_to_tun(qe_conn *c, const uint8_t *pkt, size_t len) {
  qe_forward_to_tun_peer(c->eng, c->peer, pkt, len);
}

void qe_forward_to_tun_peer(qe_engine *e, qe_peer *p, const uint8_t *pkt,
                            size_t len) {
  const uint8_t *src, *dst;
  int family, rv;
  uint32_t idx;
  if (ip_parse(pkt, len, len, &src, &dst, &family) != 0) {
    e->g.malformed++;
    return;
  }
  idx = route_lookup(e->routes, family, src);
  if (idx == QE_FIB_NONE || e->routes->peers[idx] != p) {
    e->g.spoofed++;
    p->drop_spoofed++;
    return;
  }
  if (!policy_pass(e, pkt, len, len, 0)) {
    return;
  }
  rv = e->tun.vnet_hdr ? qe_gro_add(&e->gro, &e->tun, pkt, len)
                       : qe_tun_write(&e->tun, pkt, len);
  if (rv != 0) {
    e->g.tun_tx_errors++;
    return;
  }
  e->g.tun_tx++;
  p->packets_in++;
  p->bytes_in += len;
}
