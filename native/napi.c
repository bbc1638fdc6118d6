/*
 * The N-API face of the engine (used only by src/engine/engine.ts).
 *
 * open(opts, onEvent) -> handle   opens TUN, socket, identity (may throw)
 * start(handle)                   spawns the worker
 * info(handle) -> {ifindex, port}
 * stop(handle)                    asks the worker to stop; 'stopped' follows
 * close(handle)                   joins, closes TUN and socket, idempotent
 * connect(handle, addr, port), disconnect(handle, key)
 * setAllowed(handle, keys)        keys: Buffer of n*32 bytes
 * setRoutes(handle, routes)       routes: Buffer of n*50 bytes
 *                                 (family, plen, addr[16], key[32])
 * setTables(handle, tables)       every table at once (see js_set_tables)
 * readTables(handle) -> tables|null  what the worker enforces now
 * sendControl(handle, key, data)  data is copied
 * stats(handle) -> object
 * fibNew(entries) / fibLookup(fib, addr)  the trie alone, for tests
 *
 * Events reach JS through one threadsafe function, in order. Buffers given
 * to JS are copies; buffers from JS are copied before the call returns.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include "engine.h"
#include "fib.h"
#include "peercred.h"
#include "sched.h"

#define QE_MAX_UPLINKS_API 8 /* = QE_MAX_UPLINKS (engine_int.h) */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Lives until both the JS external is collected and the threadsafe function
 * has finalized (queued events may still reach call_js after close).
 * Touched only on the JS thread.
 */
typedef struct qe_handle {
  qe_engine *e;
  napi_threadsafe_function tsfn;
  int closed, ext_gone, tsfn_done;
} qe_handle;

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static napi_value throw_code(napi_env env, int rv, const char *what) {
  char msg[256];
  const char *code = "QE_ENGINE";
  if (rv == QE_ERR_SYS) {
    snprintf(msg, sizeof(msg), "%s: %s", what, strerror(errno));
    code = "QE_ENGINE_SYS";
  } else {
    snprintf(msg, sizeof(msg), "%s: %s", what, qe_strerror(rv));
    if (rv == QE_ERR_INVALID) {
      code = "QE_ENGINE_INVALID";
    } else if (rv == QE_ERR_TLS) {
      code = "QE_ENGINE_TLS";
    } else if (rv == QE_ERR_STATE) {
      code = "QE_ENGINE_STATE";
    }
  }
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_prop(napi_env env, napi_value obj, const char *name,
                    napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) {
    return -1;
  }
  return napi_get_named_property(env, obj, name, out) == napi_ok ? 0 : -1;
}

static char *get_string(napi_env env, napi_value obj, const char *name) {
  napi_value v;
  size_t len;
  char *s;
  if (get_prop(env, obj, name, &v) != 0 ||
      napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    return NULL;
  }
  s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static int64_t get_int(napi_env env, napi_value obj, const char *name,
                       int64_t dflt) {
  napi_value v;
  int64_t x;
  if (get_prop(env, obj, name, &v) != 0 ||
      napi_get_value_int64(env, v, &x) != napi_ok) {
    return dflt;
  }
  return x;
}

static int get_buffer(napi_env env, napi_value v, void **data, size_t *len) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
    return -1;
  }
  return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
}

static qe_handle *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "not an engine handle");
    return NULL;
  }
  return p;
}

static void set_u64(napi_env env, napi_value obj, const char *name,
                    uint64_t v) {
  napi_value x;
  napi_create_double(env, (double)v, &x);
  napi_set_named_property(env, obj, name, x);
}

static void set_str(napi_env env, napi_value obj, const char *name,
                    const char *s) {
  napi_value x;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &x);
  napi_set_named_property(env, obj, name, x);
}

static void set_buf(napi_env env, napi_value obj, const char *name,
                    const void *data, size_t len) {
  napi_value x;
  void *out;
  napi_create_buffer_copy(env, len, data, &out, &x);
  napi_set_named_property(env, obj, name, x);
}

/* ---- events ---- */

static const char *event_name(qe_event_type t) {
  switch (t) {
  case QE_EV_PEER_UP:
    return "peer-up";
  case QE_EV_PEER_DOWN:
    return "peer-down";
  case QE_EV_CONTROL:
    return "control";
  case QE_EV_REFUSED:
    return "refused";
  case QE_EV_ERROR:
    return "error";
  case QE_EV_DIAL_FAILED:
    return "dial-failed";
  case QE_EV_PATH_UP:
    return "path-up";
  case QE_EV_PATH_DOWN:
    return "path-down";
  case QE_EV_STOPPED:
    return "stopped";
  case QE_EV_RAW:
    return "raw";
  }
  return "unknown";
}

