/*
 * Compiled policy table (see acl.h).
 *
 * The rules are split at build time by family and by protocol class (TCP,
 * UDP, the family's ICMP, anything else): a flow only walks the rules that
 * can possibly match its family and protocol, in their original order, so
 * first-match-wins is kept. In each class list a rule is a small flat record
 * (the checks the class does not need are neutralised: proto 0, ports
 * 0..65535, ICMP type -1) and its prefixes are precomputed (address, mask)
 * word pairs, so a prefix test is two ANDs and two compares.
 */
#include "acl.h"

#include <stdlib.h>
#include <string.h>

enum { CL_TCP, CL_UDP, CL_ICMP, CL_OTHER, CL_N };

typedef struct acl_pfx {
  uint64_t hi, lo, mhi, mlo; /* prefix with host bits zero, and its mask */
} acl_pfx;

typedef struct acl_crule {
  uint32_t idx; /* index in the caller's rule list */
  uint8_t action;
  uint8_t proto; /* 0: implied by the class; else the literal protocol */
  uint16_t lo, hi;
  int16_t icmp;
  uint32_t src0, nsrc, dst0, ndst; /* into acl_fam.pfx; n 0 = any */
} acl_crule;

typedef struct acl_fam {
  acl_pfx *pfx;
  acl_crule *cl[CL_N];
  uint32_t ncl[CL_N];
} acl_fam;

struct qe_acl {
  acl_fam fam[2]; /* IPv4, IPv6 */
  size_t n;
  uint8_t dflt;
  uint64_t *hits; /* n + 1: the last one counts the default */
};

static uint64_t load64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) {
    v = (v << 8) | p[i];
  }
  return v;
}

/* IPv4 in the top 32 bits of hi, as in fib.c. */
static void addr_words(uint8_t family, const uint8_t *addr, uint64_t *hi,
                       uint64_t *lo) {
  if (family == 4) {
    *hi = ((uint64_t)addr[0] << 56) | ((uint64_t)addr[1] << 48) |
          ((uint64_t)addr[2] << 40) | ((uint64_t)addr[3] << 32);
    *lo = 0;
  } else {
    *hi = load64(addr);
    *lo = load64(addr + 8);
  }
}

static uint64_t mask64(unsigned bits) {
  return bits == 0 ? 0 : bits >= 64 ? UINT64_MAX : ~(UINT64_MAX >> bits);
}

static int rule_valid(const qe_acl_rule *r) {
  int ports = r->port_lo != 0 || r->port_hi != 65535;
  if (r->action > QE_ACL_ALLOW || r->port_lo > r->port_hi ||
      r->icmp_type < -1 || r->icmp_type > 255) {
    return 0;
  }
  if (ports && r->proto != 0 && r->proto != 6 && r->proto != 17) {
    return 0;
  }
  if (r->icmp_type >= 0 && r->proto != 0 && r->proto != QE_ACL_PROTO_ICMP &&
      r->proto != 58) {
    return 0;
  }
  if ((r->nsrc && r->src == NULL) || (r->ndst && r->dst == NULL)) {
    return 0;
  }
  for (int side = 0; side < 2; side++) {
    const qe_acl_prefix *p = side ? r->dst : r->src;
    uint32_t np = side ? r->ndst : r->nsrc;
    for (uint32_t i = 0; i < np; i++) {
      if ((p[i].family != 4 && p[i].family != 6) ||
          p[i].plen > (p[i].family == 4 ? 32 : 128)) {
        return 0;
      }
    }
  }
  return 1;
}

static uint32_t count_fam(const qe_acl_prefix *p, uint32_t n, uint8_t family) {
  uint32_t c = 0;
  for (uint32_t i = 0; i < n; i++) {
    c += p[i].family == family;
  }
  return c;
}

/* Whether rule r can match flows of (family, class); fills the class
 * record's neutralised fields when it can. */
static int rule_fits(const qe_acl_rule *r, uint8_t family, int cl,
                     acl_crule *c) {
  uint8_t icmp = family == 4 ? 1 : 58;
  uint8_t proto = r->proto == QE_ACL_PROTO_ICMP ? icmp : r->proto;
  int ports = r->port_lo != 0 || r->port_hi != 65535;
  c->proto = 0;
  c->lo = 0;
  c->hi = 65535;
  c->icmp = -1;
  switch (cl) {
  case CL_TCP:
  case CL_UDP:
    if ((proto != 0 && proto != (cl == CL_TCP ? 6 : 17)) || r->icmp_type >= 0) {
      return 0;
    }
    c->lo = r->port_lo;
    c->hi = r->port_hi;
    return 1;
  case CL_ICMP:
    if ((proto != 0 && proto != icmp) || ports) {
      return 0;
    }
    c->icmp = r->icmp_type;
    return 1;
  default:
    if (proto == 6 || proto == 17 || proto == icmp || ports ||
        r->icmp_type >= 0) {
      return 0;
    }
    c->proto = proto;
    return 1;
  }
}

