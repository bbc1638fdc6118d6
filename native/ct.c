/*
 * Connection tracker (see ct.h).
 *
 * One hash table holds three kinds of entries: flows (TCP, UDP, other
 * protocols), ICMP flows (echo keyed by its id, other informational types
 * by their type) and passed first fragments. A flow's key is direction-free:
 * its two endpoints (address, port) are stored in a fixed order, so a packet
 * and its reply find the same entry with one lookup, and the entry says
 * which side initiated.
 *
 * Open addressing with linear probing, at most half full (capacity entries
 * in at least 2 * capacity slots), deletion by backward shift so there are
 * no tombstones. Expired entries are removed when a lookup meets them, and
 * all at once by a sweep when the table is full; the sweep also records the
 * earliest expiry left, so a full table whose entries are all alive refuses
 * a new flow at once instead of scanning on every packet.
 */
#include "ct.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum { K_FLOW, K_ECHO, K_ICMP, K_FRAG };

/* TCP state bits. */
enum { T_EST = 1, T_FIN_INIT = 2, T_FIN_RESP = 4, T_RST = 8 };

enum { TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_ACK = 0x10 };

typedef struct ct_key {
  uint8_t a[16], b[16]; /* IPv4 in the first 4 bytes, the rest zero */
  uint16_t pa, pb;      /* ports, echo id, ICMP type or fragment id */
  uint8_t family, proto, kind, zero;
} ct_key; /* 40 bytes, no padding: compared and hashed as bytes */

typedef struct ct_entry {
  ct_key key;
  uint64_t expire; /* ms; the entry is dead from this time on */
  uint64_t gen;    /* table generation that decided it */
  uint32_t rule;
  uint32_t hash;
  uint8_t used, allowed;
  uint8_t init_b; /* the initiator is endpoint b */
  uint8_t tcp;    /* T_* */
  int16_t icmp_type; /* the initiator's ICMP type, for a re-decision */
  /* K_FRAG: the transport ports and kind of the flow the fragments belong
   * to, in the first fragment's direction. */
  uint16_t fsport, fdport;
  uint8_t fkind, fproto;
} ct_entry;

struct qe_ct {
  ct_entry *slots;
  size_t mask, cap, count;
  uint64_t next_expiry; /* no entry expires before this (a lower bound) */
  uint64_t seed;
  qe_ct_stats st;
};

/* Where a packet's parts are. */
typedef struct pinfo {
  uint8_t family, proto;
  uint8_t frag; /* 0 not fragmented, 1 first fragment, 2 later fragment */
  uint16_t frag_off; /* in 8-byte units */
  uint32_t frag_id;
  const uint8_t *src, *dst;
  const uint8_t *l4;
  size_t l4len;
} pinfo;

qe_ct *qe_ct_new(size_t capacity) {
  qe_ct *ct;
  size_t slots = 16;
  if (capacity == 0 || capacity > (SIZE_MAX / sizeof(ct_entry)) / 4 ||
      capacity > UINT32_MAX / 4) {
    return NULL;
  }
  while (slots < 2 * capacity) {
    slots *= 2;
  }
  ct = calloc(1, sizeof(*ct));
  if (ct == NULL) {
    return NULL;
  }
  ct->slots = calloc(slots, sizeof(ct_entry));
  if (ct->slots == NULL) {
    free(ct);
    return NULL;
  }
  ct->mask = slots - 1;
  ct->cap = capacity;
  ct->next_expiry = UINT64_MAX;
  /* A secret seed: peers choose the tuples, and must not be able to choose
   * ones that collide into long probe chains. */
  if (getrandom(&ct->seed, sizeof(ct->seed), GRND_NONBLOCK) !=
      (ssize_t)sizeof(ct->seed)) {
    ct->seed = (uint64_t)(uintptr_t)ct ^ 0x9e3779b97f4a7c15ULL;
  }
  ct->st.capacity = capacity;
  return ct;
}

void qe_ct_del(qe_ct *ct) {
  if (ct == NULL) {
    return;
  }
  free(ct->slots);
  free(ct);
}

void qe_ct_stats_get(const qe_ct *ct, qe_ct_stats *out) {
  *out = ct->st;
  out->entries = ct->count;
  out->capacity = ct->cap;
}