static void call_js(napi_env env, napi_value js_cb, void *context,
                    void *data) {
  qe_event *ev = data;
  qe_handle *h = context;
  napi_value obj, undef;
  if (h->e != NULL) {
    qe_engine_event_done(h->e, ev);
  }
  if (env == NULL || js_cb == NULL) {
    qe_event_free(ev);
    return;
  }
  napi_create_object(env, &obj);
  set_str(env, obj, "type", event_name(ev->type));
  if (ev->has_key) {
    set_buf(env, obj, "key", ev->key, QE_KEYLEN);
  }
  if (ev->addr[0]) {
    set_str(env, obj, "address", ev->addr);
    set_u64(env, obj, "port", ev->port);
    set_str(env, obj, "role", ev->server ? "server" : "client");
  }
  if (ev->reason) {
    set_str(env, obj, "reason", ev->reason);
  }
  if (ev->type == QE_EV_CONTROL || ev->type == QE_EV_RAW) {
    set_buf(env, obj, "data", ev->data, ev->datalen);
  }
  if (ev->type == QE_EV_PATH_UP || ev->type == QE_EV_PATH_DOWN) {
    set_str(env, obj, "uplink", ev->uplink);
    set_u64(env, obj, "index", (uint64_t)ev->path_index);
  }
  qe_event_free(ev);
  napi_get_undefined(env, &undef);
  napi_call_function(env, undef, js_cb, 1, &obj, NULL);
}

static void on_event(void *user_data, qe_event *ev) {
  qe_handle *h = user_data;
  if (napi_call_threadsafe_function(h->tsfn, ev, napi_tsfn_nonblocking) !=
      napi_ok) {
    qe_event_free(ev);
  }
}

/* ---- lifecycle ---- */

static void handle_close(qe_handle *h) {
  if (h->closed) {
    return;
  }
  h->closed = 1;
  qe_engine_del(h->e); /* stops and joins if needed */
  h->e = NULL;
  napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  qe_handle *h = data;
  (void)env, (void)hint;
  handle_close(h);
  h->ext_gone = 1;
  if (h->tsfn_done) {
    free(h);
  }
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  qe_handle *h = data;
  (void)env, (void)hint;
  h->tsfn_done = 1;
  if (h->ext_gone) {
    free(h);
  }
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name, ext, v;
  qe_engine_config cfg = {0};
  char *tun = NULL, *pem = NULL, *addr = NULL, *dev = NULL;
  void *pub = NULL;
  size_t publen = 0;
  qe_handle *h = NULL;
  int rv;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "open(opts, onEvent)");
    return NULL;
  }
  tun = get_string(env, argv[0], "tunName");
  pem = get_string(env, argv[0], "privateKeyPem");
  addr = get_string(env, argv[0], "listenAddress");
  dev = get_string(env, argv[0], "listenDevice");
  if (get_prop(env, argv[0], "publicKey", &v) != 0 ||
      get_buffer(env, v, &pub, &publen) != 0 || publen != QE_KEYLEN ||
      tun == NULL || pem == NULL || addr == NULL) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "bad engine options");
    goto out;
  }
  cfg = (qe_engine_config){
      .tun_name = tun,
      .tun_mtu = (int)get_int(env, argv[0], "tunMtu", 1420),
      .tun_offload = (int)get_int(env, argv[0], "tunOffload", 0),
      .key_pem = pem,
      .key_pem_len = strlen(pem),
      .pubkey = pub,
      .listen_addr = addr,
      .listen_port = (uint16_t)get_int(env, argv[0], "listenPort", 0),
      .listen_device = dev,
      .fwmark = (uint32_t)get_int(env, argv[0], "fwmark", 0),
      .keepalive_ns =
          (uint64_t)get_int(env, argv[0], "keepaliveMs", 1000) * 1000000ULL,
      .idle_timeout_ns =
          (uint64_t)get_int(env, argv[0], "idleTimeoutMs", 4000) * 1000000ULL,
      .path_mtu = (int)get_int(env, argv[0], "pathMtu", 1500),
      .cc_algo = (int)get_int(env, argv[0], "ccAlgo", 3),
      .reorder_max_ns =
          (uint64_t)get_int(env, argv[0], "reorderMaxDelayMs", 300) *
          1000000ULL,
      .reorder_max_bytes =
          (size_t)get_int(env, argv[0], "reorderMaxBytes", 4 * 1024 * 1024),
  };
  h = calloc(1, sizeof(*h));
  if (h == NULL) {
    napi_throw_error(env, "QE_ENGINE", "out of memory");
    goto out;
  }
  napi_create_string_utf8(env, "quicether-engine", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, h,
                                      tsfn_finalize, h, call_js,
                                      &h->tsfn) != napi_ok) {
    napi_throw_error(env, "QE_ENGINE", "cannot create the event channel");
    free(h);
    h = NULL;
    goto out;
  }
  rv = qe_engine_new(&h->e, &cfg, on_event, h);
  if (rv != 0) {
    h->closed = 1;
    h->ext_gone = 1; /* freed when the tsfn finalizes */
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
    h = NULL;
    throw_code(env, rv, "engine open failed");
    goto out;
  }
  if (napi_create_external(env, h, handle_finalize, NULL, &ext) != napi_ok) {
    handle_close(h);
    h->ext_gone = 1;
    h = NULL;
    goto out;
  }
