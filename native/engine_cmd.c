/*
 * Commands: the control thread builds each one whole (tables are validated
 * and compiled here, so a command never fails half-way on the worker), posts
 * it under the engine's mutex and wakes the worker through the eventfd; the
 * worker runs them in call order between two batches of packets.
 */
#include "engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum qe_cmd_type {
  QE_CMD_CONNECT,
  QE_CMD_DISCONNECT,
  QE_CMD_ALLOWED,
  QE_CMD_ROUTES,
  QE_CMD_CONTROL,
  QE_CMD_STATS,
  QE_CMD_STOP,
  QE_CMD_UPLINKS,
  QE_CMD_CONNECT_BONDED,
  QE_CMD_FORGET_BONDED,
  QE_CMD_CLASSES,
  QE_CMD_TABLES,      /* every table at once (qe_engine_set_tables) */
  QE_CMD_READ_TABLES, /* synchronous, like QE_CMD_STATS */
  QE_CMD_RAW,         /* one datagram from the main socket (data, addr) */
} qe_cmd_type;

struct qe_cmd {
  qe_cmd *next;
  qe_cmd_type type;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  uint8_t key[QE_KEYLEN];
  uint8_t *data; /* QE_CMD_CONTROL: the message */
  size_t len;
  int mode; /* QE_CMD_CONNECT_BONDED */
  /* Synchronous commands: `done` and `rv` are set by the worker under the
   * lock; the waiting thread frees the command. */
  qe_stats *stats;
  qe_tables *out;
  int done, rv;
  /* Tables (QE_CMD_TABLES carries all; the one-table commands one each).
   * The worker swaps them in; the old ones come back here to be freed. */
  uint8_t (*allowed)[QE_KEYLEN];
  size_t nallowed;
  qe_routes *routes;
  qe_uplink_conf *uplinks;
  size_t nuplinks;
  qe_class *classes;
  size_t nclasses;
  uint64_t version;
  int accept_bonded;
  uint64_t reorder_max_ns;
  size_t reorder_max_bytes;
  /* The policy: compiled here, swapped in by the worker (the old one comes
   * back to be freed). has_acl: the command carries a policy (or its absence). */
  int has_acl;
  qe_acl *acl;
  uint8_t *acl_blob;
  size_t acl_len;
};

void qe_routes_free(qe_routes *r) {
  if (r) {
    qe_fib_del(r->fib);
    free(r->keys);
    free(r->peers);
    free(r->list);
    free(r);
  }
}

static void cmd_free(qe_cmd *c) {
  if (c) {
    free(c->data);
    free(c->allowed);
    qe_routes_free(c->routes);
    free(c->uplinks);
    free(c->classes);
    qe_acl_del(c->acl);
    free(c->acl_blob);
    free(c);
  }
}

void qe_engine_cmds_free(qe_engine *e) {
  while (e->cmd_head) {
    qe_cmd *c = e->cmd_head;
    e->cmd_head = c->next;
    cmd_free(c);
  }
}

static int key_cmp(const void *a, const void *b) {
  return memcmp(a, b, QE_KEYLEN);
}

/* ---- building tables (control thread) ---- */

static int build_allowed(qe_cmd *c, const uint8_t *keys, size_t n) {
  c->allowed = malloc(n ? n * QE_KEYLEN : 1);
  if (c->allowed == NULL) {
    return QE_ERR_NOMEM;
  }
  if (n) {
    memcpy(c->allowed, keys, n * QE_KEYLEN);
  }
  qsort(c->allowed, n, QE_KEYLEN, key_cmp);
  c->nallowed = n;
  return 0;
}

