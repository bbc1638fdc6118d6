/*
 * Policy table: an ordered list of allow/deny rules, first match wins, and a
 * default action when none matches (issue 16, "Policy in the data path").
 *
 * A table is immutable once built, like the FIB: the control plane compiles
 * a complete new one and the worker swaps a pointer; a reload never edits a
 * table in place. Matching allocates nothing and may run on any thread. It
 * runs once per new flow (ct.c remembers the verdict for the flow's life),
 * so it is built for 1,000 rules, not for per-packet use.
 *
 * Rule semantics (the naive twin, acl_naive.c, is the reference):
 *  - every given field must match; an omitted field (0 prefixes, proto 0,
 *    ports 0..65535, icmp_type -1) matches anything;
 *  - addresses: the source matches when nsrc is 0 or any source prefix of
 *    the flow's family contains it; the same for the destination. So the
 *    family is implied by the prefixes: a rule with only IPv4 prefixes never
 *    matches an IPv6 flow;
 *  - proto QE_ACL_PROTO_ICMP (1) means ICMP for IPv4 and ICMPv6 (58) for
 *    IPv6; any other value is the literal IP protocol number;
 *  - a port range narrower than 0..65535 matches only TCP and UDP flows (on
 *    the destination port), so with proto 0 it means "TCP or UDP";
 *  - icmp_type >= 0 matches only ICMP flows of the flow's family (ICMPv6
 *    for IPv6) of that type.
 */
#ifndef QE_ACL_H
#define QE_ACL_H

#include "qe.h"

#define QE_ACL_DENY 0
#define QE_ACL_ALLOW 1
#define QE_ACL_PROTO_ICMP 1
#define QE_ACL_DEFAULT UINT32_MAX /* "no rule matched": the default decided */

typedef struct qe_acl_prefix {
  uint8_t family; /* 4 or 6 */
  uint8_t plen;   /* 0..32 or 0..128; host bits are ignored */
  uint8_t addr[16];
} qe_acl_prefix;

typedef struct qe_acl_rule {
  uint8_t action;          /* QE_ACL_DENY or QE_ACL_ALLOW */
  uint8_t proto;           /* 0 any, QE_ACL_PROTO_ICMP, 6 TCP, 17 UDP, ... */
  uint16_t port_lo, port_hi; /* destination port range, inclusive */
  int16_t icmp_type;       /* -1 any, else 0..255 */
  uint32_t nsrc, ndst;     /* 0 = any address */
  const qe_acl_prefix *src, *dst;
} qe_acl_rule;

/* One flow as its initiator sees it: src sends to dst. Addresses of an IPv4
 * flow are in the first 4 bytes. proto is the IP protocol as on the wire (1
 * for ICMP, 58 for ICMPv6). Ports are used for TCP and UDP, icmp_type for
 * ICMP. */
typedef struct qe_flow {
  uint8_t family, proto;
  uint8_t src[16], dst[16];
  uint16_t sport, dport;
  int16_t icmp_type;
} qe_flow;

typedef struct qe_acl qe_acl;

/*
 * Builds a table from `n` rules, copying them and their prefixes.
 * Returns 0, QE_ERR_INVALID (an action other than deny/allow, a prefix's
 * family or length, port_lo > port_hi, a port range on a protocol without
 * ports, an ICMP type on a protocol other than 0/ICMP/58, a type outside
 * -1..255, a NULL prefix list with a count) or QE_ERR_NOMEM.
 */
int qe_acl_new(qe_acl **out, const qe_acl_rule *rules, size_t n,
               uint8_t default_action);
void qe_acl_del(qe_acl *acl);

/* The index of the first rule matching `f` (its action in *action), or
 * QE_ACL_DEFAULT with the default action. */
uint32_t qe_acl_match(const qe_acl *acl, const qe_flow *f, uint8_t *action);

size_t qe_acl_size(const qe_acl *acl);
uint8_t qe_acl_default_action(const qe_acl *acl);

/*
 * Hit counters, one per rule and one for the default (rule QE_ACL_DEFAULT).
 * They live in the table, so a reload starts from zero with the new table
 * and the stats read the counters of the table in force. The caller (ct.c)
 * counts a hit for each flow a rule admits and for each packet a rule
 * drops. Adding is a relaxed atomic: one table may serve several workers.
 * An index past the table reads 0 and is not counted.
 */
void qe_acl_hit(const qe_acl *acl, uint32_t rule);
uint64_t qe_acl_hits(const qe_acl *acl, uint32_t rule);

/* The slow twin: a linear scan over the raw rules, for the tests. */
uint32_t qe_acl_naive_match(const qe_acl_rule *rules, size_t n,
                            uint8_t default_action, const qe_flow *f,
                            uint8_t *action);

#endif /* QE_ACL_H */