out:
  if (pem) {
    memset(pem, 0, strlen(pem));
  }
  free(tun);
  free(pem);
  free(addr);
  free(dev);
  return h ? ext : NULL;
}

#define ARGS(n)                                                                \
  size_t argc = n;                                                             \
  napi_value argv[n];                                                          \
  qe_handle *h;                                                                \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));                 \
  if (argc < n) {                                                              \
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "missing arguments");      \
    return NULL;                                                               \
  }                                                                            \
  h = get_handle(env, argv[0]);                                                \
  if (h == NULL) {                                                             \
    return NULL;                                                               \
  }                                                                            \
  if (h->closed) {                                                             \
    napi_throw_error(env, "QE_ENGINE_STATE", "engine is closed");              \
    return NULL;                                                               \
  }

static napi_value js_start(napi_env env, napi_callback_info info) {
  ARGS(1);
  int rv = qe_engine_start(h->e);
  if (rv != 0) {
    return throw_code(env, rv, "engine start failed");
  }
  return NULL;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_value obj;
  CHECK(napi_create_object(env, &obj));
  set_u64(env, obj, "ifindex", (uint64_t)qe_engine_ifindex(h->e));
  set_u64(env, obj, "port", qe_engine_port(h->e));
  return obj;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_value r;
  int rv = qe_engine_stop(h->e);
  napi_get_boolean(env, rv == 0, &r);
  return r; /* false: the worker is not running, no 'stopped' will come */
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  qe_handle *h;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  h = argc ? get_handle(env, argv[0]) : NULL;
  if (h) {
    handle_close(h);
  }
  return NULL;
}

/* argv[1], argv[2] as an address string and a port 1..65535; 0, or -1
 * after throwing a TypeError that names `usage`. */
static int get_addr_port(napi_env env, napi_value *argv, char *addr,
                         size_t addrsize, uint16_t *port, const char *usage) {
  size_t len;
  int64_t p;
  if (napi_get_value_string_utf8(env, argv[1], addr, addrsize, &len) !=
          napi_ok ||
      napi_get_value_int64(env, argv[2], &p) != napi_ok || p < 1 ||
      p > 65535) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", usage);
    return -1;
  }
  *port = (uint16_t)p;
  return 0;
}

/* engine(addr, port) for js_connect and js_forget_bonded: `usage` names the
 * call in errors. */
static napi_value addr_port_call(napi_env env, napi_callback_info info,
                                 int (*fn)(qe_engine *, const char *, uint16_t),
                                 const char *usage, const char *what) {
  ARGS(3);
  char addr[INET6_ADDRSTRLEN + 1];
  uint16_t port;
  int rv;
  if (get_addr_port(env, argv, addr, sizeof(addr), &port, usage)) {
    return NULL;
  }
  rv = fn(h->e, addr, port);
  return rv ? throw_code(env, rv, what) : NULL;
}

static napi_value js_connect(napi_env env, napi_callback_info info) {
  return addr_port_call(env, info, qe_engine_connect, "connect(addr, port)",
                        "connect");
}

static napi_value js_connect_relayed(napi_env env, napi_callback_info info) {
  return addr_port_call(env, info, qe_engine_connect_relayed,
                        "connectRelayed(addr, port)", "connectRelayed");
}

static napi_value js_send_raw(napi_env env, napi_callback_info info) {
  ARGS(4);
  char addr[INET6_ADDRSTRLEN + 1];
  uint16_t port;
  void *data;
  size_t len;
  int rv;
  static const char usage[] = "sendRaw(addr, port, data)";
  if (get_addr_port(env, argv, addr, sizeof(addr), &port, usage)) {
    return NULL;
  }
  if (get_buffer(env, argv[3], &data, &len) != 0) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", usage);
    return NULL;
  }
  rv = qe_engine_send_raw(h->e, addr, port, data, len);
  return rv ? throw_code(env, rv, "sendRaw") : NULL;
}

static napi_value js_connect_bonded(napi_env env, napi_callback_info info) {
  ARGS(4);
  char addr[INET6_ADDRSTRLEN + 1];
  uint16_t port;
  int64_t mode;
  int rv;
  static const char usage[] = "connectBonded(addr, port, mode)";
  if (get_addr_port(env, argv, addr, sizeof(addr), &port, usage)) {
    return NULL;
  }
  if (napi_get_value_int64(env, argv[3], &mode) != napi_ok || mode < 0 ||
      mode >= QE_MODE_COUNT) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", usage);
    return NULL;
  }
  rv = qe_engine_connect_bonded(h->e, addr, port, (int)mode);
  return rv ? throw_code(env, rv, "connectBonded") : NULL;
}

