/*
 * The compiled policy table (acl.c) against its naive twin on random rules
 * and flows, IPv4 and IPv6. Prefixes come from a few clusters so that they
 * nest; ports and ICMP types from small sets so that ranges and types hit;
 * protocols include "any", ICMP (1 meaning ICMPv6 for IPv6), a literal 58
 * and a protocol without ports. Then invalid rules are refused and the hit
 * counters count. Usage: acl_test [rounds] [seed]; prints the seed and
 * "N passed, M failed".
 */
#include "../acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint8_t bases[6][16];

/* An address sharing a random-length head with one of the cluster bases. */
static void rand_addr(uint8_t family, uint8_t *addr) {
  size_t len = family == 4 ? 4 : 16;
  memset(addr, 0, 16);
  for (size_t i = 0; i < len; i++) {
    addr[i] = (uint8_t)rnd();
  }
  if (rnd() % 8 != 0) {
    size_t keep = len - (size_t)(rnd() % 3);
    memcpy(addr, bases[rnd() % 6], keep);
    if (rnd() % 2) {
      addr[keep - 1] ^= (uint8_t)(1u << (rnd() % 8)); /* near, not in */
    }
  }
}

static const uint16_t ports[] = {0, 1, 22, 53, 80, 443, 1000, 8080, 65535};
#define NPORTS (sizeof(ports) / sizeof(ports[0]))

static void rand_prefixes(qe_acl_prefix *p, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    p[i].family = rnd() % 2 ? 4 : 6;
    unsigned max = p[i].family == 4 ? 32 : 128;
    /* Mostly long prefixes (hosts, subnets), some short and /0. */
    p[i].plen = (uint8_t)(rnd() % 4 == 0 ? rnd() % (max + 1)
                                         : max - rnd() % (max / 4 + 1));
    rand_addr(p[i].family, p[i].addr); /* host bits left set on purpose */
  }
}

static void rand_rule(qe_acl_rule *r, qe_acl_prefix *pool) {
  static const uint8_t protos[] = {0, 0, 0, 1, 6, 6, 17, 58, 47};
  memset(r, 0, sizeof(*r));
  r->action = (uint8_t)(rnd() % 2);
  r->proto = protos[rnd() % sizeof(protos)];
  r->port_lo = 0;
  r->port_hi = 65535;
  r->icmp_type = -1;
  if ((r->proto == 0 || r->proto == 6 || r->proto == 17) && rnd() % 2) {
    uint16_t a = ports[rnd() % NPORTS], b = ports[rnd() % NPORTS];
    r->port_lo = a < b ? a : b;
    r->port_hi = a < b ? b : a;
    if (rnd() % 3 == 0) {
      r->port_hi = r->port_lo;
    }
  } else if ((r->proto == 0 || r->proto == 1 || r->proto == 58) &&
             rnd() % 2) {
    static const int16_t types[] = {0, 3, 8, 11, 128, 129, 1};
    r->icmp_type = types[rnd() % (sizeof(types) / sizeof(types[0]))];
  }
  r->nsrc = rnd() % 3 == 0 ? 0 : (uint32_t)(1 + rnd() % 3);
  r->ndst = rnd() % 3 == 0 ? 0 : (uint32_t)(1 + rnd() % 3);
  rand_prefixes(pool, r->nsrc);
  rand_prefixes(pool + 3, r->ndst);
  r->src = r->nsrc ? pool : NULL;
  r->dst = r->ndst ? pool + 3 : NULL;
}

static void rand_flow(qe_flow *f) {
  static const uint8_t protos[] = {1, 6, 6, 17, 17, 58, 47};
  static const int16_t types[] = {0, 3, 8, 11, 128, 129, 1, 200};
  memset(f, 0, sizeof(*f));
  f->family = rnd() % 2 ? 4 : 6;
  f->proto = protos[rnd() % sizeof(protos)];
  rand_addr(f->family, f->src);
  rand_addr(f->family, f->dst);
  f->sport = (uint16_t)rnd();
  f->dport = rnd() % 4 ? ports[rnd() % NPORTS] + (uint16_t)(rnd() % 3)
                       : (uint16_t)rnd();
  f->icmp_type = types[rnd() % (sizeof(types) / sizeof(types[0]))];
}