/* Compiles the routes into a trie; one key slot per distinct peer key. */
static int build_routes(qe_cmd *c, const qe_route *routes, size_t n) {
  qe_fib_entry *entries = calloc(n ? n : 1, sizeof(*entries));
  qe_routes *r = calloc(1, sizeof(*r));
  int rv = QE_ERR_NOMEM;
  if (r == NULL || entries == NULL) {
    goto fail;
  }
  r->keys = calloc(n ? n : 1, QE_KEYLEN);
  r->peers = calloc(n ? n : 1, sizeof(qe_peer *));
  r->list = calloc(n ? n : 1, sizeof(qe_route));
  if (r->keys == NULL || r->peers == NULL || r->list == NULL) {
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    size_t k;
    for (k = 0; k < r->nkeys; k++) {
      if (memcmp(r->keys[k], routes[i].key, QE_KEYLEN) == 0) {
        break;
      }
    }
    if (k == r->nkeys) {
      memcpy(r->keys[r->nkeys++], routes[i].key, QE_KEYLEN);
    }
    entries[i] = (qe_fib_entry){.family = routes[i].family,
                                .plen = routes[i].plen,
                                .value = (uint32_t)k};
    memcpy(entries[i].addr, routes[i].addr, 16);
  }
  if (n) {
    memcpy(r->list, routes, n * sizeof(qe_route));
  }
  r->nlist = n;
  rv = qe_fib_new(&r->fib, entries, n);
  if (rv != 0) {
    goto fail;
  }
  free(entries);
  c->routes = r;
  return 0;
fail:
  free(entries);
  qe_routes_free(r);
  return rv;
}

static int build_uplinks(qe_cmd *c, const qe_uplink_conf *u, size_t n) {
  if (n > QE_MAX_UPLINKS) {
    return QE_ERR_INVALID;
  }
  for (size_t i = 0; i < n; i++) {
    size_t len = strnlen(u[i].name, sizeof(u[i].name));
    if (len == 0 || len > 15) {
      return QE_ERR_INVALID;
    }
    for (size_t k = 0; k < i; k++) {
      if (strcmp(u[k].name, u[i].name) == 0) {
        return QE_ERR_INVALID;
      }
    }
  }
  c->uplinks = calloc(n ? n : 1, sizeof(qe_uplink_conf));
  if (c->uplinks == NULL) {
    return QE_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    c->uplinks[i] = u[i];
    c->uplinks[i].weight = u[i].weight ? u[i].weight : 1;
    c->uplinks[i].role = u[i].role ? 1 : 0;
  }
  c->nuplinks = n;
  return 0;
}

/*
 * The policy's packed form (big-endian), as the control plane sends it and
 * reads it back:
 *   u8 default action (0 deny, 1 allow), u8 0, u16 0, u32 nrules, then per
 *   rule: u8 action, u8 proto, u16 port_lo, u16 port_hi, i16 icmp_type,
 *   u16 nsrc, u16 ndst, then nsrc + ndst prefixes of 18 bytes (u8 family,
 *   u8 plen, 16 address bytes).
 */