static napi_value js_forget_bonded(napi_env env, napi_callback_info info) {
  return addr_port_call(env, info, qe_engine_forget_bonded,
                        "forgetBonded(addr, port)", "forgetBonded");
}

/* uplinks: n records of 26 bytes: name (16, NUL-padded), weight (u16 BE),
 * priority (u16 BE), role (0 primary, 1 backup), cost (u8), rate (u32 BE,
 * bytes/s, 0: unknown). */
#define UPLINK_REC 26

/* Parses uplink records into u[QE_MAX_UPLINKS]; 0, or -1 (thrown). */
static int parse_uplinks(napi_env env, napi_value v, qe_uplink_conf *u,
                         size_t *n) {
  uint8_t *data;
  size_t len;
  if (get_buffer(env, v, (void **)&data, &len) != 0 || len % UPLINK_REC ||
      len / UPLINK_REC > 8) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID",
                          "uplinks: at most 8 records of 26 bytes");
    return -1;
  }
  *n = len / UPLINK_REC;
  for (size_t i = 0; i < *n; i++) {
    const uint8_t *r = data + i * UPLINK_REC;
    size_t nl = strnlen((const char *)r, 16);
    if (nl == 0 || nl > 15) {
      napi_throw_type_error(env, "QE_ENGINE_INVALID", "uplink name");
      return -1;
    }
    memset(&u[i], 0, sizeof(u[i]));
    memcpy(u[i].name, r, nl);
    u[i].weight = (uint16_t)((r[16] << 8) | r[17]);
    u[i].priority = (uint16_t)((r[18] << 8) | r[19]);
    u[i].role = r[20];
    u[i].cost = r[21];
    u[i].rate_bps = (uint32_t)r[22] << 24 | (uint32_t)r[23] << 16 |
                    (uint32_t)r[24] << 8 | r[25];
  }
  return 0;
}

static void encode_uplinks(const qe_uplink_conf *u, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    uint8_t *r = out + i * UPLINK_REC;
    memset(r, 0, UPLINK_REC);
    memcpy(r, u[i].name, strnlen(u[i].name, 15));
    r[16] = (uint8_t)(u[i].weight >> 8);
    r[17] = (uint8_t)u[i].weight;
    r[18] = (uint8_t)(u[i].priority >> 8);
    r[19] = (uint8_t)u[i].priority;
    r[20] = u[i].role;
    r[21] = u[i].cost;
    r[22] = (uint8_t)(u[i].rate_bps >> 24);
    r[23] = (uint8_t)(u[i].rate_bps >> 16);
    r[24] = (uint8_t)(u[i].rate_bps >> 8);
    r[25] = (uint8_t)u[i].rate_bps;
  }
}

static napi_value js_set_uplinks(napi_env env, napi_callback_info info) {
  ARGS(2);
  qe_uplink_conf u[QE_MAX_UPLINKS_API];
  size_t n;
  int rv;
  if (parse_uplinks(env, argv[1], u, &n) != 0) {
    return NULL;
  }
  rv = qe_engine_set_uplinks(h->e, u, n);
  return rv ? throw_code(env, rv, "setUplinks") : NULL;
}

/* classes: n records of CLASS_REC bytes: DSCP mask (u64 BE, bit n: DSCP
 * n), max size (u16 BE, 0: any), port range count (u8), uplink name (16,
 * NUL-padded; empty: lowest latency), QE_CLASS_MAX_PORTS ranges (u16 BE lo,
 * u16 BE hi). */
#define CLASS_REC (8 + 2 + 1 + 16 + 4 * QE_CLASS_MAX_PORTS)

/* Parses class records into k[QE_MAX_CLASSES]; 0, or -1 (thrown). */
static int parse_classes(napi_env env, napi_value v, qe_class *k, size_t *n) {
  uint8_t *data;
  size_t len;
  if (get_buffer(env, v, (void **)&data, &len) != 0 || len % CLASS_REC ||
      len / CLASS_REC > QE_MAX_CLASSES) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID",
                          "classes: at most 16 records of 155 bytes");
    return -1;
  }
  *n = len / CLASS_REC;
  memset(k, 0, sizeof(qe_class) * QE_MAX_CLASSES);
  for (size_t i = 0; i < *n; i++) {
    const uint8_t *r = data + i * CLASS_REC;
    for (int b = 0; b < 8; b++) {
      k[i].dscp = k[i].dscp << 8 | r[b];
    }
    k[i].max_size = (uint16_t)(r[8] << 8 | r[9]);
    k[i].nports = r[10];
    if (k[i].nports > QE_CLASS_MAX_PORTS ||
        strnlen((const char *)r + 11, 16) > 15) {
      napi_throw_type_error(env, "QE_ENGINE_INVALID", "class record");
      return -1;
    }
    memcpy(k[i].uplink, r + 11, 15);
    for (size_t j = 0; j < k[i].nports; j++) {
      const uint8_t *x = r + 27 + 4 * j;
      k[i].port_lo[j] = (uint16_t)(x[0] << 8 | x[1]);
      k[i].port_hi[j] = (uint16_t)(x[2] << 8 | x[3]);
    }
  }
  return 0;
}

