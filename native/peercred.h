/*
 * peerCred(fd): who is at the other end of a unix stream socket (SO_PEERCRED),
 * for the audit log's record of control-socket commands. Node has no API for it.
 */
#ifndef QE_PEERCRED_H
#define QE_PEERCRED_H

#include <node_api.h>

/* JS: peerCred(fd: number) → { pid, uid, gid }; throws (code QE_PEERCRED) when the fd is not a unix socket. */
napi_value qe_js_peer_cred(napi_env env, napi_callback_info info);

#endif