int qe_acl_new(qe_acl **out, const qe_acl_rule *rules, size_t n,
               uint8_t default_action) {
  qe_acl *acl;
  if (default_action > QE_ACL_ALLOW || n >= QE_ACL_DEFAULT ||
      (n && rules == NULL)) {
    return QE_ERR_INVALID;
  }
  for (size_t i = 0; i < n; i++) {
    if (!rule_valid(&rules[i])) {
      return QE_ERR_INVALID;
    }
  }
  acl = calloc(1, sizeof(*acl));
  if (acl == NULL) {
    return QE_ERR_NOMEM;
  }
  acl->n = n;
  acl->dflt = default_action;
  acl->hits = calloc(n + 1, sizeof(uint64_t));
  if (acl->hits == NULL) {
    goto fail;
  }
  for (int fi = 0; fi < 2; fi++) {
    uint8_t family = fi ? 6 : 4;
    acl_fam *fam = &acl->fam[fi];
    size_t npfx = 0;
    for (size_t i = 0; i < n; i++) {
      npfx += count_fam(rules[i].src, rules[i].nsrc, family) +
              count_fam(rules[i].dst, rules[i].ndst, family);
    }
    fam->pfx = calloc(npfx + 1, sizeof(acl_pfx));
    if (fam->pfx == NULL) {
      goto fail;
    }
    for (int cl = 0; cl < CL_N; cl++) {
      fam->cl[cl] = calloc(n + 1, sizeof(acl_crule));
      if (fam->cl[cl] == NULL) {
        goto fail;
      }
    }
    uint32_t used = 0;
    for (size_t i = 0; i < n; i++) {
      const qe_acl_rule *r = &rules[i];
      uint32_t ns = count_fam(r->src, r->nsrc, family);
      uint32_t nd = count_fam(r->dst, r->ndst, family);
      /* Prefixes given, none of this family: never matches this family. */
      if ((r->nsrc && ns == 0) || (r->ndst && nd == 0)) {
        continue;
      }
      acl_crule c = {.idx = (uint32_t)i, .action = r->action,
                     .src0 = used, .nsrc = ns, .dst0 = used + ns, .ndst = nd};
      for (int side = 0; side < 2; side++) {
        const qe_acl_prefix *p = side ? r->dst : r->src;
        uint32_t np = side ? r->ndst : r->nsrc;
        for (uint32_t k = 0; k < np; k++) {
          if (p[k].family != family) {
            continue;
          }
          acl_pfx *x = &fam->pfx[used++];
          unsigned pl = p[k].plen;
          addr_words(family, p[k].addr, &x->hi, &x->lo);
          x->mhi = mask64(pl > 64 ? 64 : pl);
          x->mlo = mask64(pl > 64 ? pl - 64 : 0);
          x->hi &= x->mhi;
          x->lo &= x->mlo;
        }
      }
      for (int cl = 0; cl < CL_N; cl++) {
        if (rule_fits(r, family, cl, &c)) {
          fam->cl[cl][fam->ncl[cl]++] = c;
        }
      }
    }
  }
  *out = acl;
  return 0;
fail:
  qe_acl_del(acl);
  return QE_ERR_NOMEM;
}

void qe_acl_del(qe_acl *acl) {
  if (acl == NULL) {
    return;
  }
  for (int fi = 0; fi < 2; fi++) {
    free(acl->fam[fi].pfx);
    for (int cl = 0; cl < CL_N; cl++) {
      free(acl->fam[fi].cl[cl]);
    }
  }
  free(acl->hits);
  free(acl);
}

static int any_pfx(const acl_pfx *p, uint32_t n, uint64_t hi, uint64_t lo) {
  for (uint32_t i = 0; i < n; i++) {
    if ((hi & p[i].mhi) == p[i].hi && (lo & p[i].mlo) == p[i].lo) {
      return 1;
    }
  }
  return 0;
}

uint32_t qe_acl_match(const qe_acl *acl, const qe_flow *f, uint8_t *action) {
  const acl_fam *fam;
  const acl_crule *c, *end;
  uint64_t shi, slo, dhi, dlo;
  uint8_t icmp = f->family == 4 ? 1 : 58;
  int cl;
  if (acl == NULL || (f->family != 4 && f->family != 6)) {
    *action = acl ? acl->dflt : QE_ACL_DENY;
    return QE_ACL_DEFAULT;
  }
  fam = &acl->fam[f->family == 6];
  cl = f->proto == 6 ? CL_TCP
       : f->proto == 17 ? CL_UDP
       : f->proto == icmp ? CL_ICMP
                          : CL_OTHER;
  addr_words(f->family, f->src, &shi, &slo);
  addr_words(f->family, f->dst, &dhi, &dlo);
  /* Non-port protocols see a port of 0, inside every neutralised range. */
  uint16_t dport = cl <= CL_UDP ? f->dport : 0;
  int16_t type = cl == CL_ICMP ? f->icmp_type : -1;
  for (c = fam->cl[cl], end = c + fam->ncl[cl]; c < end; c++) {
    if ((c->proto != 0 && c->proto != f->proto) || dport < c->lo ||
        dport > c->hi || (c->icmp >= 0 && c->icmp != type)) {
      continue;
    }
    if (c->nsrc && !any_pfx(fam->pfx + c->src0, c->nsrc, shi, slo)) {
      continue;
    }
    if (c->ndst && !any_pfx(fam->pfx + c->dst0, c->ndst, dhi, dlo)) {
      continue;
    }
    *action = c->action;
    return c->idx;
  }
  *action = acl->dflt;
  return QE_ACL_DEFAULT;
}

size_t qe_acl_size(const qe_acl *acl) { return acl ? acl->n : 0; }

uint8_t qe_acl_default_action(const qe_acl *acl) {
  return acl ? acl->dflt : QE_ACL_DENY;
}

void qe_acl_hit(const qe_acl *acl, uint32_t rule) {
  if (acl == NULL) {
    return;
  }
  size_t i = rule == QE_ACL_DEFAULT ? acl->n : rule;
  if (i <= acl->n) {
    __atomic_fetch_add(&acl->hits[i], 1, __ATOMIC_RELAXED);
  }
}

uint64_t qe_acl_hits(const qe_acl *acl, uint32_t rule) {
  if (acl == NULL) {
    return 0;
  }
  size_t i = rule == QE_ACL_DEFAULT ? acl->n : rule;
  return i <= acl->n ? __atomic_load_n(&acl->hits[i], __ATOMIC_RELAXED) : 0;
}