static void encode_classes(const qe_class *k, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    uint8_t *r = out + i * CLASS_REC;
    memset(r, 0, CLASS_REC);
    for (int b = 0; b < 8; b++) {
      r[b] = (uint8_t)(k[i].dscp >> (56 - 8 * b));
    }
    r[8] = (uint8_t)(k[i].max_size >> 8);
    r[9] = (uint8_t)k[i].max_size;
    r[10] = k[i].nports;
    memcpy(r + 11, k[i].uplink, strnlen(k[i].uplink, 15));
    for (size_t j = 0; j < k[i].nports && j < QE_CLASS_MAX_PORTS; j++) {
      uint8_t *x = r + 27 + 4 * j;
      x[0] = (uint8_t)(k[i].port_lo[j] >> 8);
      x[1] = (uint8_t)k[i].port_lo[j];
      x[2] = (uint8_t)(k[i].port_hi[j] >> 8);
      x[3] = (uint8_t)k[i].port_hi[j];
    }
  }
}

static napi_value js_set_classes(napi_env env, napi_callback_info info) {
  ARGS(2);
  qe_class k[QE_MAX_CLASSES];
  size_t n;
  int rv;
  if (parse_classes(env, argv[1], k, &n) != 0) {
    return NULL;
  }
  rv = qe_engine_set_classes(h->e, k, n);
  return rv ? throw_code(env, rv, "setClasses") : NULL;
}

static int get_key(napi_env env, napi_value v, uint8_t **key) {
  size_t len;
  if (get_buffer(env, v, (void **)key, &len) != 0 || len != QE_KEYLEN) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "a key is 32 bytes");
    return -1;
  }
  return 0;
}

static napi_value js_disconnect(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint8_t *key;
  int rv;
  if (get_key(env, argv[1], &key) != 0) {
    return NULL;
  }
  rv = qe_engine_disconnect(h->e, key);
  return rv ? throw_code(env, rv, "disconnect") : NULL;
}

static napi_value js_set_allowed(napi_env env, napi_callback_info info) {
  ARGS(2);
  void *data;
  size_t len;
  int rv;
  if (get_buffer(env, argv[1], &data, &len) != 0 || len % QE_KEYLEN) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "keys: n*32 bytes");
    return NULL;
  }
  rv = qe_engine_set_allowed(h->e, data, len / QE_KEYLEN);
  return rv ? throw_code(env, rv, "setAllowed") : NULL;
}

#define ROUTE_REC 50

/* Parses route records into a malloc'd array (*out); 0, or -1 (thrown). */
static int parse_routes(napi_env env, napi_value v, qe_route **out,
                        size_t *n) {
  uint8_t *data;
  size_t len;
  if (get_buffer(env, v, (void **)&data, &len) != 0 || len % ROUTE_REC) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "routes: n*50 bytes");
    return -1;
  }
  *n = len / ROUTE_REC;
  *out = calloc(*n ? *n : 1, sizeof(qe_route));
  if (*out == NULL) {
    throw_code(env, QE_ERR_NOMEM, "routes");
    return -1;
  }
  for (size_t i = 0; i < *n; i++) {
    const uint8_t *r = data + i * ROUTE_REC;
    (*out)[i].family = r[0];
    (*out)[i].plen = r[1];
    memcpy((*out)[i].addr, r + 2, 16);
    memcpy((*out)[i].key, r + 18, QE_KEYLEN);
  }
  return 0;
}

static void encode_routes(const qe_route *routes, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    uint8_t *r = out + i * ROUTE_REC;
    r[0] = routes[i].family;
    r[1] = routes[i].plen;
    memcpy(r + 2, routes[i].addr, 16);
    memcpy(r + 18, routes[i].key, QE_KEYLEN);
  }
}

static napi_value js_set_routes(napi_env env, napi_callback_info info) {
  ARGS(2);
  qe_route *routes;
  size_t n;
  int rv;
  if (parse_routes(env, argv[1], &routes, &n) != 0) {
    return NULL;
  }
  rv = qe_engine_set_routes(h->e, routes, n);
  free(routes);
  return rv ? throw_code(env, rv, "setRoutes") : NULL;
}

/*
 * setTables(handle, {version, allowed, routes, uplinks, classes,
 * acceptBonded, reorderMaxDelayMs, reorderMaxBytes}): the buffers in the
 * formats of setAllowed / setRoutes / setUplinks / setClasses.
 */
