/*
 * Nanoseconds per qe_acl_match() with 0, 10, 100 and 1,000 random but
 * realistic rules (/32 sources, /24 destinations, TCP/UDP port ranges, a
 * few ICMP rules, 3 in 4 allow), on flows half of which are aimed at a
 * rule and half random (these match nothing: the whole class list is
 * walked, the worst case), and per qe_ct_check() of a
 * packet of a known flow. Prints a table and one JSON line.
 * `make -C native/test bench`.
 */
#include "../ct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0xbe4c11;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static volatile uint32_t sink;

static double bench_match(size_t nrules, double *hit_share) {
  qe_acl_rule *rules = calloc(nrules + 1, sizeof(*rules));
  qe_acl_prefix *pfx = calloc(2 * nrules + 2, sizeof(*pfx));
  enum { NFLOWS = 4096 };
  static qe_flow flows[NFLOWS];
  qe_acl *acl;
  unsigned hits = 0;
  for (size_t i = 0; i < nrules; i++) {
    qe_acl_prefix *s = &pfx[2 * i], *d = &pfx[2 * i + 1];
    s->family = d->family = 4;
    s->plen = 32;
    d->plen = 24;
    s->addr[0] = 100, s->addr[1] = 64, s->addr[2] = (uint8_t)(rnd() % 4);
    s->addr[3] = (uint8_t)rnd();
    d->addr[0] = 10, d->addr[1] = (uint8_t)(rnd() % 8);
    d->addr[2] = (uint8_t)(rnd() % 32);
    qe_acl_rule *r = &rules[i];
    r->action = rnd() % 4 ? QE_ACL_ALLOW : QE_ACL_DENY;
    r->icmp_type = -1;
    if (rnd() % 10 == 0) {
      r->proto = QE_ACL_PROTO_ICMP;
      r->port_hi = 65535;
    } else {
      static const uint16_t base[] = {22, 80, 443, 3389, 5432, 8000, 53};
      r->proto = rnd() % 3 ? 6 : 17;
      r->port_lo = base[rnd() % 7];
      r->port_hi = (uint16_t)(r->port_lo + (rnd() % 3 ? 0 : rnd() % 100));
    }
    r->nsrc = r->ndst = 1;
    r->src = s;
    r->dst = d;
  }
  if (qe_acl_new(&acl, rules, nrules, QE_ACL_DENY) != 0) {
    exit(2);
  }
  for (int i = 0; i < NFLOWS; i++) {
    qe_flow *f = &flows[i];
    memset(f, 0, sizeof(*f));
    f->family = 4;
    f->proto = rnd() % 3 ? 6 : 17;
    f->src[0] = 100, f->src[1] = 64, f->src[2] = (uint8_t)(rnd() % 4);
    f->src[3] = (uint8_t)rnd();
    f->dst[0] = 10, f->dst[1] = (uint8_t)(rnd() % 8);
    f->dst[2] = (uint8_t)(rnd() % 32), f->dst[3] = (uint8_t)rnd();
    f->sport = (uint16_t)rnd();
    f->dport = rnd() % 2 ? 443 : (uint16_t)rnd();
    f->icmp_type = -1;
    if (nrules && i % 2) {
      /* Half the flows are aimed at a rule (it or an earlier one decides). */
      const qe_acl_rule *r = &rules[rnd() % nrules];
      memcpy(f->src, r->src->addr, 4);
      memcpy(f->dst, r->dst->addr, 3);
      f->proto = r->proto == QE_ACL_PROTO_ICMP ? 1 : r->proto;
      f->dport = r->port_lo;
    }
    uint8_t a;
    hits += qe_acl_match(acl, f, &a) != QE_ACL_DEFAULT;
  }
  *hit_share = (double)hits / NFLOWS;
  unsigned iters = nrules >= 1000 ? 400000 : 4000000;
  double t0 = now_ns();
  for (unsigned i = 0; i < iters; i++) {
    uint8_t a;
    sink += qe_acl_match(acl, &flows[i % NFLOWS], &a);
  }
  double ns = (now_ns() - t0) / iters;
  qe_acl_del(acl);
  free(rules);
  free(pfx);
  return ns;
}

