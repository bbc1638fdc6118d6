/*
 * The connection tracker (ct.c) on hand-built packets: replies of allowed
 * TCP, UDP and ICMP flows; denies by a rule and by the default (counted per
 * packet); TCP that is not a SYN for no flow; a spoofed-looking reply;
 * IPv4 and IPv6 fragments; IPv6 extension headers (real ports found behind
 * them, a chain too long or truncated); ICMP errors quoting allowed, denied
 * and unknown flows; timeouts; reloads; a full table. Prints "N passed, M
 * failed".
 */
#include "../ct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned passed, failed;

#define check(cond, ...)                                                       \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      printf("FAIL line %d: ", __LINE__);                                      \
      printf(__VA_ARGS__);                                                     \
      printf("\n");                                                            \
    }                                                                          \
  } while (0)

enum { FIN = 0x01, SYN = 0x02, RST = 0x04, ACK = 0x10 };

static const uint8_t A4[4] = {10, 0, 0, 5}, B4[4] = {10, 0, 1, 7},
                     C4[4] = {192, 168, 9, 9};
static const uint8_t A6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
static const uint8_t B6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7};

/* ---- packet builders ---- */

static size_t tcp_hdr(uint8_t *b, uint16_t sport, uint16_t dport,
                      uint8_t flags) {
  memset(b, 0, 20);
  b[0] = (uint8_t)(sport >> 8), b[1] = (uint8_t)sport;
  b[2] = (uint8_t)(dport >> 8), b[3] = (uint8_t)dport;
  b[12] = 5 << 4;
  b[13] = flags;
  return 20;
}

static size_t udp_hdr(uint8_t *b, uint16_t sport, uint16_t dport) {
  memset(b, 0, 8);
  b[0] = (uint8_t)(sport >> 8), b[1] = (uint8_t)sport;
  b[2] = (uint8_t)(dport >> 8), b[3] = (uint8_t)dport;
  b[5] = 8;
  return 8;
}

static size_t icmp_hdr(uint8_t *b, uint8_t type, uint16_t id) {
  memset(b, 0, 8);
  b[0] = type;
  b[4] = (uint8_t)(id >> 8), b[5] = (uint8_t)id;
  return 8;
}

/* IPv4 around `l4`; `frag` is the flags/offset field (0x2000 = MF). */
static size_t pkt4(uint8_t *b, const uint8_t *src, const uint8_t *dst,
                   uint8_t proto, const uint8_t *l4, size_t l4len, uint16_t id,
                   uint16_t frag) {
  size_t tot = 20 + l4len;
  memset(b, 0, 20);
  b[0] = 0x45;
  b[2] = (uint8_t)(tot >> 8), b[3] = (uint8_t)tot;
  b[4] = (uint8_t)(id >> 8), b[5] = (uint8_t)id;
  b[6] = (uint8_t)(frag >> 8), b[7] = (uint8_t)frag;
  b[8] = 64;
  b[9] = proto;
  memcpy(b + 12, src, 4);
  memcpy(b + 16, dst, 4);
  memcpy(b + 20, l4, l4len);
  return tot;
}

/* IPv6 around `rest` (extension headers and transport). */
static size_t pkt6(uint8_t *b, const uint8_t *src, const uint8_t *dst,
                   uint8_t nh, const uint8_t *rest, size_t restlen) {
  memset(b, 0, 40);
  b[0] = 0x60;
  b[4] = (uint8_t)(restlen >> 8), b[5] = (uint8_t)restlen;
  b[6] = nh;
  b[7] = 64;
  memcpy(b + 8, src, 16);
  memcpy(b + 24, dst, 16);
  memcpy(b + 40, rest, restlen);
  return 40 + restlen;
}

/* An 8-byte extension header (hop-by-hop, destination options, routing)
 * of padding. */
static size_t ext8(uint8_t *b, uint8_t next) {
  memset(b, 0, 8);
  b[0] = next;
  b[2] = 1, b[3] = 4; /* PadN of 4 */
  return 8;
}