static napi_value js_set_tables(napi_env env, napi_callback_info info) {
  ARGS(2);
  static const char usage[] = "setTables(handle, tables)";
  qe_uplink_conf u[QE_MAX_UPLINKS_API];
  qe_class k[QE_MAX_CLASSES];
  qe_tables t = {0};
  napi_value v;
  void *keys;
  size_t klen;
  bool accept = true;
  int64_t delay, bytes, version;
  int rv;
  if (get_prop(env, argv[1], "allowed", &v) != 0 ||
      get_buffer(env, v, &keys, &klen) != 0 || klen % QE_KEYLEN) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "allowed: n*32 bytes");
    return NULL;
  }
  version = get_int(env, argv[1], "version", 0);
  delay = get_int(env, argv[1], "reorderMaxDelayMs", 0);
  bytes = get_int(env, argv[1], "reorderMaxBytes", 0);
  if (version <= 0 || delay <= 0 || bytes < 65536 ||
      get_prop(env, argv[1], "acceptBonded", &v) != 0 ||
      napi_get_value_bool(env, v, &accept) != napi_ok) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", usage);
    return NULL;
  }
  if (get_prop(env, argv[1], "uplinks", &v) != 0 ||
      parse_uplinks(env, v, u, &t.nuplinks) != 0 ||
      get_prop(env, argv[1], "classes", &v) != 0 ||
      parse_classes(env, v, k, &t.nclasses) != 0 ||
      get_prop(env, argv[1], "routes", &v) != 0 ||
      parse_routes(env, v, &t.routes, &t.nroutes) != 0) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) {
      napi_throw_type_error(env, "QE_ENGINE_INVALID", usage);
    }
    return NULL;
  }
  t.version = (uint64_t)version;
  t.allowed = keys;
  t.nallowed = klen / QE_KEYLEN;
  t.uplinks = u;
  t.classes = k;
  t.accept_bonded = accept;
  t.reorder_max_ns = (uint64_t)delay * 1000000ULL;
  t.reorder_max_bytes = (size_t)bytes;
  /* acl: the packed policy; absent or empty: no policy. */
  if (get_prop(env, argv[1], "acl", &v) == 0) {
    void *acl;
    size_t alen;
    if (get_buffer(env, v, &acl, &alen) != 0) {
      free(t.routes);
      napi_throw_type_error(env, "QE_ENGINE_INVALID", "acl: a Buffer");
      return NULL;
    }
    t.acl = acl;
    t.acl_len = alen;
  }
  rv = qe_engine_set_tables(h->e, &t);
  free(t.routes);
  return rv ? throw_code(env, rv, "setTables") : NULL;
}

/* readTables(handle) -> null before the first setTables, else the tables
 * the worker enforces, in setTables' shape. */
static napi_value js_read_tables(napi_env env, napi_callback_info info) {
  ARGS(1);
  qe_tables t;
  napi_value obj = NULL, b;
  uint8_t *p;
  int rv = qe_engine_read_tables(h->e, &t);
  if (rv != 0) {
    return throw_code(env, rv, "readTables");
  }
  if (t.version == 0) {
    qe_tables_free(&t);
    napi_get_null(env, &obj);
    return obj;
  }
  if (napi_create_object(env, &obj) != napi_ok) {
    goto done;
  }
  set_u64(env, obj, "version", t.version);
  set_buf(env, obj, "allowed", (const uint8_t *)t.allowed,
          t.nallowed * QE_KEYLEN);
  if (napi_create_buffer(env, t.nroutes * ROUTE_REC, (void **)&p, &b) !=
      napi_ok) {
    goto done;
  }
  encode_routes(t.routes, t.nroutes, p);
  napi_set_named_property(env, obj, "routes", b);
  if (napi_create_buffer(env, t.nuplinks * UPLINK_REC, (void **)&p, &b) !=
      napi_ok) {
    goto done;
  }
  encode_uplinks(t.uplinks, t.nuplinks, p);
  napi_set_named_property(env, obj, "uplinks", b);
  if (napi_create_buffer(env, t.nclasses * CLASS_REC, (void **)&p, &b) !=
      napi_ok) {
    goto done;
  }
  encode_classes(t.classes, t.nclasses, p);
  napi_set_named_property(env, obj, "classes", b);
  napi_get_boolean(env, t.accept_bonded != 0, &b);
  napi_set_named_property(env, obj, "acceptBonded", b);
  set_u64(env, obj, "reorderMaxDelayMs", t.reorder_max_ns / 1000000ULL);
  set_u64(env, obj, "reorderMaxBytes", t.reorder_max_bytes);
  set_buf(env, obj, "acl", t.acl ? t.acl : (const uint8_t *)"", t.acl_len);
done:
  qe_tables_free(&t);
  return obj;
}

