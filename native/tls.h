/*
 * TLS 1.3 for QUIC through ngtcp2_crypto_gnutls, with mutual authentication
 * by pinned Ed25519 keys: each node presents a self-signed certificate made
 * at start from its identity key and requires one from its peer. The
 * certificate carries no trust; the peer's raw public key is checked
 * against the allowed set by the engine (qe_tls_verify_fn), and TLS itself
 * proves that the peer holds the matching private key (CertificateVerify).
 */
#ifndef QE_TLS_H
#define QE_TLS_H

#include "qe.h"

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#define QE_ALPN "quicether/1"

/*
 * Called on the worker thread when the peer's certificate arrives, with its
 * raw Ed25519 key. Returns 0 to go on with the handshake, nonzero to refuse.
 */
typedef int (*qe_tls_verify_fn)(void *conn_user_data,
                                const uint8_t key[QE_KEYLEN]);

typedef struct qe_tls_identity {
  gnutls_certificate_credentials_t cred;
  gnutls_priority_t prio;
  uint8_t pubkey[QE_KEYLEN];
  uint8_t reset_secret[32]; /* stateless reset secret derived from the key */
} qe_tls_identity;

/*
 * Loads the PKCS#8 PEM Ed25519 private key, checks it matches `pubkey`
 * (NULL: no check), makes the self-signed certificate and credentials.
 * Returns 0, QE_ERR_INVALID (not an Ed25519 key, mismatch) or QE_ERR_TLS.
 */
int qe_tls_identity_init(qe_tls_identity *id, const char *pem, size_t pemlen,
                         const uint8_t *pubkey, qe_tls_verify_fn verify);
void qe_tls_identity_free(qe_tls_identity *id);

/*
 * A session for one connection. `ref->user_data` is handed to the verify
 * function. Returns 0 or QE_ERR_TLS.
 */
int qe_tls_session_new(gnutls_session_t *ps, qe_tls_identity *id, int server,
                       ngtcp2_crypto_conn_ref *ref);
/* After the handshake: 0 when ALPN is ours, QE_ERR_TLS otherwise. */
int qe_tls_check_alpn(gnutls_session_t s);

#endif /* QE_TLS_H */
