#include "tun_offload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

typedef struct qe_vnet_hdr {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
} __attribute__((packed)) qe_vnet_hdr;

_Static_assert(sizeof(qe_vnet_hdr) == QE_VNET_HDRLEN, "vnet header size");

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/*
 * One's complement sum of native-order 16-bit words; byte order does not
 * matter for the result (RFC 1071), as long as it is stored back natively.
 */
uint64_t qe_csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  while (len >= 8) {
    uint64_t x;
    memcpy(&x, p, 8);
    sum += (x & 0xffffffffu) + (x >> 32);
    p += 8;
    len -= 8;
  }
  while (len >= 2) {
    uint16_t x;
    memcpy(&x, p, 2);
    sum += x;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint8_t tail[2] = {p[0], 0};
    uint16_t x;
    memcpy(&x, tail, 2);
    sum += x;
  }
  return sum;
}

uint16_t qe_csum_fold(uint64_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return (uint16_t)sum;
}

/* Pseudo-header sum for TCP over IPv4/IPv6, native order. */
static uint64_t pseudo_sum(const uint8_t *ip, int family, size_t l4len) {
  uint8_t tail[4] = {0, 6, (uint8_t)(l4len >> 8), (uint8_t)l4len};
  uint64_t sum = family == 4 ? qe_csum_add(0, ip + 12, 8)
                             : qe_csum_add(0, ip + 8, 32);
  if (family == 6) {
    uint8_t hi[4] = {0, 0, (uint8_t)(l4len >> 24), (uint8_t)(l4len >> 16)};
    sum = qe_csum_add(sum, hi, 4);
  }
  return qe_csum_add(sum, tail, 4);
}

static void store_csum(uint8_t *at, uint16_t folded_complemented) {
  memcpy(at, &folded_complemented, 2);
}

static int split_tcp(uint8_t *pkt, size_t len, const qe_vnet_hdr *vh,
                     uint8_t *scratch, qe_emit_fn emit, void *ctx) {
  int family = pkt[0] >> 4;
  size_t iphl, thl, hdrlen, plen, mss = vh->gso_size;
  uint32_t seq0;
  uint16_t id0 = 0;
  uint8_t flags;
  int n = 0;
  if (family == 4) {
    iphl = (size_t)(pkt[0] & 0x0f) * 4;
    if (iphl < 20 || len < iphl + 20 || pkt[9] != 6) {
      return QE_ERR_INVALID;
    }
    id0 = rd16(pkt + 4);
  } else if (family == 6) {
    iphl = 40;
    if (len < 60 || pkt[6] != 6) {
      return QE_ERR_INVALID;
    }
  } else {
    return QE_ERR_INVALID;
  }
  thl = (size_t)(pkt[iphl + 12] >> 4) * 4;
  hdrlen = iphl + thl;
  if (thl < 20 || hdrlen > len || hdrlen > 120 || mss == 0) {
    return QE_ERR_INVALID;
  }
  plen = len - hdrlen;
  seq0 = rd32(pkt + iphl + 4);
  flags = pkt[iphl + 13];
  for (size_t off = 0, seg = 0; off < plen || (plen == 0 && seg == 0);
       off += mss, seg++) {
    size_t chunk = plen - off < mss ? plen - off : mss;
    int last = off + chunk >= plen;
    uint8_t *h = scratch, *tcp = scratch + iphl;
    uint64_t sum;
    memcpy(h, pkt, hdrlen);
    if (family == 4) {
      wr16(h + 2, (uint16_t)(hdrlen + chunk));
      wr16(h + 4, (uint16_t)(id0 + seg));
      h[10] = h[11] = 0;
      store_csum(h + 10, (uint16_t)~qe_csum_fold(qe_csum_add(0, h, iphl)));
    } else {
      wr16(h + 4, (uint16_t)(thl + chunk));
    }
    wr32(tcp + 4, seq0 + (uint32_t)off);
    tcp[13] = flags;
    if (!last) {
      tcp[13] &= (uint8_t) ~(TCP_FIN | TCP_PSH);
    }
    if (seg > 0) {
      tcp[13] &= (uint8_t)~TCP_CWR;
    }
    tcp[16] = tcp[17] = 0;
    sum = pseudo_sum(h, family, thl + chunk);
    sum = qe_csum_add(sum, tcp, thl);
    sum = qe_csum_add(sum, pkt + hdrlen + off, chunk);
    store_csum(tcp + 16, (uint16_t)~qe_csum_fold(sum));
    emit(ctx, h, hdrlen, pkt + hdrlen + off, chunk);
    n++;
    if (plen == 0) {
      break;
    }
  }
  return n;
}