/* ---- table ---- */

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint32_t key_hash(const qe_ct *ct, const ct_key *k) {
  uint64_t w[5];
  memcpy(w, k, sizeof(w));
  /* Two independent lanes, so the multiplies overlap: a chain of five
   * mixes was the tracker's largest cost per packet. */
  uint64_t x = mix(mix(mix(ct->seed ^ w[0]) ^ w[2]) ^ w[4]);
  uint64_t y = mix(mix(~ct->seed ^ w[1]) ^ w[3]);
  return (uint32_t)mix(x ^ (y << 1 | y >> 63));
}

static ct_entry *ct_find(qe_ct *ct, const ct_key *k, uint32_t h) {
  for (size_t i = h & ct->mask;; i = (i + 1) & ct->mask) {
    ct_entry *e = &ct->slots[i];
    if (!e->used) {
      return NULL;
    }
    if (e->hash == h && memcmp(&e->key, k, sizeof(*k)) == 0) {
      return e;
    }
  }
}

static void ct_remove(qe_ct *ct, ct_entry *e) {
  size_t i = (size_t)(e - ct->slots), j = i;
  for (;;) {
    j = (j + 1) & ct->mask;
    ct_entry *n = &ct->slots[j];
    if (!n->used) {
      break;
    }
    size_t home = n->hash & ct->mask;
    /* n may fill the hole at i when i lies on its probe path [home, j). */
    if (((j - home) & ct->mask) >= ((j - i) & ct->mask)) {
      ct->slots[i] = *n;
      i = j;
    }
  }
  ct->slots[i].used = 0;
  ct->count--;
}

static void set_expire(qe_ct *ct, ct_entry *e, uint64_t when) {
  e->expire = when;
  if (when < ct->next_expiry) {
    ct->next_expiry = when;
  }
}

/* Removes every expired entry ("evict the oldest expired" taken wholesale:
 * one O(slots) pass frees all of them, so a full table pays it rarely). */
static void ct_sweep(qe_ct *ct, uint64_t now) {
  uint64_t next = UINT64_MAX;
  size_t i = 0;
  while (i <= ct->mask) {
    ct_entry *e = &ct->slots[i];
    if (e->used && now >= e->expire) {
      ct_remove(ct, e); /* a later entry may have moved into i: look again */
      ct->st.expired_evicted++;
      continue;
    }
    if (e->used && e->expire < next) {
      next = e->expire;
    }
    i++;
  }
  ct->next_expiry = next;
}

/* A fresh (or the existing) entry for k, or NULL when the table is full of
 * live entries. The caller fills everything but the key. */
static ct_entry *ct_insert(qe_ct *ct, const ct_key *k, uint32_t h,
                           uint64_t now) {
  ct_entry *e = ct_find(ct, k, h);
  size_t i;
  if (e != NULL) {
    return e;
  }
  if (ct->count >= ct->cap) {
    if (now < ct->next_expiry) {
      return NULL;
    }
    ct_sweep(ct, now);
    if (ct->count >= ct->cap) {
      return NULL;
    }
  }
  for (i = h & ct->mask; ct->slots[i].used; i = (i + 1) & ct->mask) {
  }
  e = &ct->slots[i];
  memset(e, 0, sizeof(*e));
  e->used = 1;
  e->key = *k;
  e->hash = h;
  ct->count++;
  ct->st.flows_created++;
  return e;
}

/* ---- parsing ---- */

/* An IP packet's header chain, from the `len` bytes we have of a packet of
 * `total` bytes (more than `len` when the payload lies elsewhere: a TSO
 * segment's headers). `inner` is the packet quoted in an ICMP error: it may
 * be cut short, so its length fields are not held against the bytes we
 * have. Returns 0, or -1 when malformed. */
