#include "tls.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <string.h>
#include <time.h>

/* AES-128-GCM first: with AES-NI it is the cheapest per packet. */
static const char *const qe_tls_priority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "-SIGN-ALL:+SIGN-EDDSA-ED25519:%DISABLE_TLS13_COMPAT_MODE";

static qe_tls_verify_fn tls_verify_fn;

/* The raw 32-byte key of a DER certificate, or -1 if not Ed25519. */
static int cert_ed25519_key(const gnutls_datum_t *der, uint8_t out[QE_KEYLEN]) {
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t x = {0};
  gnutls_ecc_curve_t curve;
  int rv = -1;
  if (gnutls_x509_crt_init(&crt) < 0) {
    return -1;
  }
  if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0 ||
      gnutls_pubkey_init(&pub) < 0) {
    goto out;
  }
  if (gnutls_pubkey_import_x509(pub, crt, 0) < 0 ||
      gnutls_pubkey_get_pk_algorithm(pub, NULL) != GNUTLS_PK_EDDSA_ED25519 ||
      gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0) < 0) {
    goto out;
  }
  if (curve == GNUTLS_ECC_CURVE_ED25519 && x.size == QE_KEYLEN) {
    memcpy(out, x.data, QE_KEYLEN);
    rv = 0;
  }
out:
  gnutls_free(x.data);
  if (pub) {
    gnutls_pubkey_deinit(pub);
  }
  gnutls_x509_crt_deinit(crt);
  return rv;
}

static int tls_verify_cb(gnutls_session_t s) {
  const gnutls_datum_t *certs;
  unsigned n = 0;
  uint8_t key[QE_KEYLEN];
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
  certs = gnutls_certificate_get_peers(s, &n);
  if (certs == NULL || n == 0 || cert_ed25519_key(&certs[0], key) < 0) {
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  if (tls_verify_fn != NULL && tls_verify_fn(ref->user_data, key) != 0) {
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  return 0;
}

static int make_cert(gnutls_x509_crt_t *pcrt, gnutls_x509_privkey_t key) {
  gnutls_x509_crt_t crt = NULL;
  gnutls_privkey_t pk = NULL;
  uint8_t serial[16];
  time_t now = time(NULL);
  static const char cn[] = "quicether";
  if (gnutls_x509_crt_init(&crt) < 0) {
    return -1;
  }
  if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0) {
    goto fail;
  }
  serial[0] &= 0x7f;
  if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
      gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
      gnutls_x509_crt_set_activation_time(crt, now - 86400) < 0 ||
      gnutls_x509_crt_set_expiration_time(crt, (time_t)-1) < 0 ||
      gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                    sizeof(cn) - 1) < 0 ||
      gnutls_x509_crt_set_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
                                           0, cn, sizeof(cn) - 1) < 0 ||
      gnutls_x509_crt_set_key(crt, key) < 0 ||
      gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
      gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0) {
    goto fail;
  }
  if (gnutls_privkey_init(&pk) < 0 ||
      gnutls_privkey_import_x509(pk, key, 0) < 0 ||
      gnutls_x509_crt_privkey_sign(crt, crt, pk, GNUTLS_DIG_UNKNOWN, 0) < 0) {
    goto fail;
  }
  gnutls_privkey_deinit(pk);
  *pcrt = crt;
  return 0;
fail:
  if (pk) {
    gnutls_privkey_deinit(pk);
  }
  gnutls_x509_crt_deinit(crt);
  return -1;
}

