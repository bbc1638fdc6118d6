/*
 * QuicEther forwarding plane: shared definitions.
 *
 * Every function returns 0 (or a count) on success and a negative QE_ERR_*
 * on failure; the header of each object lists the codes it can return.
 * Time is passed in as `ts` (CLOCK_MONOTONIC nanoseconds, the same clock as
 * ngtcp2_tstamp) and never read inside an object's functions.
 */
#ifndef QE_H
#define QE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QE_ERR_NOMEM -1    /* allocation failed */
#define QE_ERR_INVALID -2  /* bad argument (length, family, format) */
#define QE_ERR_SYS -3      /* a system call failed; errno holds the cause */
#define QE_ERR_TLS -4      /* GnuTLS refused (key, certificate, session) */
#define QE_ERR_QUIC -5     /* ngtcp2 refused */
#define QE_ERR_FULL -6     /* a fixed-size table is full */
#define QE_ERR_NOTFOUND -7 /* no such peer / connection */
#define QE_ERR_STATE -8    /* not allowed in the current state */

/* Raw Ed25519 public key length: the identity of a node. */
#define QE_KEYLEN 32

/* Our connection IDs: 2 bytes slot, 2 bytes generation, 4 random bytes. */
#define QE_CIDLEN 8

/*
 * Bytes of QUIC around one DATAGRAM frame in a short-header packet:
 * flags (1) + DCID (QE_CIDLEN) + packet number (at most 4) + AEAD tag (16)
 * + frame type (1) + length varint (2). tunMtuFor() in src/engine mirrors it.
 */
#define QE_QUIC_DGRAM_OVERHEAD (1 + QE_CIDLEN + 4 + 16 + 1 + 2)

typedef uint64_t qe_ts;

static inline qe_ts qe_now(void) {
  struct timespec tp;
  clock_gettime(CLOCK_MONOTONIC, &tp);
  return (qe_ts)tp.tv_sec * 1000000000ULL + (qe_ts)tp.tv_nsec;
}

const char *qe_strerror(int rv);

#endif /* QE_H */