static int parse_ip(const uint8_t *p, size_t len, size_t total, int inner,
                    pinfo *pi) {
  size_t end, off;
  memset(pi, 0, sizeof(*pi));
  if (len >= 20 && p[0] >> 4 == 4) {
    size_t ihl = (size_t)(p[0] & 15) * 4;
    size_t tot = (size_t)p[2] << 8 | p[3];
    if (ihl < 20 || ihl > len) {
      return -1;
    }
    if (!inner && (tot < ihl || tot > total)) {
      return -1;
    }
    end = inner || tot > len ? len : tot;
    pi->family = 4;
    pi->proto = p[9];
    pi->src = p + 12;
    pi->dst = p + 16;
    pi->frag_off = (uint16_t)(((p[6] & 0x1f) << 8) | p[7]);
    pi->frag = pi->frag_off ? 2 : (p[6] & 0x20) ? 1 : 0;
    pi->frag_id = (uint32_t)p[4] << 8 | p[5];
    pi->l4 = p + ihl;
    pi->l4len = end - ihl;
    return 0;
  }
  if (len < 40 || p[0] >> 4 != 6) {
    return -1;
  }
  {
    size_t plen = (size_t)p[4] << 8 | p[5];
    /* A payload length of 0 is a jumbogram: not on a tunnel, refuse. */
    if (!inner && (plen == 0 || 40 + plen > total)) {
      return -1;
    }
    end = inner || 40 + plen > len ? len : 40 + plen;
  }
  pi->family = 6;
  pi->src = p + 8;
  pi->dst = p + 24;
  uint8_t nh = p[6];
  off = 40;
  for (int n = 0;; n++) {
    size_t hl;
    uint8_t next;
    if (nh != 0 && nh != 43 && nh != 44 && nh != 60 && nh != 51) {
      break; /* transport, or ESP (50) / no next header (59): stop */
    }
    if (n >= QE_CT_MAX_EXT || off + 8 > end) {
      return -1;
    }
    next = p[off];
    if (nh == 44) {
      uint16_t fo = (uint16_t)(((p[off + 2] << 8) | p[off + 3]) >> 3);
      pi->frag_id = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 |
                    (uint32_t)p[off + 6] << 8 | p[off + 7];
      pi->frag_off = fo;
      if (fo != 0) {
        /* A later fragment: what follows is payload, not headers. */
        pi->frag = 2;
        pi->proto = next;
        return 0;
      }
      /* Offset 0 without M is an atomic fragment: not fragmented. */
      pi->frag = (p[off + 3] & 1) ? 1 : 0;
      hl = 8;
    } else if (nh == 51) {
      hl = ((size_t)p[off + 1] + 2) * 4; /* AH counts 4-byte words */
    } else {
      hl = ((size_t)p[off + 1] + 1) * 8;
    }
    if (off + hl > end) {
      return -1;
    }
    off += hl;
    nh = next;
  }
  pi->proto = nh;
  pi->l4 = p + off;
  pi->l4len = end - off;
  return 0;
}

static int icmp_proto(uint8_t family) { return family == 4 ? 1 : 58; }

static int icmp_is_error(uint8_t family, uint8_t type) {
  if (family == 4) {
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  }
  return type >= 1 && type <= 4;
}

static int icmp_is_echo_req(uint8_t family, uint8_t type) {
  return type == (family == 4 ? 8 : 128);
}

static int icmp_is_echo_reply(uint8_t family, uint8_t type) {
  return type == (family == 4 ? 0 : 129);
}

/* The direction-free key of a flow; *from_b says whether src is endpoint b. */
static void make_key(ct_key *k, uint8_t family, uint8_t proto, uint8_t kind,
                     const uint8_t *src, uint16_t sport, const uint8_t *dst,
                     uint16_t dport, uint8_t *from_b) {
  size_t alen = family == 4 ? 4 : 16;
  int c = memcmp(src, dst, alen);
  int swap = c > 0 || (c == 0 && sport > dport);
  memset(k, 0, sizeof(*k));
  memcpy(k->a, swap ? dst : src, alen);
  memcpy(k->b, swap ? src : dst, alen);
  k->pa = swap ? dport : sport;
  k->pb = swap ? sport : dport;
  k->family = family;
  k->proto = proto;
  k->kind = kind;
  *from_b = (uint8_t)swap;
}

/* The transport tuple of a packet: kind, ports (or id, or type), and the
 * ICMP type. Needs the bytes checked by the caller. */
static void l4_tuple(const pinfo *pi, uint8_t *kind, uint16_t *sport,
                     uint16_t *dport, int16_t *type) {
  const uint8_t *l = pi->l4;
  *kind = K_FLOW;
  *sport = *dport = 0;
  *type = -1;
  if (pi->proto == 6 || pi->proto == 17) {
    *sport = (uint16_t)(l[0] << 8 | l[1]);
    *dport = (uint16_t)(l[2] << 8 | l[3]);
  } else if (pi->proto == icmp_proto(pi->family)) {
    *type = l[0];
    if (icmp_is_echo_req(pi->family, l[0]) ||
        icmp_is_echo_reply(pi->family, l[0])) {
      *kind = K_ECHO;
      *sport = *dport = (uint16_t)(l[4] << 8 | l[5]);
    } else {
      *kind = K_ICMP;
      *sport = *dport = l[0];
    }
  }
}

/* ---- verdicts ---- */