#define ACL_MAX_RULES 65536
#define ACL_PREFIX_REC 18

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static int build_acl(qe_cmd *c, const uint8_t *blob, size_t len) {
  qe_acl_rule *rules = NULL;
  qe_acl_prefix *prefixes = NULL;
  size_t n, off = 8, np = 0;
  int rv = QE_ERR_INVALID;
  c->has_acl = 1;
  if (len == 0) {
    return 0; /* no policy */
  }
  if (len < 8 || blob[0] > 1) {
    return QE_ERR_INVALID;
  }
  n = (size_t)blob[4] << 24 | (size_t)blob[5] << 16 | (size_t)blob[6] << 8 | blob[7];
  if (n > ACL_MAX_RULES || len > 64u * 1024 * 1024) {
    return QE_ERR_INVALID;
  }
  /* Prefixes are at most (len - 8) / 18: one array for all of them. */
  rules = calloc(n ? n : 1, sizeof(*rules));
  prefixes = calloc((len - 8) / ACL_PREFIX_REC + 1, sizeof(*prefixes));
  if (rules == NULL || prefixes == NULL) {
    rv = QE_ERR_NOMEM;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    qe_acl_rule *r = &rules[i];
    size_t ns, nd;
    if (off + 12 > len) {
      goto out;
    }
    r->action = blob[off];
    r->proto = blob[off + 1];
    r->port_lo = be16(blob + off + 2);
    r->port_hi = be16(blob + off + 4);
    r->icmp_type = (int16_t)be16(blob + off + 6);
    ns = be16(blob + off + 8);
    nd = be16(blob + off + 10);
    off += 12;
    if (off + (ns + nd) * ACL_PREFIX_REC > len) {
      goto out;
    }
    r->nsrc = (uint32_t)ns;
    r->ndst = (uint32_t)nd;
    r->src = prefixes + np;
    r->dst = prefixes + np + ns;
    for (size_t j = 0; j < ns + nd; j++, off += ACL_PREFIX_REC) {
      qe_acl_prefix *x = &prefixes[np++];
      x->family = blob[off];
      x->plen = blob[off + 1];
      memcpy(x->addr, blob + off + 2, 16);
    }
  }
  if (off != len) {
    goto out;
  }
  c->acl_blob = malloc(len);
  if (c->acl_blob == NULL) {
    rv = QE_ERR_NOMEM;
    goto out;
  }
  memcpy(c->acl_blob, blob, len);
  c->acl_len = len;
  rv = qe_acl_new(&c->acl, rules, n, blob[0]);
out:
  free(rules);
  free(prefixes);
  return rv;
}

static int build_classes(qe_cmd *c, const qe_class *classes, size_t n) {
  if (n > QE_MAX_CLASSES) {
    return QE_ERR_INVALID;
  }
  for (size_t i = 0; i < n; i++) {
    if (classes[i].nports > QE_CLASS_MAX_PORTS ||
        memchr(classes[i].uplink, 0, sizeof(classes[i].uplink)) == NULL) {
      return QE_ERR_INVALID;
    }
  }
  if (n) {
    c->classes = malloc(n * sizeof(qe_class));
    if (c->classes == NULL) {
      return QE_ERR_NOMEM;
    }
    memcpy(c->classes, classes, n * sizeof(qe_class));
  }
  c->nclasses = n;
  return 0;
}

/* ---- applying them (worker) ---- */

static void apply_allowed(qe_engine *e, qe_cmd *cmd, qe_ts ts) {
  uint8_t(*old)[QE_KEYLEN] = e->allowed;
  e->allowed = cmd->allowed;
  e->nallowed = cmd->nallowed;
  cmd->allowed = old;
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c;
    if (i >= e->nactive) {
      continue; /* a close took more than one connection */
    }
    c = &e->conns[e->active[i]];
    if (c->key_known && !qe_engine_key_allowed(e, c->peer_key)) {
      qe_conn_close(c, "not-allowed", QE_APP_NOT_ALLOWED, ts);
    }
  }
}

static void apply_routes(qe_engine *e, qe_cmd *cmd) {
  qe_routes *r = cmd->routes;
  for (size_t i = 0; i < r->nkeys; i++) {
    r->peers[i] = qe_engine_peer_get(e, r->keys[i], 1);
  }
  cmd->routes = e->routes;
  e->routes = r;
}

static void apply_classes(qe_engine *e, qe_cmd *cmd) {
  qe_class *old = e->classes;
  e->classes = cmd->classes;
  e->nclasses = cmd->nclasses;
  cmd->classes = old;
}

/* Turning bonded paths off closes the ones dialled to us: their diallers
 * fall back to a plain connection (qe_bond_refused). */
static void apply_accept_bonded(qe_engine *e, int accept, qe_ts ts) {
  e->accept_bonded = accept;
  if (accept) {
    return;
  }
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c;
    if (i >= e->nactive) {
      continue;
    }
    c = &e->conns[e->active[i]];
    if (c->is_path && c->server) {
      e->g.bond_refused++;
      qe_conn_close(c, "bonding-refused", QE_APP_NO_BOND, ts);
    }
  }
}

