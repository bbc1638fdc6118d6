/*
 * Receive-side reorder buffer of a bonded peer: packets carry a 31-bit
 * sequence number (QE_RB_SEQ_MASK; on the wire the top bit marks a packet
 * outside the sequence, which never reaches this buffer); they are released
 * in order, each no sooner than its due time (the sender's hold: the bond
 * delivers every path's packets at about the same delay). A gap is given
 * up after
 * `timeout_ns` (about the RTT spread between paths) or when the held bytes
 * exceed `max_bytes`; packets of a given-up gap that arrive later are
 * delivered at once ("late"); duplicates are dropped. Standalone (no engine
 * dependency) so native/test/reorder_test.c can check it against a model.
 */
#ifndef QE_REORDER_H
#define QE_REORDER_H

#include <stddef.h>
#include <stdint.h>

#define QE_RB_SLOTS 4096
#define QE_RB_SEQ_MASK 0x7fffffffu

typedef void (*qe_rb_deliver)(void *ud, const uint8_t *pkt, size_t len);

typedef struct qe_reorder {
  uint8_t *buf;   /* QE_RB_SLOTS * slotsize */
  uint32_t *lens; /* 0: empty */
  uint32_t *seqs;
  uint64_t *done; /* seq + 1 of the last packet released from each slot */
  uint64_t *due;  /* a held packet is released no sooner */
  size_t slotsize, max_bytes;
  uint32_t next; /* the sequence number released next */
  int started;
  size_t held, held_bytes;
  uint64_t gap_since; /* when we started waiting for a missing `next` */
  uint64_t timeout_ns;
  uint64_t reordered, late, dropped, delivered;
} qe_reorder;

int qe_reorder_init(qe_reorder *rb, size_t slotsize, size_t max_bytes,
                    uint64_t timeout_ns);
void qe_reorder_free(qe_reorder *rb);
/* Forgets every held packet (a peer restarted): nothing is delivered. */
void qe_reorder_reset(qe_reorder *rb);
/* A packet arrived at `ts`, to be delivered in order and no sooner than
 * `due` (at most ts: at once). Overflowing max_bytes releases the oldest
 * held packets whatever their due time. */
void qe_reorder_push(qe_reorder *rb, uint32_t seq, const uint8_t *pkt,
                     size_t len, uint64_t ts, uint64_t due, qe_rb_deliver fn,
                     void *ud);
/* Releases what has come due, and gives up gaps waited on for timeout_ns. */
void qe_reorder_tick(qe_reorder *rb, uint64_t ts, qe_rb_deliver fn, void *ud);
/* When tick has work (the next packet's due time, or its gap's timeout):
 * UINT64_MAX if nothing is held. */
uint64_t qe_reorder_deadline(const qe_reorder *rb);

#endif /* QE_REORDER_H */
