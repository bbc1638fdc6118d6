/*
 * Connection tracker: makes the policy table (acl.h) stateful.
 *
 * qe_ct_check() takes one whole IP packet (IPv4 or IPv6), in either
 * direction, and says pass or drop. A packet of a known flow passes both
 * ways while the flow lives; a packet that may start a flow (a TCP SYN
 * without ACK, UDP, an ICMP echo request, any other protocol) is decided by
 * qe_acl_match() on its own tuple, which is then the flow's initiator tuple.
 * Denied flows are remembered briefly too, so a flood of denied packets does
 * not re-run the matcher, and each denied packet is still counted.
 *
 * The table is a fixed-size open-addressing hash table allocated once:
 * nothing is allocated per packet. One tracker belongs to one worker thread
 * (no locks); the table it is given may be shared.
 *
 * Time is the caller's (`now_ms`, monotonic milliseconds); nothing here
 * reads a clock.
 */
#ifndef QE_CT_H
#define QE_CT_H

#include "acl.h"

/* Why a packet was dropped (qe_ct_verdict.reason). */
enum {
  QE_CT_PASS = 0,
  QE_CT_DENY_RULE,    /* a rule denied the flow (verdict.rule says which) */
  QE_CT_DENY_DEFAULT, /* no rule matched and the default is deny */
  QE_CT_NO_FLOW,      /* TCP not a SYN, an echo reply or an ICMP error, for
                         no known allowed flow */
  QE_CT_FRAGMENT,     /* a first fragment without the transport header, or
                         a later fragment whose first one did not pass */
  QE_CT_MALFORMED,    /* bad header lengths, IPv6 extension chain too long
                         or truncated */
  QE_CT_TABLE_FULL,   /* no room for a new flow */
  QE_CT_NREASONS
};

/* Timeouts from a flow's last packet, in milliseconds. */
#define QE_CT_TCP_EST_MS 300000   /* TCP once the responder answered */
#define QE_CT_TCP_SHORT_MS 30000  /* TCP SYN only, FIN both ways, or RST */
#define QE_CT_UDP_MS 60000        /* UDP and protocols without ports */
#define QE_CT_ICMP_MS 30000
#define QE_CT_DENIED_MS 2000      /* a remembered denied flow */
#define QE_CT_FRAG_MS 5000        /* a passed first fragment */
#define QE_CT_MAX_EXT 8           /* IPv6 extension headers walked */

typedef struct qe_ct_verdict {
  uint32_t rule;  /* the rule that decided the flow, or QE_ACL_DEFAULT (also
                     when no rule was consulted: NO_FLOW, FRAGMENT, ...) */
  uint8_t reason; /* QE_CT_PASS or the drop reason */
  uint8_t created; /* 1 when this packet created a flow entry */
} qe_ct_verdict;

typedef struct qe_ct_stats {
  uint64_t passed;
  uint64_t drops[QE_CT_NREASONS]; /* indexed by reason; [QE_CT_PASS] is 0 */
  uint64_t flows_created;         /* allowed and denied entries created */
  uint64_t expired_evicted;       /* expired entries swept to make room */
  uint64_t reload_denied;         /* live flows a new table denied */
  size_t entries, capacity;       /* entries include expired ones not yet
                                     swept */
} qe_ct_stats;

typedef struct qe_ct qe_ct;

/* A tracker for `capacity` entries (flows, remembered denies and passed
 * first fragments share them). NULL on allocation failure or capacity 0. */
qe_ct *qe_ct_new(size_t capacity);
void qe_ct_del(qe_ct *ct);

/*
 * One IP packet `pkt` of `len` bytes at `now_ms`, against table `acl` of
 * generation `acl_gen` (any number that changes when the table does). A flow
 * decided under another generation is decided again, on its initiator tuple,
 * by `acl`: still allowed, it flows on; now denied, it drops from this
 * packet on. A NULL `acl` allows everything (no policy).
 * Returns 1 pass, 0 drop; *out says which rule and why. Per-rule hits are
 * counted in `acl` (qe_acl_hit): one per flow a rule admits, one per packet
 * a rule drops.
 */
int qe_ct_check(qe_ct *ct, const qe_acl *acl, uint64_t acl_gen,
                const uint8_t *pkt, size_t len, uint64_t now_ms,
                qe_ct_verdict *out);

/* The same for a packet of `total` bytes of which the first `len` are here
 * (the IP and transport headers of a TSO segment whose payload lies
 * elsewhere). The transport header must be within `len`. */
int qe_ct_check_hdr(qe_ct *ct, const qe_acl *acl, uint64_t acl_gen,
                    const uint8_t *pkt, size_t len, size_t total,
                    uint64_t now_ms, qe_ct_verdict *out);

void qe_ct_stats_get(const qe_ct *ct, qe_ct_stats *out);

#endif /* QE_CT_H */