int qe_tun_split(uint8_t *frame, size_t len, uint8_t *scratch, qe_emit_fn emit,
                 void *ctx) {
  qe_vnet_hdr vh;
  uint8_t *pkt = frame + QE_VNET_HDRLEN;
  if (len < QE_VNET_HDRLEN + 20) {
    return QE_ERR_INVALID;
  }
  memcpy(&vh, frame, sizeof(vh));
  len -= QE_VNET_HDRLEN;
  switch (vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
  case VIRTIO_NET_HDR_GSO_NONE:
    if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      /* Finish the partial checksum the kernel left for "hardware". */
      size_t start = vh.csum_start, at = start + vh.csum_offset;
      uint16_t c;
      if (start >= len || at + 2 > len) {
        return QE_ERR_INVALID;
      }
      c = (uint16_t)~qe_csum_fold(qe_csum_add(0, pkt + start, len - start));
      if (c == 0 && ((pkt[0] >> 4 == 4 && pkt[9] == 17) ||
                     (pkt[0] >> 4 == 6 && pkt[6] == 17))) {
        c = 0xffff; /* for UDP a zero checksum means "none" */
      }
      store_csum(pkt + at, c);
    }
    emit(ctx, pkt, len, NULL, 0);
    return 1;
  case VIRTIO_NET_HDR_GSO_TCPV4:
  case VIRTIO_NET_HDR_GSO_TCPV6:
    return split_tcp(pkt, len, &vh, scratch, emit, ctx);
  default:
    return QE_ERR_INVALID;
  }
}