/* The same policy again keeps the table (and its hit counters) and every
 * flow's decision; another one bumps the generation, so each flow is
 * decided again by it on its next packet. */
static void apply_acl(qe_engine *e, qe_cmd *cmd) {
  qe_acl *old;
  uint8_t *old_blob;
  if (!cmd->has_acl) {
    return;
  }
  if (cmd->acl_len == e->acl_len &&
      (e->acl_len == 0 || memcmp(cmd->acl_blob, e->acl_blob, e->acl_len) == 0)) {
    return;
  }
  if (cmd->acl != NULL && e->ct == NULL) {
    e->ct = qe_ct_new(QE_CT_CAPACITY);
    if (e->ct == NULL) {
      return; /* no memory: the previous policy stays */
    }
  }
  old = e->acl;
  old_blob = e->acl_blob;
  e->acl = cmd->acl;
  e->acl_blob = cmd->acl_blob;
  e->acl_len = cmd->acl_len;
  e->acl_gen++;
  cmd->acl = old;
  cmd->acl_blob = old_blob;
}

static void apply_tables(qe_engine *e, qe_cmd *cmd, qe_ts ts) {
  apply_allowed(e, cmd, ts);
  apply_routes(e, cmd);
  apply_classes(e, cmd);
  qe_uplinks_apply(e, cmd->uplinks, cmd->nuplinks, ts);
  apply_accept_bonded(e, cmd->accept_bonded, ts);
  qe_bond_set_reorder(e, cmd->reorder_max_ns, cmd->reorder_max_bytes);
  apply_acl(e, cmd);
  e->tables_version = cmd->version;
}

/* Copies what the worker enforces now into `out` (malloc'd arrays). */
static int read_tables(qe_engine *e, qe_tables *out) {
  size_t nroutes = e->routes ? e->routes->nlist : 0, nup = 0;
  *out = (qe_tables){.version = e->tables_version,
                     .accept_bonded = e->accept_bonded,
                     .reorder_max_ns = e->reorder_max_ns,
                     .reorder_max_bytes = e->reorder_max_bytes};
  out->allowed = malloc(e->nallowed ? e->nallowed * QE_KEYLEN : 1);
  out->routes = malloc(nroutes ? nroutes * sizeof(qe_route) : 1);
  out->uplinks = calloc(QE_MAX_UPLINKS, sizeof(qe_uplink_conf));
  out->classes = malloc(e->nclasses ? e->nclasses * sizeof(qe_class) : 1);
  if (!out->allowed || !out->routes || !out->uplinks || !out->classes) {
    qe_tables_free(out);
    return QE_ERR_NOMEM;
  }
  if (e->nallowed) {
    memcpy(out->allowed, e->allowed, e->nallowed * QE_KEYLEN);
  }
  out->nallowed = e->nallowed;
  if (nroutes) {
    memcpy(out->routes, e->routes->list, nroutes * sizeof(qe_route));
  }
  out->nroutes = nroutes;
  /* In the order given: by rank (slots are reused as uplinks come and go). */
  for (unsigned rank = 0; rank < QE_MAX_UPLINKS; rank++) {
    for (size_t i = 0; i < QE_MAX_UPLINKS; i++) {
      const qe_uplink *u = &e->uplinks[i];
      if (u->used && u->rank == rank) {
        qe_uplink_conf *x = &out->uplinks[nup++];
        memcpy(x->name, u->name, sizeof(x->name));
        x->weight = u->weight;
        x->priority = u->priority;
        x->role = u->role;
        x->cost = u->cost;
        x->rate_bps = u->rate_bps;
      }
    }
  }
  out->nuplinks = nup;
  if (e->nclasses) {
    memcpy(out->classes, e->classes, e->nclasses * sizeof(qe_class));
  }
  out->nclasses = e->nclasses;
  if (e->acl_len) {
    uint8_t *b = malloc(e->acl_len);
    if (b == NULL) {
      qe_tables_free(out);
      return QE_ERR_NOMEM;
    }
    memcpy(b, e->acl_blob, e->acl_len);
    out->acl = b;
    out->acl_len = e->acl_len;
  }
  return 0;
}