/* A known TCP flow's data packet, alternating directions, with 10,000
 * other flows in the table and 1,000 rules. */
static double bench_ct(void) {
  enum { NR = 1000 };
  qe_acl_rule rule = {.action = QE_ACL_ALLOW, .proto = 6, .port_lo = 0,
                      .port_hi = 65535, .icmp_type = -1};
  qe_acl_rule *rules = calloc(NR, sizeof(*rules));
  qe_acl_prefix d = {.family = 4, .plen = 24, .addr = {192, 0, 2, 0}};
  for (int i = 0; i < NR - 1; i++) {
    rules[i] = rule;
    rules[i].action = QE_ACL_DENY;
    rules[i].ndst = 1;
    rules[i].dst = &d;
  }
  rules[NR - 1] = rule;
  qe_acl *acl;
  qe_ct *ct = qe_ct_new(65536);
  qe_ct_verdict v;
  uint8_t pk[2][60];
  if (qe_acl_new(&acl, rules, NR, QE_ACL_DENY) != 0 || ct == NULL) {
    exit(2);
  }
  for (int dir = 0; dir < 2; dir++) {
    uint8_t *b = pk[dir];
    memset(b, 0, 60);
    b[0] = 0x45, b[3] = 60, b[8] = 64, b[9] = 6;
    uint8_t a[4] = {10, 0, 0, 1}, c[4] = {10, 0, 0, 2};
    memcpy(b + 12, dir ? c : a, 4);
    memcpy(b + 16, dir ? a : c, 4);
    b[20] = dir ? 0 : 0x9c, b[21] = dir ? 22 : 0x40;
    b[22] = dir ? 0x9c : 0, b[23] = dir ? 0x40 : 22;
    b[32] = 0x50;
    b[33] = dir ? 0x12 : 0x02; /* SYN, then SYN-ACK */
  }
  uint64_t t = 1000;
  for (int i = 0; i < 10000; i++) { /* other flows */
    uint8_t o[60];
    memcpy(o, pk[0], 60);
    o[14] = (uint8_t)(i >> 8), o[15] = (uint8_t)i;
    qe_ct_check(ct, acl, 1, o, 60, t, &v);
  }
  qe_ct_check(ct, acl, 1, pk[0], 60, t, &v);
  qe_ct_check(ct, acl, 1, pk[1], 60, t, &v);
  pk[0][33] = pk[1][33] = 0x10; /* ACK both ways from now on */
  unsigned iters = 4000000;
  double t0 = now_ns();
  for (unsigned i = 0; i < iters; i++) {
    sink += (uint32_t)qe_ct_check(ct, acl, 1, pk[i & 1], 60, t + i / 1000, &v);
  }
  double ns = (now_ns() - t0) / iters;
  if (v.reason != QE_CT_PASS) {
    fprintf(stderr, "bench_ct: the known flow did not pass\n");
    exit(1);
  }
  qe_ct_del(ct);
  qe_acl_del(acl);
  free(rules);
  return ns;
}

int main(void) {
  static const size_t sizes[] = {0, 10, 100, 1000};
  double ns[4], share[4], ct_ns;
  printf("%-22s %10s %12s\n", "case", "ns/op", "rule-decided");
  for (int i = 0; i < 4; i++) {
    ns[i] = bench_match(sizes[i], &share[i]);
    printf("qe_acl_match %5zu rules %9.1f %11.0f%%\n", sizes[i], ns[i],
           100 * share[i]);
  }
  ct_ns = bench_ct();
  printf("qe_ct_check known flow %9.1f\n", ct_ns);
  printf("{\"acl_match_ns\":{\"0\":%.1f,\"10\":%.1f,\"100\":%.1f,\"1000\":%.1f},"
         "\"ct_check_known_flow_ns\":%.1f}\n",
         ns[0], ns[1], ns[2], ns[3], ct_ns);
  return 0;
}