int main(int argc, char **argv) {
  unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 300;
  uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5eed0ac1ULL;
  unsigned passed = 0, failed = 0;
  unsigned long cases = 0, by_rule = 0;
  rng_state = seed;
  printf("acl_test: seed 0x%llx, %u rounds\n", (unsigned long long)seed,
         rounds);
  for (int b = 0; b < 6; b++) {
    for (int i = 0; i < 16; i++) {
      bases[b][i] = (uint8_t)rnd();
    }
  }
  for (unsigned r = 0; r < rounds; r++) {
    size_t n = (size_t)(r % 10 == 0 ? rnd() % 1000 : rnd() % 60);
    qe_acl_rule *rules = calloc(n + 1, sizeof(*rules));
    qe_acl_prefix *pool = calloc(6 * (n + 1), sizeof(*pool));
    qe_acl *acl = NULL;
    uint8_t dflt = (uint8_t)(rnd() % 2);
    unsigned bad = 0;
    if (rules == NULL || pool == NULL) {
      return 2;
    }
    for (size_t i = 0; i < n; i++) {
      rand_rule(&rules[i], pool + 6 * i);
    }
    if (qe_acl_new(&acl, rules, n, dflt) != 0) {
      fprintf(stderr, "round %u: qe_acl_new failed\n", r);
      return 2;
    }
    for (int q = 0; q < 2000; q++) {
      qe_flow f;
      uint8_t wa = 9, ga = 9;
      rand_flow(&f);
      if (n > 0 && rnd() % 2) {
        /* Aim at a rule: take its prefixes' addresses. */
        const qe_acl_rule *t = &rules[rnd() % n];
        if (t->nsrc) {
          const qe_acl_prefix *p = &t->src[rnd() % t->nsrc];
          f.family = p->family;
          memcpy(f.src, p->addr, 16);
          if (f.family == 4) {
            memset(f.src + 4, 0, 12);
          }
        }
        if (t->ndst) {
          const qe_acl_prefix *p = &t->dst[rnd() % t->ndst];
          if (p->family == f.family) {
            memcpy(f.dst, p->addr, 16);
            if (f.family == 4) {
              memset(f.dst + 4, 0, 12);
            }
          }
        }
        if (rnd() % 2) {
          f.dport = t->port_lo;
        }
      }
      uint32_t want = qe_acl_naive_match(rules, n, dflt, &f, &wa);
      uint32_t got = qe_acl_match(acl, &f, &ga);
      cases++;
      by_rule += want != QE_ACL_DEFAULT;
      if (want != got || wa != ga) {
        bad++;
        if (bad < 5) {
          fprintf(stderr,
                  "round %u: family %u proto %u dport %u type %d: want %u/%u "
                  "got %u/%u\n",
                  r, f.family, f.proto, f.dport, f.icmp_type, want, wa, got,
                  ga);
        }
      }
    }
    if (bad) {
      failed++;
    } else {
      passed++;
    }
    qe_acl_del(acl);
    free(rules);
    free(pool);
  }
  {
    /* Copies: the table does not read the caller's rules after building. */
    qe_acl_prefix p = {.family = 4, .plen = 24, .addr = {10, 0, 0, 0}};
    qe_acl_rule rule = {.action = QE_ACL_ALLOW, .port_lo = 0,
                        .port_hi = 65535, .icmp_type = -1, .nsrc = 1,
                        .src = &p};
    qe_acl *acl = NULL;
    qe_flow f = {.family = 4, .proto = 6, .src = {10, 0, 0, 7},
                 .dst = {10, 0, 1, 1}, .dport = 22, .icmp_type = -1};
    uint8_t a = 9;
    int ok = qe_acl_new(&acl, &rule, 1, QE_ACL_DENY) == 0;
    p.addr[0] = 11;
    rule.action = QE_ACL_DENY;
    ok = ok && qe_acl_match(acl, &f, &a) == 0 && a == QE_ACL_ALLOW;
    f.family = 6; /* an IPv4-only rule never matches IPv6 */
    ok = ok && qe_acl_match(acl, &f, &a) == QE_ACL_DEFAULT &&
         a == QE_ACL_DENY;
    /* Hits: per rule and the default; out of range reads 0. */
    qe_acl_hit(acl, 0);
    qe_acl_hit(acl, 0);
    qe_acl_hit(acl, QE_ACL_DEFAULT);
    qe_acl_hit(acl, 5);
    ok = ok && qe_acl_hits(acl, 0) == 2 && qe_acl_hits(acl, QE_ACL_DEFAULT) == 1 &&
         qe_acl_hits(acl, 5) == 0 && qe_acl_size(acl) == 1;
    if (ok) {
      passed++;
    } else {
      failed++;
      fprintf(stderr, "copy/hits check failed\n");
    }
    qe_acl_del(acl);
  }
  {
    /* Invalid rules are refused and nothing is returned. */
    qe_acl_prefix bad4 = {.family = 4, .plen = 33};
    qe_acl_prefix badf = {.family = 5, .plen = 8};
    qe_acl_rule base = {.action = QE_ACL_ALLOW, .port_hi = 65535,
                        .icmp_type = -1};
    qe_acl_rule cases_[8];
    for (int i = 0; i < 8; i++) {
      cases_[i] = base;
    }
    cases_[0].action = 2;
    cases_[1].port_lo = 100, cases_[1].port_hi = 99;
    cases_[2].proto = 47, cases_[2].port_lo = 22, cases_[2].port_hi = 22;
    cases_[3].proto = 6, cases_[3].icmp_type = 8;
    cases_[4].icmp_type = 256;
    cases_[5].nsrc = 1, cases_[5].src = &bad4;
    cases_[6].ndst = 1, cases_[6].dst = &badf;
    cases_[7].nsrc = 1; /* NULL list with a count */
    for (int i = 0; i < 8; i++) {
      qe_acl *acl = NULL;
      if (qe_acl_new(&acl, &cases_[i], 1, QE_ACL_DENY) == QE_ERR_INVALID &&
          acl == NULL) {
        passed++;
      } else {
        failed++;
        fprintf(stderr, "invalid rule %d accepted\n", i);
        qe_acl_del(acl);
      }
    }
    qe_acl *acl = NULL;
    if (qe_acl_new(&acl, &base, 1, 2) == QE_ERR_INVALID) {
      passed++;
    } else {
      failed++;
      qe_acl_del(acl);
    }
  }
  /* A twin test is only worth something if rules actually decide. */
  printf("acl_test: %lu flows compared (%lu decided by a rule); %u passed, %u failed\n",
         cases, by_rule, passed, failed);
  return failed ? 1 : 0;
}
