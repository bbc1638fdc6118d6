/*
 * The slow twin of acl.c: the rule semantics of acl.h written as plainly as
 * possible, used only by the tests that check the compiled table against it.
 */
#include "acl.h"

static int prefix_has(const qe_acl_prefix *p, const uint8_t *addr) {
  unsigned full = p->plen / 8, rest = p->plen % 8;
  for (unsigned i = 0; i < full; i++) {
    if (p->addr[i] != addr[i]) {
      return 0;
    }
  }
  if (rest) {
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    if ((p->addr[full] & m) != (addr[full] & m)) {
      return 0;
    }
  }
  return 1;
}

static int addr_ok(const qe_acl_prefix *list, uint32_t n, uint8_t family,
                   const uint8_t *addr) {
  if (n == 0) {
    return 1;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (list[i].family == family && prefix_has(&list[i], addr)) {
      return 1;
    }
  }
  return 0;
}

static int rule_matches(const qe_acl_rule *r, const qe_flow *f) {
  uint8_t icmp = f->family == 4 ? 1 : 58;
  if (r->proto != 0) {
    uint8_t want = r->proto == QE_ACL_PROTO_ICMP ? icmp : r->proto;
    if (f->proto != want) {
      return 0;
    }
  }
  if (r->port_lo != 0 || r->port_hi != 65535) {
    if (f->proto != 6 && f->proto != 17) {
      return 0;
    }
    if (f->dport < r->port_lo || f->dport > r->port_hi) {
      return 0;
    }
  }
  if (r->icmp_type >= 0) {
    if (f->proto != icmp || f->icmp_type != r->icmp_type) {
      return 0;
    }
  }
  return addr_ok(r->src, r->nsrc, f->family, f->src) &&
         addr_ok(r->dst, r->ndst, f->family, f->dst);
}

uint32_t qe_acl_naive_match(const qe_acl_rule *rules, size_t n,
                            uint8_t default_action, const qe_flow *f,
                            uint8_t *action) {
  for (size_t i = 0; i < n; i++) {
    if (rule_matches(&rules[i], f)) {
      *action = rules[i].action;
      return (uint32_t)i;
    }
  }
  *action = default_action;
  return QE_ACL_DEFAULT;
}