static size_t frag6(uint8_t *b, uint8_t next, uint16_t off8, int more,
                    uint32_t id) {
  memset(b, 0, 8);
  b[0] = next;
  uint16_t v = (uint16_t)(off8 << 3 | (more ? 1 : 0));
  b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
  b[4] = (uint8_t)(id >> 24), b[5] = (uint8_t)(id >> 16);
  b[6] = (uint8_t)(id >> 8), b[7] = (uint8_t)id;
  return 8;
}

static size_t tcp4(uint8_t *b, const uint8_t *s, uint16_t sp,
                   const uint8_t *d, uint16_t dp, uint8_t flags) {
  uint8_t l4[20];
  return pkt4(b, s, d, 6, l4, tcp_hdr(l4, sp, dp, flags), 1, 0);
}

static size_t udp4(uint8_t *b, const uint8_t *s, uint16_t sp,
                   const uint8_t *d, uint16_t dp) {
  uint8_t l4[16];
  udp_hdr(l4, sp, dp);
  memset(l4 + 8, 0xab, 8);
  return pkt4(b, s, d, 17, l4, 16, 1, 0);
}

static size_t icmp4(uint8_t *b, const uint8_t *s, const uint8_t *d,
                    uint8_t type, uint16_t id) {
  uint8_t l4[8];
  return pkt4(b, s, d, 1, l4, icmp_hdr(l4, type, id), 1, 0);
}

/* An ICMP(v6) error from `s` to `d` quoting packet q. */
static size_t icmp_err4(uint8_t *b, const uint8_t *s, const uint8_t *d,
                        uint8_t type, const uint8_t *q, size_t qlen) {
  uint8_t l4[8 + 28];
  icmp_hdr(l4, type, 0);
  if (qlen > 28) {
    qlen = 28; /* IP header and 8 bytes, as routers quote */
  }
  memcpy(l4 + 8, q, qlen);
  return pkt4(b, s, d, 1, l4, 8 + qlen, 2, 0);
}

/* ---- the tracker ---- */

static qe_ct *ct;
static const qe_acl *acl;
static uint64_t gen = 1, now = 1000000;
static qe_ct_verdict v;

static int run(const uint8_t *p, size_t n) {
  memset(&v, 0xee, sizeof(v));
  return qe_ct_check(ct, acl, gen, p, n, now, &v);
}

#define PASS(p, n, rule_)                                                      \
  do {                                                                         \
    int r_ = run(p, n);                                                        \
    check(r_ == 1 && v.reason == QE_CT_PASS && v.rule == (uint32_t)(rule_),    \
          "want pass rule %d, got %d reason %u rule %d", (int)(rule_), r_,     \
          v.reason, (int)v.rule);                                              \
  } while (0)

#define DROP(p, n, reason_)                                                    \
  do {                                                                         \
    int r_ = run(p, n);                                                        \
    check(r_ == 0 && v.reason == (reason_), "want drop reason %d, got %d "     \
          "reason %u rule %d", (int)(reason_), r_, v.reason, (int)v.rule);     \
  } while (0)

static qe_acl_prefix net4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                          uint8_t plen) {
  qe_acl_prefix p = {.family = 4, .plen = plen, .addr = {a, b, c, d}};
  return p;
}

static qe_acl_prefix net6(const uint8_t *addr, uint8_t plen) {
  qe_acl_prefix p = {.family = 6, .plen = plen};
  memcpy(p.addr, addr, 16);
  return p;
}

static qe_acl_rule rule(uint8_t action, uint8_t proto, uint16_t lo,
                        uint16_t hi, const qe_acl_prefix *src, uint32_t nsrc,
                        const qe_acl_prefix *dst, uint32_t ndst) {
  qe_acl_rule r = {.action = action, .proto = proto, .port_lo = lo,
                   .port_hi = hi, .icmp_type = -1, .nsrc = nsrc,
                   .ndst = ndst, .src = src, .dst = dst};
  return r;
}