static napi_value js_send_control(napi_env env, napi_callback_info info) {
  ARGS(3);
  uint8_t *key;
  void *data;
  size_t len;
  int rv;
  if (get_key(env, argv[1], &key) != 0) {
    return NULL;
  }
  if (get_buffer(env, argv[2], &data, &len) != 0) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "data must be a Buffer");
    return NULL;
  }
  rv = qe_engine_send_control(h->e, key, data, len);
  return rv ? throw_code(env, rv, "sendControl") : NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  qe_stats st;
  napi_value obj, g, peers;
  int rv = qe_engine_stats(h->e, &st);
  if (rv != 0) {
    return throw_code(env, rv, "stats");
  }
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_object(env, &g));
#define G(f, n) set_u64(env, g, n, st.g.f)
  G(garbage, "garbage");
  G(refused, "refused");
  G(handshake_failed, "handshakeFailed");
  G(half_open_dropped, "halfOpenDropped");
  G(no_route, "noRoute");
  G(no_peer, "noPeer");
  G(spoofed, "spoofed");
  G(too_big, "tooBig");
  G(malformed, "malformed");
  G(tun_rx, "tunRx");
  G(tun_tx, "tunTx");
  G(tun_tx_errors, "tunTxErrors");
  G(udp_rx, "udpRx");
  G(udp_tx, "udpTx");
  G(udp_tx_dropped, "udpTxDropped");
  G(resets_sent, "resetsSent");
  G(icmp_sent, "icmpSent");
  G(duplicates, "duplicates");
  G(connections, "connections");
  G(tables_version, "tablesVersion");
  G(bond_refused, "bondRefused");
  G(raw_rx, "rawRx");
  G(raw_dropped, "rawDropped");
  G(raw_tx, "rawTx");
  G(policy_passed, "policyPassed");
  G(policy_flows, "policyFlows");
#undef G
  {
    /* Drops by QE_CT_* reason, then hits per policy rule (the default last). */
    napi_value arr;
    static const char *const reasons[] = {"", "rule", "default", "noFlow", "fragment", "malformed", "tableFull"};
    napi_value drops;
    napi_create_object(env, &drops);
    for (size_t r = 1; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
      set_u64(env, drops, reasons[r], st.g.policy_drops[r]);
    }
    napi_set_named_property(env, g, "policyDrops", drops);
    napi_create_array_with_length(env, st.nacl_hits, &arr);
    for (size_t i = 0; i < st.nacl_hits; i++) {
      napi_value x;
      napi_create_double(env, (double)st.acl_hits[i], &x);
      napi_set_element(env, arr, (uint32_t)i, x);
    }
    napi_set_named_property(env, g, "policyHits", arr);
  }
  napi_set_named_property(env, obj, "global", g);
  CHECK(napi_create_array_with_length(env, st.npeers, &peers));
  for (size_t i = 0; i < st.npeers; i++) {
    qe_peer_stats *p = &st.peers[i];
    napi_value po, b;
    napi_create_object(env, &po);
    set_buf(env, po, "key", p->key, QE_KEYLEN);
    napi_get_boolean(env, p->up, &b);
    napi_set_named_property(env, po, "up", b);
    if (p->up) {
      set_str(env, po, "role", p->server ? "server" : "client");
      napi_get_boolean(env, p->relayed, &b);
      napi_set_named_property(env, po, "relayed", b);
      set_str(env, po, "address", p->addr);
      set_u64(env, po, "port", p->port);
    }
#define P(f, n) set_u64(env, po, n, p->f)
    P(rtt_smoothed_ns, "rttSmoothedNs");
    P(rtt_min_ns, "rttMinNs");
    P(rtt_var_ns, "rttVarNs");
    P(rtt_latest_ns, "rttLatestNs");
    P(silent_ns, "silentNs");
    P(cwnd, "cwnd");
    P(bytes_in_flight, "bytesInFlight");
    P(delivery_rate, "deliveryRate");
    P(max_datagram, "maxDatagram");
    P(bytes_in, "bytesIn");
    P(bytes_out, "bytesOut");
    P(packets_in, "packetsIn");
    P(packets_out, "packetsOut");
    P(datagrams_lost, "datagramsLost");
    P(datagrams_acked, "datagramsAcked");
    P(drop_congestion, "dropCongestion");
    P(drop_too_big, "dropTooBig");
    P(drop_spoofed, "dropSpoofed");
    P(drop_not_up, "dropNotUp");
    if (p->bonded) {
      static const char *modes[QE_MODE_COUNT] = {"aggregate", "failover",
                                                 "redundant", "weighted"};
      napi_value paths;
      set_str(env, po, "bondMode",
              p->mode < QE_MODE_COUNT ? modes[p->mode] : modes[0]);
      P(reordered, "reordered");
      P(late, "late");
      P(bond_dropped, "bondDropped");
      P(resent, "resent");
      P(lost_resent, "lostResent");
      P(moved, "moved");
      P(classed_out, "classedOut");
      P(classed_in, "classedIn");
      P(acks_out, "acksOut");
      napi_create_array_with_length(env, p->npaths, &paths);
      for (size_t k = 0; k < p->npaths; k++) {
        qe_path_stats *x = &p->paths[k];
        napi_value o, alive;
        napi_create_object(env, &o);
        set_str(env, o, "uplink", x->uplink);
        set_u64(env, o, "index", (uint64_t)x->index);
        napi_get_boolean(env, x->alive, &alive);
        napi_set_named_property(env, o, "alive", alive);
        set_str(env, o, "address", x->addr);
        set_u64(env, o, "port", x->port);
        set_u64(env, o, "rttNs", x->rtt_ns);
        set_u64(env, o, "cwnd", x->cwnd);
        set_u64(env, o, "deliveryRate", x->delivery_rate);
        set_u64(env, o, "bytesOut", x->bytes_out);
        set_u64(env, o, "bytesIn", x->bytes_in);
        set_u64(env, o, "packetsOut", x->packets_out);
        set_u64(env, o, "packetsIn", x->packets_in);
        set_u64(env, o, "lost", x->lost);
        set_u64(env, o, "rttMinNs", x->rtt_min_ns);
        set_u64(env, o, "bytesInFlight", x->bytes_in_flight);
        set_u64(env, o, "queued", x->queued);
        set_u64(env, o, "dropped", x->dropped);
        if (x->queue_out_ns != UINT64_MAX) {
          set_u64(env, o, "queueOutNs", x->queue_out_ns);
          set_u64(env, o, "queueBackNs", x->queue_back_ns);
        }
        napi_set_element(env, paths, (uint32_t)k, o);
      }
      napi_set_named_property(env, po, "paths", paths);
    }
#undef P
    napi_set_element(env, peers, (uint32_t)i, po);
  }
  napi_set_named_property(env, obj, "peers", peers);
  qe_stats_free(&st);
  return obj;
}