void qe_tables_free(qe_tables *t) {
  free((void *)t->acl);
  free(t->allowed);
  free(t->routes);
  free(t->uplinks);
  free(t->classes);
  *t = (qe_tables){0};
}

/* ---- running commands (worker) ---- */

static void cmd_target_add(qe_engine *e, qe_cmd *cmd, qe_ts ts) {
  qe_bond_target *free_t = NULL, *t = NULL;
  for (size_t i = 0; i < QE_MAX_TARGETS; i++) {
    qe_bond_target *x = &e->targets[i];
    if (x->used && qe_sockaddr_eq((struct sockaddr *)&x->addr,
                                  (struct sockaddr *)&cmd->addr)) {
      t = x;
      break;
    }
    if (!x->used && free_t == NULL) {
      free_t = x;
    }
  }
  if (t == NULL && free_t != NULL) {
    t = free_t;
    *t = (qe_bond_target){.used = 1, .addrlen = cmd->addrlen};
    memcpy(&t->addr, &cmd->addr, cmd->addrlen);
  }
  if (t == NULL) {
    qe_engine_emit(e, QE_EV_ERROR, NULL, "connect-failed", NULL, 0);
    return;
  }
  t->mode = (uint8_t)cmd->mode;
  t->refused = 0;
  memset(t->last_dial, 0, sizeof(t->last_dial));
  qe_bond_tick(e, ts);
}

/* The endpoint left the config: no more dials, and the paths we dialled to
 * it close (what they had in flight goes to the others). */
static void cmd_target_forget(qe_engine *e, qe_cmd *cmd, qe_ts ts) {
  for (size_t i = 0; i < QE_MAX_TARGETS; i++) {
    qe_bond_target *x = &e->targets[i];
    if (x->used && qe_sockaddr_eq((struct sockaddr *)&x->addr,
                                  (struct sockaddr *)&cmd->addr)) {
      x->used = 0;
    }
  }
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c = &e->conns[e->active[i]];
    if (c->is_path && !c->server &&
        qe_sockaddr_eq((struct sockaddr *)&c->remote,
                       (struct sockaddr *)&cmd->addr)) {
      qe_conn_close(c, "forgotten", QE_APP_NO_ERROR, ts);
    }
  }
}

static void cmd_disconnect(qe_engine *e, qe_cmd *cmd, qe_ts ts) {
  for (size_t i = e->nactive; i-- > 0;) {
    qe_conn *c = &e->conns[e->active[i]];
    if (c->key_known && memcmp(c->peer_key, cmd->key, QE_KEYLEN) == 0) {
      if (c->is_path && !c->server) {
        for (size_t k = 0; k < QE_MAX_TARGETS; k++) {
          if (e->targets[k].used &&
              qe_sockaddr_eq((struct sockaddr *)&e->targets[k].addr,
                             (struct sockaddr *)&c->remote)) {
            e->targets[k].used = 0; /* no more redials */
          }
        }
      }
      qe_conn_close(c, "disconnected", QE_APP_NO_ERROR, ts);
    }
  }
}

/* Wakes the thread waiting in cmd_post_wait; it frees the command. */
static void cmd_done(qe_engine *e, qe_cmd *cmd, int rv) {
  pthread_mutex_lock(&e->lock);
  cmd->rv = rv;
  cmd->done = 1;
  pthread_cond_broadcast(&e->cond);
  pthread_mutex_unlock(&e->lock);
}

