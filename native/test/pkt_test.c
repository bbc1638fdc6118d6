/*
 * Packet parsing (pkt.c) on generated headers: random IPv4 (with and
 * without options, first and later fragments) and IPv6 packets of TCP, UDP
 * and other protocols are built field by field (TCP's flags too), parsed,
 * and every field compared with what was written; then the flow hash: the same five-tuple
 * hashes alike whatever else differs, and a change of any tuple field
 * changes it. Prints "N passed, M failed".
 */
#include "../pkt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned passed, failed;

#define check(cond, what, ...)                                                 \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      printf("FAIL %s: ", what);                                               \
      printf(__VA_ARGS__);                                                     \
      printf("\n");                                                            \
    }                                                                          \
  } while (0)

typedef struct want {
  int v6, dscp, proto, sport, dport, frag, flags, doff;
  size_t ihl; /* IPv4 header length */
} want;

/* Writes a header for `w` into h (QE_PKT_HDR_MAX bytes); returns its length
 * with the transport ports. Bytes not set by a field are random. */
static size_t build(uint8_t *h, const want *w) {
  for (size_t i = 0; i < QE_PKT_HDR_MAX; i++) {
    h[i] = (uint8_t)rand();
  }
  if (w->v6) {
    h[0] = (uint8_t)(0x60 | (w->dscp >> 2));
    h[1] = (uint8_t)(((w->dscp & 3) << 6) | (h[1] & 0x3f));
    h[6] = (uint8_t)w->proto;
    h[40] = (uint8_t)(w->sport >> 8);
    h[41] = (uint8_t)w->sport;
    h[42] = (uint8_t)(w->dport >> 8);
    h[43] = (uint8_t)w->dport;
    if (w->proto == 6) {
      h[52] = (uint8_t)(w->doff << 4 | (h[52] & 15));
      h[53] = (uint8_t)w->flags;
      return 54;
    }
    return 44;
  }
  h[0] = (uint8_t)(0x40 | (w->ihl / 4));
  h[1] = (uint8_t)(w->dscp << 2 | (h[1] & 3));
  h[6] = (uint8_t)(h[6] & 0xe0); /* flags kept, offset 0 */
  h[7] = 0;
  if (w->frag) {
    h[7] = (uint8_t)(1 + rand() % 255);
  }
  h[9] = (uint8_t)w->proto;
  h[w->ihl] = (uint8_t)(w->sport >> 8);
  h[w->ihl + 1] = (uint8_t)w->sport;
  h[w->ihl + 2] = (uint8_t)(w->dport >> 8);
  h[w->ihl + 3] = (uint8_t)w->dport;
  if (w->proto == 6) {
    h[w->ihl + 12] = (uint8_t)(w->doff << 4 | (h[w->ihl + 12] & 15));
    h[w->ihl + 13] = (uint8_t)w->flags;
    return w->ihl + 14;
  }
  return w->ihl + 4;
}

static void generated(void) {
  static const int protos[] = {6, 17, 1, 58, 47};
  for (int i = 0; i < 400; i++) {
    uint8_t h[QE_PKT_HDR_MAX];
    qe_pkt_info pi;
    want w = {.v6 = rand() % 2,
              .dscp = rand() % 64,
              .proto = protos[rand() % 5],
              .sport = rand() % 65536,
              .dport = rand() % 65536,
              .flags = rand() % 256,
              .doff = 5 + rand() % 11,
              .ihl = 20 + 4 * (size_t)(rand() % 11)};
    size_t n;
    int ports;
    w.frag = !w.v6 && rand() % 4 == 0;
    n = build(h, &w);
    ports = (w.proto == 6 || w.proto == 17) && !w.frag;
    check(qe_pkt_parse(h, n, &pi) == 0, "parses", "case %d", i);
    check(pi.dscp == w.dscp, "dscp", "case %d: %d, want %d", i, pi.dscp,
          w.dscp);
    check(pi.proto == (w.frag ? -1 : w.proto), "proto", "case %d: %d", i,
          pi.proto);
    check(pi.sport == (ports ? w.sport : -1) &&
              pi.dport == (ports ? w.dport : -1),
          "ports", "case %d: %d>%d, want %d>%d", i, pi.sport, pi.dport,
          w.sport, w.dport);
    check(pi.tcp_flags == (ports && w.proto == 6 ? w.flags : -1), "tcp flags",
          "case %d: %d, want %d", i, pi.tcp_flags, w.flags);
    check(pi.tcp_data == (ports && w.proto == 6
                              ? (int)((w.v6 ? 40 : w.ihl) + (size_t)w.doff * 4)
                              : -1),
          "tcp payload offset", "case %d: %d", i, pi.tcp_data);
    /* Cut before TCP's flags: the ports, no flags. */
    if (ports && w.proto == 6) {
      size_t l4 = w.v6 ? 40 : w.ihl;
      check(qe_pkt_parse(h, l4 + 13, &pi) == 0 && pi.sport == w.sport &&
                pi.tcp_flags == -1,
            "no flags in a short TCP header", "case %d", i);
    }
    /* Cut before the ports: still parses, without them. */
    if ((w.v6 ? 40 : w.ihl) + 3 >= (w.v6 ? 40u : 20u)) {
      check(qe_pkt_parse(h, (w.v6 ? 40 : w.ihl) + 3, &pi) == 0 && pi.sport == -1,
            "no ports in a short packet", "case %d", i);
    }
  }
}

static void refused(void) {
  uint8_t h[QE_PKT_HDR_MAX] = {0};
  qe_pkt_info pi;
  for (int v = 0; v < 16; v++) {
    h[0] = (uint8_t)(v << 4 | 5);
    if (v != 4 && v != 6) {
      check(qe_pkt_parse(h, sizeof(h), &pi) == -1, "not IP", "version %d",
            v);
    }
  }
  h[0] = 0x45;
  check(qe_pkt_parse(h, 19, &pi) == -1, "IPv4 under 20 bytes", "%s", "");
  h[0] = 0x60;
  check(qe_pkt_parse(h, 39, &pi) == -1, "IPv6 under 40 bytes", "%s", "");
  check(qe_pkt_parse(h, 0, &pi) == -1, "empty", "%s", "");
}

/* The flow hash covers addresses, protocol and ports, nothing else. */
static void flows(void) {
  for (int i = 0; i < 100; i++) {
    uint8_t a[QE_PKT_HDR_MAX], b[QE_PKT_HDR_MAX];
    qe_pkt_info pa, pb;
    want w = {.v6 = i % 2, .dscp = 0, .proto = 6, .sport = rand() % 65536,
              .dport = rand() % 65536, .ihl = 20};
    size_t n = build(a, &w), addr = w.v6 ? 8 : 12, alen = w.v6 ? 32 : 8;
    size_t k;
    memcpy(b, a, sizeof(a));
    b[1] ^= 0x04; /* another DSCP */
    if (!w.v6) {
      b[4] ^= 0xff; /* another IP id */
    }
    qe_pkt_parse(a, n, &pa);
    qe_pkt_parse(b, n, &pb);
    check(pa.flow == pb.flow, "flow: DSCP and id are not the flow", "case %d",
          i);
    k = (size_t)rand() % (alen + 4);
    memcpy(b, a, sizeof(a));
    b[k < alen ? addr + k : (w.v6 ? 40 : 20) + k - alen] ^= 0x01;
    qe_pkt_parse(b, n, &pb);
    check(pa.flow != pb.flow, "flow: an address or port is the flow",
          "case %d byte %zu", i, k);
  }
}

int main(void) {
  srand(12);
  generated();
  refused();
  flows();
  printf("pkt_test: %u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