/* ---- the trie alone, for tests ---- */

static void fib_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  qe_fib_del(data);
}

#define FIB_REC 22

static napi_value js_fib_new(napi_env env, napi_callback_info info) {
  size_t argc = 1, len, n;
  napi_value argv[1], ext;
  uint8_t *data;
  qe_fib_entry *entries;
  qe_fib *fib = NULL;
  int rv;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_buffer(env, argv[0], (void **)&data, &len) != 0 ||
      len % FIB_REC) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "entries: n*22 bytes");
    return NULL;
  }
  n = len / FIB_REC;
  entries = calloc(n ? n : 1, sizeof(*entries));
  if (entries == NULL) {
    return throw_code(env, QE_ERR_NOMEM, "fibNew");
  }
  for (size_t i = 0; i < n; i++) {
    const uint8_t *r = data + i * FIB_REC;
    entries[i].family = r[0];
    entries[i].plen = r[1];
    memcpy(entries[i].addr, r + 2, 16);
    entries[i].value = (uint32_t)r[18] | (uint32_t)r[19] << 8 |
                       (uint32_t)r[20] << 16 | (uint32_t)r[21] << 24;
  }
  rv = qe_fib_new(&fib, entries, n);
  free(entries);
  if (rv != 0) {
    return throw_code(env, rv, "fibNew");
  }
  if (napi_create_external(env, fib, fib_finalize, NULL, &ext) != napi_ok) {
    qe_fib_del(fib);
    return NULL;
  }
  return ext;
}

static napi_value js_fib_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 2, len;
  napi_value argv[2], out;
  void *fib = NULL;
  uint8_t *addr;
  uint32_t v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_external(env, argv[0], &fib) != napi_ok ||
      get_buffer(env, argv[1], (void **)&addr, &len) != 0 ||
      (len != 4 && len != 16)) {
    napi_throw_type_error(env, "QE_ENGINE_INVALID", "fibLookup(fib, addr)");
    return NULL;
  }
  v = len == 4 ? qe_fib_lookup4(fib, addr) : qe_fib_lookup6(fib, addr);
  napi_create_int64(env, v == QE_FIB_NONE ? -1 : (int64_t)v, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
#define F(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
      F("open", js_open),
      F("start", js_start),
      F("info", js_info),
      F("stop", js_stop),
      F("close", js_close),
      F("connect", js_connect),
      F("connectBonded", js_connect_bonded),
      F("connectRelayed", js_connect_relayed),
      F("sendRaw", js_send_raw),
      F("forgetBonded", js_forget_bonded),
      F("setUplinks", js_set_uplinks),
      F("setClasses", js_set_classes),
      F("disconnect", js_disconnect),
      F("setAllowed", js_set_allowed),
      F("setRoutes", js_set_routes),
      F("setTables", js_set_tables),
      F("readTables", js_read_tables),
      F("sendControl", js_send_control),
      F("stats", js_stats),
      F("fibNew", js_fib_new),
      F("fibLookup", js_fib_lookup),
      F("peerCred", qe_js_peer_cred),
#undef F
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]),
                         props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