static void cmd_run(qe_engine *e, qe_cmd *cmd, qe_ts ts) {
  switch (cmd->type) {
  case QE_CMD_CONNECT:
    if (qe_engine_conn_by_remote(e, (struct sockaddr *)&cmd->addr) == NULL) {
      int rv = qe_conn_client_new(e, (struct sockaddr *)&cmd->addr,
                                  cmd->addrlen, cmd->mode, ts);
      if (rv != 0) {
        qe_engine_emit(e, QE_EV_ERROR, NULL, "connect-failed", NULL, 0);
      }
    }
    break;
  case QE_CMD_DISCONNECT:
    cmd_disconnect(e, cmd, ts);
    break;
  case QE_CMD_RAW:
    qe_engine_send_raw_now(e, (struct sockaddr *)&cmd->addr, cmd->addrlen,
                           cmd->data, cmd->len);
    break;
  case QE_CMD_ALLOWED:
    apply_allowed(e, cmd, ts);
    break;
  case QE_CMD_ROUTES:
    apply_routes(e, cmd);
    break;
  case QE_CMD_CONTROL: {
    qe_peer *p = qe_engine_peer_get(e, cmd->key, 0);
    if (p && p->conn) {
      qe_conn_queue_control(p->conn, cmd->data, cmd->len);
    }
    break;
  }
  case QE_CMD_STATS:
    qe_engine_fill_stats(e, cmd->stats);
    cmd_done(e, cmd, 0);
    return;
  case QE_CMD_READ_TABLES:
    cmd_done(e, cmd, read_tables(e, cmd->out));
    return;
  case QE_CMD_STOP:
    e->stopping = 1;
    break;
  case QE_CMD_UPLINKS:
    qe_uplinks_apply(e, cmd->uplinks, cmd->nuplinks, ts);
    break;
  case QE_CMD_CLASSES:
    apply_classes(e, cmd);
    break;
  case QE_CMD_TABLES:
    apply_tables(e, cmd, ts);
    break;
  case QE_CMD_CONNECT_BONDED:
    cmd_target_add(e, cmd, ts);
    break;
  case QE_CMD_FORGET_BONDED:
    cmd_target_forget(e, cmd, ts);
    break;
  }
  cmd_free(cmd);
}

void qe_engine_run_commands(qe_engine *e, qe_ts ts) {
  uint64_t x;
  qe_cmd *list;
  while (read(e->evfd, &x, sizeof(x)) > 0) {
  }
  pthread_mutex_lock(&e->lock);
  list = e->cmd_head;
  e->cmd_head = e->cmd_tail = NULL;
  pthread_mutex_unlock(&e->lock);
  while (list) {
    qe_cmd *next = list->next;
    cmd_run(e, list, ts);
    list = next;
  }
}

/* ---- posting (control thread) ---- */

/* Queues under the lock; 0, or QE_ERR_STATE (the command is freed then). */
static int cmd_enqueue(qe_engine *e, qe_cmd *cmd) {
  pthread_mutex_lock(&e->lock);
  if (!e->started || e->worker_done) {
    pthread_mutex_unlock(&e->lock);
    cmd_free(cmd);
    return QE_ERR_STATE;
  }
  cmd->next = NULL;
  if (e->cmd_tail) {
    e->cmd_tail->next = cmd;
  } else {
    e->cmd_head = cmd;
  }
  e->cmd_tail = cmd;
  pthread_mutex_unlock(&e->lock);
  return 0;
}