int qe_tls_identity_init(qe_tls_identity *id, const char *pem, size_t pemlen,
                         const uint8_t *pubkey, qe_tls_verify_fn verify) {
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t d = {.data = (unsigned char *)pem, .size = (unsigned)pemlen};
  gnutls_datum_t x = {0}, k = {0};
  gnutls_ecc_curve_t curve;
  int rv = QE_ERR_TLS;
  *id = (qe_tls_identity){0};
  if (gnutls_x509_privkey_init(&key) < 0) {
    return QE_ERR_TLS;
  }
  if (gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL,
                                  GNUTLS_PKCS_PLAIN) < 0 ||
      gnutls_x509_privkey_get_pk_algorithm(key) != GNUTLS_PK_EDDSA_ED25519 ||
      gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, NULL, &k) < 0 ||
      x.size != QE_KEYLEN) {
    rv = QE_ERR_INVALID;
    goto fail;
  }
  if (pubkey != NULL && memcmp(pubkey, x.data, QE_KEYLEN) != 0) {
    rv = QE_ERR_INVALID;
    goto fail;
  }
  memcpy(id->pubkey, x.data, QE_KEYLEN);
  /* A restarted node can still reset its old connections (RFC 9000 10.3). */
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, k.data, k.size,
                       "quicether stateless reset", 25, id->reset_secret) < 0) {
    goto fail;
  }
  if (make_cert(&crt, key) < 0) {
    goto fail;
  }
  if (gnutls_certificate_allocate_credentials(&id->cred) < 0) {
    goto fail;
  }
  if (gnutls_certificate_set_x509_key(id->cred, &crt, 1, key) < 0) {
    goto fail;
  }
  if (gnutls_priority_init(&id->prio, qe_tls_priority, NULL) < 0) {
    goto fail;
  }
  tls_verify_fn = verify;
  gnutls_certificate_set_verify_function(id->cred, tls_verify_cb);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  gnutls_memset(k.data, 0, k.size);
  gnutls_free(k.data);
  gnutls_free(x.data);
  return 0;
fail:
  if (id->cred) {
    gnutls_certificate_free_credentials(id->cred);
  }
  if (crt) {
    gnutls_x509_crt_deinit(crt);
  }
  if (k.data) {
    gnutls_memset(k.data, 0, k.size);
  }
  gnutls_free(k.data);
  gnutls_free(x.data);
  gnutls_x509_privkey_deinit(key);
  *id = (qe_tls_identity){0};
  return rv;
}

void qe_tls_identity_free(qe_tls_identity *id) {
  if (id->prio) {
    gnutls_priority_deinit(id->prio);
  }
  if (id->cred) {
    gnutls_certificate_free_credentials(id->cred);
  }
  gnutls_memset(id->reset_secret, 0, sizeof(id->reset_secret));
  *id = (qe_tls_identity){0};
}

int qe_tls_session_new(gnutls_session_t *ps, qe_tls_identity *id, int server,
                       ngtcp2_crypto_conn_ref *ref) {
  gnutls_session_t s = NULL;
  gnutls_datum_t alpn = {.data = (unsigned char *)QE_ALPN,
                         .size = sizeof(QE_ALPN) - 1};
  unsigned flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                   GNUTLS_NO_END_OF_EARLY_DATA | GNUTLS_NO_AUTO_SEND_TICKET;
  if (gnutls_init(&s, flags) < 0) {
    return QE_ERR_TLS;
  }
  if ((server ? ngtcp2_crypto_gnutls_configure_server_session(s)
              : ngtcp2_crypto_gnutls_configure_client_session(s)) != 0 ||
      gnutls_priority_set(s, id->prio) < 0 ||
      gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, id->cred) < 0 ||
      gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0) {
    gnutls_deinit(s);
    return QE_ERR_TLS;
  }
  if (server) {
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
  }
  gnutls_session_set_ptr(s, ref);
  *ps = s;
  return 0;
}

int qe_tls_check_alpn(gnutls_session_t s) {
  gnutls_datum_t p;
  if (gnutls_alpn_get_selected_protocol(s, &p) < 0 ||
      p.size != sizeof(QE_ALPN) - 1 ||
      memcmp(p.data, QE_ALPN, p.size) != 0) {
    return QE_ERR_TLS;
  }
  return 0;
}
