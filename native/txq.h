/*
 * A connection's send queue: packets waiting for congestion window, oldest
 * first, in a ring of fixed slots allocated once (qe_txq_init) so nothing on
 * the per-packet path allocates. The caller copies a packet into the slot a
 * push returns. Pure (no engine state): native/test/txq_test.c checks it
 * against a naive deque. The forwarding that uses it is in txq.c.
 */
#ifndef QE_TXQ_H
#define QE_TXQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct qe_txq {
  uint8_t *buf; /* cap slots of slotsize bytes */
  uint32_t *lens;
  size_t cap, slotsize, head, count;
} qe_txq;

/* 0, or -1 (out of memory; the queue is left empty and freeable). */
static inline int qe_txq_init(qe_txq *q, size_t slots, size_t slotsize) {
  q->buf = malloc(slots * slotsize);
  q->lens = calloc(slots, sizeof(uint32_t));
  if (q->buf == NULL || q->lens == NULL) {
    free(q->buf);
    free(q->lens);
    *q = (qe_txq){0};
    return -1;
  }
  q->cap = slots;
  q->slotsize = slotsize;
  q->head = q->count = 0;
  return 0;
}

static inline void qe_txq_free(qe_txq *q) {
  free(q->buf);
  free(q->lens);
  *q = (qe_txq){0};
}

/* A slot at the tail for a packet of `len` bytes; NULL when full or too
 * big (the caller drops it). */
static inline uint8_t *qe_txq_push_back(qe_txq *q, size_t len) {
  size_t slot;
  if (q->count == q->cap || len > q->slotsize) {
    return NULL;
  }
  slot = (q->head + q->count) % q->cap;
  q->lens[slot] = (uint32_t)len;
  q->count++;
  return q->buf + slot * q->slotsize;
}

/* A slot at the head (sent next); a full queue loses its newest packet to
 * make room (*dropped = 1). NULL only when `len` is over the slot size. */
static inline uint8_t *qe_txq_push_front(qe_txq *q, size_t len, int *dropped) {
  *dropped = 0;
  if (len > q->slotsize || q->cap == 0) {
    return NULL;
  }
  if (q->count == q->cap) {
    q->count--;
    *dropped = 1;
  }
  q->head = (q->head + q->cap - 1) % q->cap;
  q->count++;
  q->lens[q->head] = (uint32_t)len;
  return q->buf + q->head * q->slotsize;
}

/* The oldest packet (its length in *len), or NULL when empty. */
static inline uint8_t *qe_txq_front(const qe_txq *q, size_t *len) {
  if (q->count == 0) {
    return NULL;
  }
  *len = q->lens[q->head];
  return q->buf + q->head * q->slotsize;
}

/* The newest packet, or NULL when empty. */
static inline uint8_t *qe_txq_back(const qe_txq *q, size_t *len) {
  size_t slot;
  if (q->count == 0) {
    return NULL;
  }
  slot = (q->head + q->count - 1) % q->cap;
  *len = q->lens[slot];
  return q->buf + slot * q->slotsize;
}

/* Forgets the oldest packet (the queue is not empty). */
static inline void qe_txq_pop_front(qe_txq *q) {
  q->head = (q->head + 1) % q->cap;
  q->count--;
}

/* Forgets the newest packet (the queue is not empty). */
static inline void qe_txq_pop_back(qe_txq *q) {
  q->count--;
}

#endif /* QE_TXQ_H */