static int cmd_post(qe_engine *e, qe_cmd *cmd) {
  uint64_t one = 1;
  int rv = cmd_enqueue(e, cmd);
  if (rv != 0) {
    return rv;
  }
  if (write(e->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    return QE_ERR_SYS;
  }
  return 0;
}

/* Posts and waits for the worker to run it (microseconds): its rv, or
 * QE_ERR_STATE if the worker exited first (qe_engine_del frees it then). */
static int cmd_post_wait(qe_engine *e, qe_cmd *c) {
  int rv = cmd_enqueue(e, c);
  if (rv != 0) {
    return rv;
  }
  {
    /* Cannot fail short of a counter overflow; the wait below copes. */
    uint64_t one = 1;
    ssize_t w = write(e->evfd, &one, sizeof(one));
    (void)w;
  }
  pthread_mutex_lock(&e->lock);
  while (!c->done && !e->worker_done) {
    pthread_cond_wait(&e->cond, &e->lock);
  }
  rv = c->done ? c->rv : QE_ERR_STATE;
  pthread_mutex_unlock(&e->lock);
  if (c->done) {
    free(c);
  }
  return rv;
}

static qe_cmd *cmd_new(qe_cmd_type type) {
  qe_cmd *c = calloc(1, sizeof(*c));
  if (c) {
    c->type = type;
  }
  return c;
}

int qe_engine_stop(qe_engine *e) {
  qe_cmd *c = cmd_new(QE_CMD_STOP);
  return c ? cmd_post(e, c) : QE_ERR_NOMEM;
}

/* Posts a command that carries an address (connect, forget). */
static int post_addr_cmd(qe_engine *e, qe_cmd_type type, const char *addr,
                         uint16_t port, int mode) {
  qe_cmd *c = cmd_new(type);
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  if (port == 0 || qe_udp_addr(&e->udp, addr, port, &c->addr, &c->addrlen)) {
    cmd_free(c);
    return QE_ERR_INVALID;
  }
  c->mode = mode;
  return cmd_post(e, c);
}

int qe_engine_connect(qe_engine *e, const char *addr, uint16_t port) {
  return post_addr_cmd(e, QE_CMD_CONNECT, addr, port, 0);
}

int qe_engine_connect_relayed(qe_engine *e, const char *addr,
                              uint16_t port) {
  return post_addr_cmd(e, QE_CMD_CONNECT, addr, port, 1);
}

int qe_engine_send_raw(qe_engine *e, const char *addr, uint16_t port,
                       const uint8_t *data, size_t len) {
  qe_cmd *c;
  if (data == NULL || len < QE_RAW_MIN || len > QE_RAW_MAX ||
      memcmp(data, QE_RAW_MAGIC, 4) != 0) {
    return QE_ERR_INVALID;
  }
  c = cmd_new(QE_CMD_RAW);
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  if (port == 0 || qe_udp_addr(&e->udp, addr, port, &c->addr, &c->addrlen)) {
    cmd_free(c);
    return QE_ERR_INVALID;
  }
  c->data = malloc(len);
  if (c->data == NULL) {
    cmd_free(c);
    return QE_ERR_NOMEM;
  }
  memcpy(c->data, data, len);
  c->len = len;
  return cmd_post(e, c);
}

int qe_engine_connect_bonded(qe_engine *e, const char *addr, uint16_t port,
                             int mode) {
  if (mode < 0 || mode >= QE_MODE_COUNT) {
    return QE_ERR_INVALID;
  }
  return post_addr_cmd(e, QE_CMD_CONNECT_BONDED, addr, port, mode);
}

int qe_engine_forget_bonded(qe_engine *e, const char *addr, uint16_t port) {
  return post_addr_cmd(e, QE_CMD_FORGET_BONDED, addr, port, 0);
}

int qe_engine_disconnect(qe_engine *e, const uint8_t key[QE_KEYLEN]) {
  qe_cmd *c = cmd_new(QE_CMD_DISCONNECT);
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  memcpy(c->key, key, QE_KEYLEN);
  return cmd_post(e, c);
}

int qe_engine_send_control(qe_engine *e, const uint8_t key[QE_KEYLEN],
                           const uint8_t *data, size_t len) {
  qe_cmd *c;
  if (len > QE_CTL_MAX_MSG) {
    return QE_ERR_INVALID;
  }
  c = cmd_new(QE_CMD_CONTROL);
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  c->data = malloc(len ? len : 1);
  if (c->data == NULL) {
    cmd_free(c);
    return QE_ERR_NOMEM;
  }
  memcpy(c->key, key, QE_KEYLEN);
  if (len) {
    memcpy(c->data, data, len);
  }
  c->len = len;
  return cmd_post(e, c);
}

/* A one-table command: built by `build`, or freed with nothing posted. */
#define POST_TABLE(type, build)                                                \
  do {                                                                         \
    qe_cmd *c = cmd_new(type);                                                 \
    int rv;                                                                    \
    if (c == NULL) {                                                           \
      return QE_ERR_NOMEM;                                                     \
    }                                                                          \
    rv = (build);                                                              \
    if (rv != 0) {                                                             \
      cmd_free(c);                                                             \
      return rv;                                                               \
    }                                                                          \
    return cmd_post(e, c);                                                     \
  } while (0)

int qe_engine_set_allowed(qe_engine *e, const uint8_t *keys, size_t n) {
  POST_TABLE(QE_CMD_ALLOWED, build_allowed(c, keys, n));
}

int qe_engine_set_routes(qe_engine *e, const qe_route *routes, size_t n) {
  POST_TABLE(QE_CMD_ROUTES, build_routes(c, routes, n));
}

int qe_engine_set_uplinks(qe_engine *e, const qe_uplink_conf *uplinks,
                          size_t n) {
  POST_TABLE(QE_CMD_UPLINKS, build_uplinks(c, uplinks, n));
}

int qe_engine_set_classes(qe_engine *e, const qe_class *classes, size_t n) {
  POST_TABLE(QE_CMD_CLASSES, build_classes(c, classes, n));
}

int qe_engine_set_tables(qe_engine *e, const qe_tables *t) {
  qe_cmd *c;
  int rv;
  if (t->version <= e->posted_version || t->reorder_max_ns == 0 ||
      t->reorder_max_bytes < 65536) {
    return QE_ERR_INVALID;
  }
  c = cmd_new(QE_CMD_TABLES);
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  if ((rv = build_allowed(c, (const uint8_t *)t->allowed, t->nallowed)) ||
      (rv = build_routes(c, t->routes, t->nroutes)) ||
      (rv = build_uplinks(c, t->uplinks, t->nuplinks)) ||
      (rv = build_classes(c, t->classes, t->nclasses)) ||
      (rv = build_acl(c, t->acl, t->acl_len))) {
    cmd_free(c);
    return rv;
  }
  c->version = t->version;
  c->accept_bonded = t->accept_bonded ? 1 : 0;
  c->reorder_max_ns = t->reorder_max_ns;
  c->reorder_max_bytes = t->reorder_max_bytes;
  rv = cmd_post(e, c);
  if (rv == 0) {
    e->posted_version = t->version;
  }
  return rv;
}

int qe_engine_read_tables(qe_engine *e, qe_tables *out) {
  qe_cmd *c = cmd_new(QE_CMD_READ_TABLES);
  memset(out, 0, sizeof(*out));
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  c->out = out;
  return cmd_post_wait(e, c);
}

int qe_engine_stats(qe_engine *e, qe_stats *out) {
  qe_cmd *c;
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&e->lock);
  if (!e->started || e->worker_done) {
    /* The worker is gone (or never ran): its counters are stable. */
    out->g = e->g;
    out->g.udp_tx_dropped = e->tx.dropped;
    out->g.tables_version = e->tables_version;
    pthread_mutex_unlock(&e->lock);
    return 0;
  }
  pthread_mutex_unlock(&e->lock);
  c = cmd_new(QE_CMD_STATS);
  if (c == NULL) {
    return QE_ERR_NOMEM;
  }
  c->stats = out;
  return cmd_post_wait(e, c);
}
