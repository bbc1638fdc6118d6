/*
 * SO_PEERCRED for the control socket: the credentials the kernel recorded when
 * the peer connected (not spoofable by the peer). The fd belongs to Node's
 * net.Socket; this only reads it, synchronously, and never closes it.
 */
#include "peercred.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static napi_value peer_cred_throw(napi_env env, const char *what, int err) {
  char msg[128];
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
  napi_throw_error(env, "QE_PEERCRED", msg);
  return NULL;
}

napi_value qe_js_peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  struct ucred cred;
  socklen_t len = sizeof(cred);
  napi_value out, v;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "QE_PEERCRED", "peerCred(fd): fd must be a file descriptor");
    return NULL;
  }
  memset(&cred, 0, sizeof(cred));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return peer_cred_throw(env, "getsockopt(SO_PEERCRED)", errno);

  napi_create_object(env, &out);
  napi_create_int64(env, (int64_t)cred.pid, &v);
  napi_set_named_property(env, out, "pid", v);
  napi_create_int64(env, (int64_t)cred.uid, &v);
  napi_set_named_property(env, out, "uid", v);
  napi_create_int64(env, (int64_t)cred.gid, &v);
  napi_set_named_property(env, out, "gid", v);
  return out;
}