/* Written as is: the kernel verifies its checksums itself. */
int qe_tun_write_vnet(qe_tun *tun, const uint8_t *pkt, size_t len) {
  qe_vnet_hdr vh = {0};
  struct iovec iov[2] = {{.iov_base = &vh, .iov_len = sizeof(vh)},
                         {.iov_base = (void *)pkt, .iov_len = len}};
  ssize_t r;
  do {
    r = writev(tun->fd, iov, 2);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? QE_ERR_SYS : 0;
}

int qe_gro_init(qe_gro *g) {
  *g = (qe_gro){0};
  g->buf = malloc(QE_GRO_MAX);
  return g->buf ? 0 : QE_ERR_NOMEM;
}

void qe_gro_free(qe_gro *g) {
  free(g->buf);
  *g = (qe_gro){0};
}

int qe_gro_flush(qe_gro *g, qe_tun *tun) {
  uint8_t *pkt = g->buf + QE_VNET_HDRLEN;
  qe_vnet_hdr vh = {0};
  ssize_t r;
  if (g->len == 0) {
    return 0;
  }
  if (g->nseg > 1) {
    size_t l4 = g->len - g->iphl;
    uint8_t *tcp = pkt + g->iphl;
    if (g->family == 4) {
      wr16(pkt + 2, (uint16_t)g->len);
      pkt[10] = pkt[11] = 0;
      store_csum(pkt + 10,
                 (uint16_t)~qe_csum_fold(qe_csum_add(0, pkt, g->iphl)));
    } else {
      wr16(pkt + 4, (uint16_t)l4);
    }
    /* CHECKSUM_PARTIAL: the field holds the pseudo-header sum. */
    store_csum(tcp + 16, qe_csum_fold(pseudo_sum(pkt, g->family, l4)));
    vh = (qe_vnet_hdr){
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
        .gso_type = g->family == 4 ? VIRTIO_NET_HDR_GSO_TCPV4
                                   : VIRTIO_NET_HDR_GSO_TCPV6,
        .hdr_len = (uint16_t)(g->iphl + g->thl),
        .gso_size = (uint16_t)g->mss,
        .csum_start = (uint16_t)g->iphl,
        .csum_offset = 16,
    };
  } else {
    vh.flags = VIRTIO_NET_HDR_F_DATA_VALID; /* verified in qe_gro_add */
  }
  memcpy(g->buf, &vh, sizeof(vh));
  do {
    r = write(tun->fd, g->buf, QE_VNET_HDRLEN + g->len);
  } while (r < 0 && errno == EINTR);
  g->writes++;
  g->segments += g->nseg;
  g->len = 0;
  g->nseg = 0;
  return r < 0 ? QE_ERR_SYS : 0;
}

/* Is `pkt` a TCP segment that may be merged at all? Fills its geometry. */
static int gro_candidate(const uint8_t *pkt, size_t len, int *family,
                         size_t *iphl, size_t *thl) {
  if (len < 40) {
    return 0;
  }
  if (pkt[0] >> 4 == 4) {
    *family = 4;
    *iphl = 20;
    /* No IP options, TCP, not a fragment. */
    if ((pkt[0] & 0x0f) != 5 || pkt[9] != 6 || (rd16(pkt + 6) & 0x3fff)) {
      return 0;
    }
  } else if (pkt[0] >> 4 == 6) {
    *family = 6;
    *iphl = 40;
    if (len < 60 || pkt[6] != 6) {
      return 0;
    }
  } else {
    return 0;
  }
  *thl = (size_t)(pkt[*iphl + 12] >> 4) * 4;
  if (*thl < 20 || *iphl + *thl >= len) {
    return 0; /* no payload: pure ACKs go through as they are */
  }
  /* Only plain data segments: ACK, optionally PSH (which ends a run). */
  if ((pkt[*iphl + 13] & ~TCP_PSH) != TCP_ACK) {
    return 0;
  }
  /* Like a NIC's GRO: merge only segments whose checksum verifies (the
   * merged packet's checksum is recomputed, so a bad one would be lost). */
  return qe_csum_fold(qe_csum_add(pseudo_sum(pkt, *family, len - *iphl),
                                  pkt + *iphl, len - *iphl)) == 0xffff;
}

static int gro_matches(const qe_gro *g, const uint8_t *pkt, size_t len,
                       int family, size_t iphl, size_t thl) {
  const uint8_t *cur = g->buf + QE_VNET_HDRLEN;
  size_t plen = len - iphl - thl;
  if (g->closed || family != g->family || thl != g->thl ||
      plen > g->mss || g->len + plen > 65535 ||
      rd32(pkt + iphl + 4) != g->next_seq) {
    return 0;
  }
  if (family == 4) {
    /* TOS, DF, TTL, protocol and both addresses. */
    if (pkt[1] != cur[1] || (pkt[6] & 0x40) != (cur[6] & 0x40) ||
        pkt[8] != cur[8] || memcmp(pkt + 12, cur + 12, 8) != 0) {
      return 0;
    }
  } else if (memcmp(pkt, cur, 4) != 0 || pkt[7] != cur[7] ||
             memcmp(pkt + 8, cur + 8, 32) != 0) {
    return 0;
  }
  /* Ports, ACK number, window and every option byte identical. */
  return memcmp(pkt + iphl, cur + iphl, 4) == 0 &&
         memcmp(pkt + iphl + 8, cur + iphl + 8, 4) == 0 &&
         memcmp(pkt + iphl + 14, cur + iphl + 14, 2) == 0 &&
         memcmp(pkt + iphl + 20, cur + iphl + 20, thl - 20) == 0;
}

int qe_gro_add(qe_gro *g, qe_tun *tun, const uint8_t *pkt, size_t len) {
  int family, rv = 0;
  size_t iphl, thl, plen;
  if (!gro_candidate(pkt, len, &family, &iphl, &thl)) {
    rv = qe_gro_flush(g, tun);
    return qe_tun_write_vnet(tun, pkt, len) || rv ? QE_ERR_SYS : 0;
  }
  plen = len - iphl - thl;
  if (g->len && gro_matches(g, pkt, len, family, iphl, thl)) {
    uint8_t *cur = g->buf + QE_VNET_HDRLEN;
    memcpy(cur + g->len, pkt + iphl + thl, plen);
    g->len += plen;
    g->nseg++;
    g->next_seq += (uint32_t)plen;
    if (pkt[iphl + 13] & TCP_PSH) {
      cur[iphl + 13] |= TCP_PSH;
      g->closed = 1;
    }
    if (plen < g->mss) {
      g->closed = 1;
    }
    return 0;
  }
  rv = qe_gro_flush(g, tun);
  memcpy(g->buf + QE_VNET_HDRLEN, pkt, len);
  g->len = len;
  g->nseg = 1;
  g->family = family;
  g->iphl = iphl;
  g->thl = thl;
  g->mss = plen;
  g->next_seq = rd32(pkt + iphl + 4) + (uint32_t)plen;
  g->closed = (pkt[iphl + 13] & TCP_PSH) != 0;
  return rv;
}