int main(void) {
  uint8_t p[512], q[512], l4[512];
  size_t n, m;
  qe_acl *t1, *t2, *t3;
  qe_ct_stats st;

  /* Table 1: A's /24 (and A6's /64) may reach B's TCP 22 and UDP 53 and
   * ping anything; UDP 5353 is denied by a rule; the default denies. */
  qe_acl_prefix srcA[] = {net4(10, 0, 0, 0, 24), net6(A6, 64)};
  qe_acl_prefix dstB[] = {net4(10, 0, 1, 0, 24), net6(B6, 64)};
  qe_acl_rule r1[] = {
      rule(QE_ACL_ALLOW, 6, 22, 22, srcA, 2, dstB, 2),
      rule(QE_ACL_DENY, 17, 5353, 5353, NULL, 0, NULL, 0),
      rule(QE_ACL_ALLOW, 17, 53, 53, srcA, 2, dstB, 2),
      rule(QE_ACL_ALLOW, QE_ACL_PROTO_ICMP, 0, 65535, NULL, 0, NULL, 0),
  };
  if (qe_acl_new(&t1, r1, 4, QE_ACL_DENY) != 0) {
    return 2;
  }
  ct = qe_ct_new(1024);
  acl = t1;

  /* TCP: SYN, SYN-ACK, ACK, data both ways, all on rule 0. */
  n = tcp4(p, A4, 40000, B4, 22, SYN);
  PASS(p, n, 0);
  check(v.created == 1, "SYN creates the flow");
  n = tcp4(p, B4, 22, A4, 40000, SYN | ACK);
  PASS(p, n, 0);
  check(v.created == 0, "the reply does not");
  n = tcp4(p, A4, 40000, B4, 22, ACK);
  PASS(p, n, 0);
  n = tcp4(p, B4, 22, A4, 40000, ACK);
  PASS(p, n, 0);
  check(qe_acl_hits(t1, 0) == 1, "one hit per admitted flow, got %llu",
        (unsigned long long)qe_acl_hits(t1, 0));

  /* UDP and its reply. */
  n = udp4(p, A4, 5000, B4, 53);
  PASS(p, n, 2);
  n = udp4(p, B4, 53, A4, 5000);
  PASS(p, n, 2);

  /* ICMP echo, keyed by id; a reply with another id is no flow. */
  n = icmp4(p, A4, B4, 8, 77);
  PASS(p, n, 3);
  n = icmp4(p, B4, A4, 0, 77);
  PASS(p, n, 3);
  n = icmp4(p, B4, A4, 0, 78);
  DROP(p, n, QE_CT_NO_FLOW);

  /* Denied by a rule, each packet counted; by the default. */
  for (int i = 0; i < 3; i++) {
    n = udp4(p, A4, 6000, B4, 5353);
    DROP(p, n, QE_CT_DENY_RULE);
    check(v.rule == 1, "rule 1 denies, got %d", (int)v.rule);
  }
  check(qe_acl_hits(t1, 1) == 3, "3 denied packets, 3 hits, got %llu",
        (unsigned long long)qe_acl_hits(t1, 1));
  n = tcp4(p, A4, 40001, B4, 80, SYN);
  DROP(p, n, QE_CT_DENY_DEFAULT);
  check(v.rule == QE_ACL_DEFAULT, "the default decides");
  n = tcp4(p, A4, 40001, B4, 80, SYN);
  DROP(p, n, QE_CT_DENY_DEFAULT);
  check(qe_acl_hits(t1, QE_ACL_DEFAULT) == 2, "default hits %llu",
        (unsigned long long)qe_acl_hits(t1, QE_ACL_DEFAULT));

  /* TCP that is not a SYN, for no flow, even to an allowed port. */
  n = tcp4(p, A4, 40002, B4, 22, ACK);
  DROP(p, n, QE_CT_NO_FLOW);
  n = tcp4(p, A4, 40002, B4, 22, FIN | ACK);
  DROP(p, n, QE_CT_NO_FLOW);
  n = tcp4(p, A4, 40002, B4, 22, RST);
  DROP(p, n, QE_CT_NO_FLOW);
  n = tcp4(p, A4, 40002, B4, 22, SYN | ACK);
  DROP(p, n, QE_CT_NO_FLOW);

  /* A spoofed-looking reply (the reverse of a flow that does not exist) is
   * a new flow, decided by the rules: B may not start UDP toward A. */
  n = udp4(p, B4, 53, A4, 5999);
  DROP(p, n, QE_CT_DENY_DEFAULT);
  /* A spoofed source outside A's /24 does not get rule 0. */
  n = tcp4(p, C4, 40000, B4, 22, SYN);
  DROP(p, n, QE_CT_DENY_DEFAULT);

  /* IPv4 fragments. */
  udp_hdr(l4, 5001, 53);
  n = pkt4(p, A4, B4, 17, l4, 2, 900, 0x2000); /* first, 2 bytes of UDP */
  DROP(p, n, QE_CT_FRAGMENT);
  tcp_hdr(l4, 40003, 22, SYN);
  n = pkt4(p, A4, B4, 6, l4, 8, 901, 0x2000); /* ports but no TCP flags */
  DROP(p, n, QE_CT_FRAGMENT);
  memset(l4, 0, 64);
  n = pkt4(p, A4, B4, 17, l4, 64, 902, 0x2000 | 10); /* later, no first */
  DROP(p, n, QE_CT_FRAGMENT);
  n = pkt4(p, A4, B4, 17, l4, 64, 902, 20);
  DROP(p, n, QE_CT_FRAGMENT);
  udp_hdr(l4, 5002, 53);
  n = pkt4(p, A4, B4, 17, l4, 64, 903, 0x2000); /* allowed first */
  PASS(p, n, 2);
  memset(l4, 0xcd, 64);
  n = pkt4(p, A4, B4, 17, l4, 64, 903, 0x2000 | 8);
  PASS(p, n, 2);
  n = pkt4(p, A4, B4, 17, l4, 40, 903, 16);
  PASS(p, n, 2);
  n = pkt4(p, A4, B4, 17, l4, 40, 904, 16); /* another datagram's */
  DROP(p, n, QE_CT_FRAGMENT);
  udp_hdr(l4, 5003, 5353);
  n = pkt4(p, A4, B4, 17, l4, 64, 905, 0x2000); /* denied first */
  DROP(p, n, QE_CT_DENY_RULE);
  n = pkt4(p, A4, B4, 17, l4, 40, 905, 8);
  DROP(p, n, QE_CT_FRAGMENT);
  tcp_hdr(l4, 40000, 22, ACK); /* RFC 1858: TCP at offset 1 */
  n = pkt4(p, A4, B4, 6, l4, 20, 1, 1);
  DROP(p, n, QE_CT_FRAGMENT);

  /* IPv6 with hop-by-hop and destination options before TCP: matched on
   * the real ports, not on the bytes after the fixed header. */
  m = ext8(l4, 60);
  m += ext8(l4 + m, 6);
  m += tcp_hdr(l4 + m, 41000, 22, SYN);
  n = pkt6(p, A6, B6, 0, l4, m);
  PASS(p, n, 0);
  m = ext8(l4, 6);
  m += tcp_hdr(l4 + m, 22, 41000, SYN | ACK);
  n = pkt6(p, B6, A6, 60, l4, m);
  PASS(p, n, 0);
  m = ext8(l4, 60);
  m += ext8(l4 + m, 6);
  m += tcp_hdr(l4 + m, 41001, 23, SYN);
  n = pkt6(p, A6, B6, 0, l4, m);
  DROP(p, n, QE_CT_DENY_DEFAULT);

  /* IPv6 Fragment header: first (with the UDP header) and later ones. */
  m = frag6(l4, 17, 0, 1, 0xabcdef01);
  m += udp_hdr(l4 + m, 5100, 53);
  memset(l4 + m, 0, 40);
  n = pkt6(p, A6, B6, 44, l4, m + 40);
  PASS(p, n, 2);
  m = frag6(l4, 17, 6, 0, 0xabcdef01);
  memset(l4 + m, 0x11, 40);
  n = pkt6(p, A6, B6, 44, l4, m + 40);
  PASS(p, n, 2);
  m = frag6(l4, 17, 6, 0, 0xabcdef02);
  memset(l4 + m, 0x11, 40);
  n = pkt6(p, A6, B6, 44, l4, m + 40);
  DROP(p, n, QE_CT_FRAGMENT);
  m = frag6(l4, 17, 0, 1, 0xabcdef03); /* first without the UDP header */
  l4[m] = 0x13;
  n = pkt6(p, A6, B6, 44, l4, m + 1);
  DROP(p, n, QE_CT_FRAGMENT);
  /* Hop-by-hop, then the Fragment header, then destination options. */
  m = ext8(l4, 44);
  m += frag6(l4 + m, 60, 0, 1, 0x77);
  m += ext8(l4 + m, 17);
  m += udp_hdr(l4 + m, 5101, 53);
  n = pkt6(p, A6, B6, 0, l4, m);
  PASS(p, n, 2);
  m = frag6(l4, 60, 3, 0, 0x77);
  n = pkt6(p, A6, B6, 44, l4, m + 16);
  PASS(p, n, 2);

  /* Extension chains: 8 headers are walked, 9 are too many; a header
   * running past the packet is malformed. */
  m = 0;
  for (int i = 0; i < 8; i++) {
    m += ext8(l4 + m, i < 7 ? 60 : 17);
  }
  m += udp_hdr(l4 + m, 5200, 53);
  n = pkt6(p, A6, B6, 60, l4, m);
  PASS(p, n, 2);
  m = 0;
  for (int i = 0; i < 9; i++) {
    m += ext8(l4 + m, i < 8 ? 60 : 17);
  }
  m += udp_hdr(l4 + m, 5201, 53);
  n = pkt6(p, A6, B6, 60, l4, m);
  DROP(p, n, QE_CT_MALFORMED);
  m = ext8(l4, 17);
  l4[1] = 3; /* claims 32 bytes */
  m += udp_hdr(l4 + m, 5202, 53);
  n = pkt6(p, A6, B6, 60, l4, m);
  DROP(p, n, QE_CT_MALFORMED);

  /* ICMP errors: port unreachable quoting the allowed UDP flow passes;
   * quoting the denied one or an unknown one does not; an error quoting
   * a packet its destination did not send does not. */
  m = udp4(q, A4, 5000, B4, 53);
  n = icmp_err4(p, B4, A4, 3, q, m);
  PASS(p, n, 2);
  n = icmp_err4(p, C4, A4, 11, q, m); /* time exceeded from a router */
  PASS(p, n, 2);
  n = icmp_err4(p, B4, C4, 3, q, m);
  DROP(p, n, QE_CT_NO_FLOW);
  m = udp4(q, A4, 6000, B4, 5353);
  n = icmp_err4(p, B4, A4, 3, q, m);
  DROP(p, n, QE_CT_NO_FLOW);
  m = udp4(q, A4, 6001, B4, 53);
  n = icmp_err4(p, B4, A4, 3, q, m);
  DROP(p, n, QE_CT_NO_FLOW);
  m = tcp4(q, A4, 40000, B4, 22, ACK);
  n = icmp_err4(p, B4, A4, 3, q, m); /* TCP: 8 bytes quoted, ports in */
  PASS(p, n, 0);
  /* ICMPv6 destination unreachable for the IPv6 TCP flow. */
  m = tcp_hdr(l4, 41000, 22, ACK);
  m = pkt6(q, A6, B6, 6, l4, m);
  icmp_hdr(l4, 1, 0);
  memcpy(l4 + 8, q, 48);
  n = pkt6(p, B6, A6, 58, l4, 56);
  PASS(p, n, 0);
  /* Errors never create flows: the error passed no flow into being. */
  n = udp4(p, B4, 53, A4, 6001);
  DROP(p, n, QE_CT_DENY_DEFAULT);

  /* Malformed headers. */
  n = udp4(p, A4, 5000, B4, 53);
  p[0] = 0x44; /* IHL 16 bytes */
  DROP(p, n, QE_CT_MALFORMED);
  n = udp4(p, A4, 5000, B4, 53);
  DROP(p, n - 1, QE_CT_MALFORMED); /* total length past the buffer */
  n = udp4(p, A4, 5000, B4, 53);
  p[0] = 0x55;
  DROP(p, n, QE_CT_MALFORMED);
  n = tcp4(p, A4, 40000, B4, 22, ACK);
  p[3] = 30; /* the TCP header cut short */
  DROP(p, 30, QE_CT_MALFORMED);

  /* Timeouts. */
  n = udp4(p, A4, 7000, B4, 53);
  PASS(p, n, 2);
  now += 59000;
  n = udp4(p, B4, 53, A4, 7000);
  PASS(p, n, 2);
  now += 60000;
  DROP(p, n, QE_CT_DENY_DEFAULT); /* expired: the reply is a new flow */
  n = tcp4(p, A4, 42000, B4, 22, SYN);
  PASS(p, n, 0);
  now += 31000; /* a SYN only lives 30 s */
  n = tcp4(p, B4, 22, A4, 42000, SYN | ACK);
  DROP(p, n, QE_CT_NO_FLOW);
  n = tcp4(p, A4, 42001, B4, 22, SYN);
  PASS(p, n, 0);
  n = tcp4(p, B4, 22, A4, 42001, SYN | ACK);
  PASS(p, n, 0);
  now += 290000; /* established lives 300 s */
  n = tcp4(p, A4, 42001, B4, 22, ACK);
  PASS(p, n, 0);
  n = tcp4(p, A4, 42001, B4, 22, FIN | ACK);
  PASS(p, n, 0);
  now += 100000; /* one FIN: still established */
  n = tcp4(p, B4, 22, A4, 42001, FIN | ACK);
  PASS(p, n, 0);
  now += 31000; /* FIN both ways: 30 s */
  n = tcp4(p, A4, 42001, B4, 22, ACK);
  DROP(p, n, QE_CT_NO_FLOW);
  n = icmp4(p, A4, B4, 8, 99);
  PASS(p, n, 3);
  now += 31000;
  n = icmp4(p, B4, A4, 0, 99);
  DROP(p, n, QE_CT_NO_FLOW);

  /* Reload. Flows of table 1, generation 1. */
  n = tcp4(p, A4, 43000, B4, 22, SYN);
  PASS(p, n, 0);
  n = tcp4(p, B4, 22, A4, 43000, SYN | ACK);
  PASS(p, n, 0);
  n = udp4(p, A4, 7100, B4, 53);
  PASS(p, n, 2);
  /* Table 2 still allows both, the rules in another order. */
  qe_acl_rule r2[] = {
      rule(QE_ACL_ALLOW, 17, 53, 53, srcA, 2, dstB, 2),
      rule(QE_ACL_DENY, 6, 23, 23, NULL, 0, NULL, 0),
      rule(QE_ACL_ALLOW, 6, 0, 65535, srcA, 2, dstB, 2),
  };
  if (qe_acl_new(&t2, r2, 3, QE_ACL_DENY) != 0) {
    return 2;
  }
  acl = t2, gen = 2;
  n = tcp4(p, B4, 22, A4, 43000, ACK); /* a reply first: still allowed */
  PASS(p, n, 2);
  n = tcp4(p, A4, 43000, B4, 22, ACK);
  PASS(p, n, 2);
  n = udp4(p, B4, 53, A4, 7100);
  PASS(p, n, 0);
  check(qe_acl_hits(t2, 2) == 1 && qe_acl_hits(t2, 0) == 1,
        "re-decided flows count in the new table");
  /* Table 3 denies TCP to 22 and allows UDP 53: the TCP flow stops at
   * once, in both directions, and stays stopped; UDP flows on. */
  qe_acl_rule r3[] = {
      rule(QE_ACL_DENY, 6, 22, 22, NULL, 0, NULL, 0),
      rule(QE_ACL_ALLOW, 17, 53, 53, srcA, 2, dstB, 2),
  };
  if (qe_acl_new(&t3, r3, 2, QE_ACL_DENY) != 0) {
    return 2;
  }
  acl = t3, gen = 3;
  n = tcp4(p, B4, 22, A4, 43000, ACK);
  DROP(p, n, QE_CT_DENY_RULE);
  n = tcp4(p, A4, 43000, B4, 22, ACK);
  DROP(p, n, QE_CT_DENY_RULE);
  n = udp4(p, A4, 7100, B4, 53);
  PASS(p, n, 1);
  now += 5000; /* the remembered deny is gone: still dropped */
  n = tcp4(p, A4, 43000, B4, 22, ACK);
  DROP(p, n, QE_CT_NO_FLOW);
  n = tcp4(p, A4, 43000, B4, 22, SYN);
  DROP(p, n, QE_CT_DENY_RULE);
  /* Back to table 1: a remembered deny of table 3 is decided afresh. */
  acl = t1, gen = 4;
  n = tcp4(p, A4, 43000, B4, 22, SYN);
  PASS(p, n, 0);
  qe_ct_stats_get(ct, &st);
  check(st.reload_denied == 1, "reload_denied %llu",
        (unsigned long long)st.reload_denied);
  check(st.drops[QE_CT_DENY_RULE] > 0 && st.drops[QE_CT_NO_FLOW] > 0 &&
            st.drops[QE_CT_FRAGMENT] > 0 && st.drops[QE_CT_MALFORMED] > 0 &&
            st.drops[QE_CT_DENY_DEFAULT] > 0 && st.passed > 0,
        "drop counters");
  qe_ct_del(ct);

  /* A full table: 8 entries. Denies are not remembered in the last
   * quarter; allowed flows fill it, then TABLE_FULL until some expire. */
  acl = t1, gen = 1;
  ct = qe_ct_new(8);
  for (int i = 0; i < 8; i++) {
    n = udp4(p, A4, (uint16_t)(8000 + i), B4, 53);
    PASS(p, n, 2);
  }
  n = udp4(p, A4, 8100, B4, 53);
  DROP(p, n, QE_CT_TABLE_FULL);
  n = udp4(p, A4, 8101, B4, 5353); /* a deny still says why */
  DROP(p, n, QE_CT_DENY_RULE);
  n = udp4(p, B4, 53, A4, 8003); /* known flows still pass */
  PASS(p, n, 2);
  now += 30000;
  n = udp4(p, B4, 53, A4, 8004); /* keeps 8004 alive */
  PASS(p, n, 2);
  now += 31000; /* all but 8004 expired */
  n = udp4(p, A4, 8100, B4, 53);
  PASS(p, n, 2);
  qe_ct_stats_get(ct, &st);
  check(st.entries == 2 && st.expired_evicted == 7,
        "sweep: %zu entries, %llu evicted", st.entries,
        (unsigned long long)st.expired_evicted);
  check(st.drops[QE_CT_TABLE_FULL] == 1, "table full counted");
  n = udp4(p, A4, 8004, B4, 53);
  PASS(p, n, 2);
  qe_ct_del(ct);

  /* No table: no policy, everything that may start a flow passes. */
  ct = qe_ct_new(16);
  acl = NULL;
  n = tcp4(p, C4, 1, B4, 2, SYN);
  PASS(p, n, QE_ACL_DEFAULT);
  n = tcp4(p, C4, 1, B4, 3, ACK);
  DROP(p, n, QE_CT_NO_FLOW);
  qe_ct_del(ct);
  check(qe_ct_new(0) == NULL, "capacity 0 refused");

  qe_acl_del(t1);
  qe_acl_del(t2);
  qe_acl_del(t3);
  printf("ct_test: %u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