static int drop(qe_ct *ct, qe_ct_verdict *out, uint8_t reason, uint32_t rule) {
  ct->st.drops[reason]++;
  out->reason = reason;
  out->rule = rule;
  return 0;
}

static int pass(qe_ct *ct, qe_ct_verdict *out, uint32_t rule) {
  ct->st.passed++;
  out->reason = QE_CT_PASS;
  out->rule = rule;
  return 1;
}

static uint8_t deny_reason(uint32_t rule) {
  return rule == QE_ACL_DEFAULT ? QE_CT_DENY_DEFAULT : QE_CT_DENY_RULE;
}

static uint32_t decide(const qe_acl *acl, const qe_flow *f, uint8_t *action) {
  if (acl == NULL) {
    *action = QE_ACL_ALLOW;
    return QE_ACL_DEFAULT;
  }
  return qe_acl_match(acl, f, action);
}

/* A flow entry's decision under the table now in force, from its initiator
 * tuple. */
static void redecide(qe_ct *ct, const qe_acl *acl, uint64_t gen, ct_entry *e,
                     uint64_t now) {
  qe_flow f;
  uint8_t action;
  const ct_key *k = &e->key;
  memset(&f, 0, sizeof(f));
  f.family = k->family;
  f.proto = k->proto;
  memcpy(f.src, e->init_b ? k->b : k->a, 16);
  memcpy(f.dst, e->init_b ? k->a : k->b, 16);
  f.sport = e->init_b ? k->pb : k->pa;
  f.dport = e->init_b ? k->pa : k->pb;
  f.icmp_type = e->icmp_type;
  e->rule = decide(acl, &f, &action);
  e->gen = gen;
  if (action == QE_ACL_ALLOW) {
    qe_acl_hit(acl, e->rule);
  } else {
    /* Dropped from now on: remembered as a denied flow. */
    e->allowed = 0;
    set_expire(ct, e, now + QE_CT_DENIED_MS);
    ct->st.reload_denied++;
  }
}

/* The live entry of a flow, decided under generation `gen`, or NULL. An
 * expired entry is removed; a denied one from another table is forgotten so
 * that the flow is decided afresh. */
static ct_entry *flow_get(qe_ct *ct, const qe_acl *acl, uint64_t gen,
                          const ct_key *k, uint32_t h, uint64_t now) {
  ct_entry *e = ct_find(ct, k, h);
  if (e == NULL) {
    return NULL;
  }
  if (now >= e->expire || (e->gen != gen && !e->allowed)) {
    ct_remove(ct, e);
    return NULL;
  }
  if (e->gen != gen) {
    redecide(ct, acl, gen, e, now);
  }
  return e;
}

static uint64_t flow_timeout(const ct_entry *e) {
  if (e->key.proto == 6) {
    if ((e->tcp & T_RST) ||
        (e->tcp & (T_FIN_INIT | T_FIN_RESP)) == (T_FIN_INIT | T_FIN_RESP)) {
      return QE_CT_TCP_SHORT_MS;
    }
    return (e->tcp & T_EST) ? QE_CT_TCP_EST_MS : QE_CT_TCP_SHORT_MS;
  }
  return e->key.kind == K_FLOW ? QE_CT_UDP_MS : QE_CT_ICMP_MS;
}

/* An allowed flow's packet: TCP state and the timer. */
static void flow_touch(qe_ct *ct, ct_entry *e, uint8_t from_b,
                       const pinfo *pi, uint64_t now) {
  if (e->key.proto == 6) {
    uint8_t fl = pi->l4[13];
    int from_init = from_b == e->init_b;
    if (from_init && (fl & (TH_SYN | TH_ACK | TH_RST)) == TH_SYN) {
      e->tcp = 0; /* the tuple reused for a new connection */
    }
    if (fl & TH_RST) {
      e->tcp |= T_RST;
    }
    if (fl & TH_FIN) {
      e->tcp |= from_init ? T_FIN_INIT : T_FIN_RESP;
    }
    if (!from_init && (fl & TH_ACK)) {
      e->tcp |= T_EST;
    }
  }
  set_expire(ct, e, now + flow_timeout(e));
}

static void frag_key(ct_key *k, const pinfo *pi) {
  memset(k, 0, sizeof(*k));
  memcpy(k->a, pi->src, pi->family == 4 ? 4 : 16);
  memcpy(k->b, pi->dst, pi->family == 4 ? 4 : 16);
  k->pa = (uint16_t)(pi->frag_id >> 16);
  k->pb = (uint16_t)pi->frag_id;
  k->family = pi->family;
  /* IPv6 fragments are keyed by (src, dst, id) alone: the first fragment's
   * protocol is found after the extension headers, a later one's is not. */
  k->proto = pi->family == 4 ? pi->proto : 0;
  k->kind = K_FRAG;
}

/* A later fragment passes while its first fragment's flow is allowed. */
static int later_fragment(qe_ct *ct, const qe_acl *acl, uint64_t gen,
                          const pinfo *pi, uint64_t now, qe_ct_verdict *out) {
  ct_key k;
  uint8_t kind, from_b;
  uint16_t sport, dport;
  /* RFC 1858: a TCP fragment at offset 1 could rewrite the flags. */
  if (pi->family == 4 && pi->proto == 6 && pi->frag_off == 1) {
    return drop(ct, out, QE_CT_FRAGMENT, QE_ACL_DEFAULT);
  }
  frag_key(&k, pi);
  ct_entry *fe = ct_find(ct, &k, key_hash(ct, &k));
  if (fe == NULL) {
    return drop(ct, out, QE_CT_FRAGMENT, QE_ACL_DEFAULT);
  }
  if (now >= fe->expire) {
    ct_remove(ct, fe);
    return drop(ct, out, QE_CT_FRAGMENT, QE_ACL_DEFAULT);
  }
  kind = fe->fkind;
  sport = fe->fsport;
  dport = fe->fdport;
  uint8_t proto = fe->fproto; /* IPv6: a later one's may be an ext header */
  make_key(&k, pi->family, proto, kind, pi->src, sport, pi->dst, dport,
           &from_b);
  ct_entry *e = flow_get(ct, acl, gen, &k, key_hash(ct, &k), now);
  if (e == NULL || !e->allowed) {
    return drop(ct, out, QE_CT_FRAGMENT, e ? e->rule : QE_ACL_DEFAULT);
  }
  return pass(ct, out, e->rule);
}

/* An ICMP error passes only when the packet it quotes belongs to a live
 * allowed flow; it never creates or refreshes one. */
static int icmp_error(qe_ct *ct, const qe_acl *acl, uint64_t gen,
                      const pinfo *pi, uint64_t now, qe_ct_verdict *out) {
  pinfo in;
  ct_key k;
  uint8_t kind, from_b;
  uint16_t sport, dport;
  int16_t type;
  size_t need;
  if (parse_ip(pi->l4 + 8, pi->l4len - 8, pi->l4len - 8, 1, &in) != 0 ||
      in.family != pi->family || in.frag == 2) {
    return drop(ct, out, QE_CT_NO_FLOW, QE_ACL_DEFAULT);
  }
  /* The error goes back to whoever sent the quoted packet. */
  if (memcmp(in.src, pi->dst, pi->family == 4 ? 4 : 16) != 0) {
    return drop(ct, out, QE_CT_NO_FLOW, QE_ACL_DEFAULT);
  }
  need = in.proto == 6 || in.proto == 17 ? 4
         : in.proto == icmp_proto(in.family) ? 8
                                            : 0;
  if (in.l4len < need) {
    return drop(ct, out, QE_CT_NO_FLOW, QE_ACL_DEFAULT);
  }
  l4_tuple(&in, &kind, &sport, &dport, &type);
  if (type >= 0 && icmp_is_error(in.family, (uint8_t)type)) {
    return drop(ct, out, QE_CT_NO_FLOW, QE_ACL_DEFAULT);
  }
  make_key(&k, in.family, in.proto, kind, in.src, sport, in.dst, dport,
           &from_b);
  ct_entry *e = flow_get(ct, acl, gen, &k, key_hash(ct, &k), now);
  if (e == NULL || !e->allowed) {
    return drop(ct, out, QE_CT_NO_FLOW, e ? e->rule : QE_ACL_DEFAULT);
  }
  return pass(ct, out, e->rule);
}

int qe_ct_check(qe_ct *ct, const qe_acl *acl, uint64_t acl_gen,
                const uint8_t *pkt, size_t len, uint64_t now_ms,
                qe_ct_verdict *out) {
  return qe_ct_check_hdr(ct, acl, acl_gen, pkt, len, len, now_ms, out);
}

int qe_ct_check_hdr(qe_ct *ct, const qe_acl *acl, uint64_t acl_gen,
                    const uint8_t *pkt, size_t len, size_t total,
                    uint64_t now_ms, qe_ct_verdict *out) {
  pinfo pi;
  ct_key k;
  uint8_t kind, from_b, action;
  uint16_t sport, dport;
  int16_t type;
  size_t need;
  uint32_t h;
  ct_entry *e;
  out->created = 0;
  if (len > total || parse_ip(pkt, len, total, 0, &pi) != 0) {
    return drop(ct, out, QE_CT_MALFORMED, QE_ACL_DEFAULT);
  }
  if (pi.frag == 2) {
    return later_fragment(ct, acl, acl_gen, &pi, now_ms, out);
  }
  /* The whole transport header must be here: TCP for its flags, ICMP for
   * the echo id or the quoted packet. */
  need = pi.proto == 6 ? 20
         : pi.proto == 17 ? 8
         : pi.proto == icmp_proto(pi.family) ? 8
                                             : 0;
  if (pi.l4len < need) {
    return drop(ct, out, pi.frag ? QE_CT_FRAGMENT : QE_CT_MALFORMED,
                QE_ACL_DEFAULT);
  }
  l4_tuple(&pi, &kind, &sport, &dport, &type);
  if (kind == K_ICMP && icmp_is_error(pi.family, (uint8_t)type)) {
    return icmp_error(ct, acl, acl_gen, &pi, now_ms, out);
  }
  make_key(&k, pi.family, pi.proto, kind, pi.src, sport, pi.dst, dport,
           &from_b);
  h = key_hash(ct, &k);
  e = flow_get(ct, acl, acl_gen, &k, h, now_ms);
  if (e != NULL && !e->allowed) {
    /* A remembered deny: counted, not matched again. */
    qe_acl_hit(acl, e->rule);
    return drop(ct, out, deny_reason(e->rule), e->rule);
  }
  if (e == NULL) {
    qe_flow f;
    uint32_t rule;
    if (pi.proto == 6 &&
        (pi.l4[13] & (TH_SYN | TH_ACK | TH_RST | TH_FIN)) != TH_SYN) {
      return drop(ct, out, QE_CT_NO_FLOW, QE_ACL_DEFAULT);
    }
    if (kind == K_ECHO && !icmp_is_echo_req(pi.family, (uint8_t)type)) {
      return drop(ct, out, QE_CT_NO_FLOW, QE_ACL_DEFAULT);
    }
    memset(&f, 0, sizeof(f));
    f.family = pi.family;
    f.proto = pi.proto;
    memcpy(f.src, pi.src, pi.family == 4 ? 4 : 16);
    memcpy(f.dst, pi.dst, pi.family == 4 ? 4 : 16);
    f.sport = sport;
    f.dport = dport;
    f.icmp_type = type;
    rule = decide(acl, &f, &action);
    /* Denies are remembered only while the table is under 3/4 full, so a
     * flood of denied packets cannot crowd allowed flows out. */
    if (action != QE_ACL_ALLOW && ct->count >= ct->cap - ct->cap / 4) {
      qe_acl_hit(acl, rule);
      return drop(ct, out, deny_reason(rule), rule);
    }
    e = ct_insert(ct, &k, h, now_ms);
    if (e == NULL) {
      if (action != QE_ACL_ALLOW) {
        qe_acl_hit(acl, rule);
        return drop(ct, out, deny_reason(rule), rule);
      }
      return drop(ct, out, QE_CT_TABLE_FULL, rule);
    }
    out->created = 1;
    e->allowed = action == QE_ACL_ALLOW;
    e->rule = rule;
    e->gen = acl_gen;
    e->init_b = from_b;
    e->icmp_type = type;
    qe_acl_hit(acl, rule);
    if (!e->allowed) {
      set_expire(ct, e, now_ms + QE_CT_DENIED_MS);
      return drop(ct, out, deny_reason(rule), rule);
    }
  }
  flow_touch(ct, e, from_b, &pi, now_ms);
  uint32_t rule = e->rule;
  if (pi.frag == 1) {
    /* Remember the first fragment so the later ones can follow it. */
    ct_key fk;
    frag_key(&fk, &pi);
    ct_entry *fe = ct_insert(ct, &fk, key_hash(ct, &fk), now_ms);
    if (fe == NULL) {
      return drop(ct, out, QE_CT_TABLE_FULL, rule);
    }
    fe->allowed = 1;
    fe->rule = rule;
    fe->gen = acl_gen;
    fe->fkind = kind;
    fe->fproto = pi.proto;
    fe->fsport = sport;
    fe->fdport = dport;
    set_expire(ct, fe, now_ms + QE_CT_FRAG_MS);
  }
  return pass(ct, out, rule);
}
