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
#include <string.h>

typedef struct qe_txq {
  uint8_t *buf; /* cap slots of slotsize bytes */
  uint32_t *lens;
  size_t cap, slotsize, head, count;
  /* The first `urgent` packets came by qe_txq_push_urgent: they leave
   * before the rest, in the order they came. */
  size_t urgent;
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
  q->head = q->count = q->urgent = 0;
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

/* A slot `at` packets behind the head (0: sent next; at most the count),
 * the `at` before it each moving one slot toward the head; a full queue
 * loses its newest packet to make room (*dropped = 1). NULL only when `len`
 * is over the slot size. */
static inline uint8_t *qe_txq_insert(qe_txq *q, size_t at, size_t len,
                                     int *dropped) {
  size_t slot;
  *dropped = 0;
  if (len > q->slotsize || q->cap == 0) {
    return NULL;
  }
  if (q->count == q->cap) {
    q->count--;
    *dropped = 1;
    if (q->urgent > q->count) {
      q->urgent = q->count;
    }
  }
  if (at > q->count) {
    at = q->count;
  }
  q->head = (q->head + q->cap - 1) % q->cap;
  q->count++;
  for (size_t i = 0; i < at; i++) {
    size_t to = (q->head + i) % q->cap, from = (q->head + i + 1) % q->cap;
    memcpy(q->buf + to * q->slotsize, q->buf + from * q->slotsize,
           q->lens[from]);
    q->lens[to] = q->lens[from];
  }
  slot = (q->head + at) % q->cap;
  q->lens[slot] = (uint32_t)len;
  return q->buf + slot * q->slotsize;
}

/* A slot ahead of the queue but behind its urgent packets (qe_txq_insert:
 * a full queue loses its newest packet); NULL when the queue is full of
 * urgent packets, which a bulk packet does not displace. */
static inline uint8_t *qe_txq_push_front(qe_txq *q, size_t len, int *dropped) {
  if (q->urgent == q->cap) {
    *dropped = 0;
    return NULL;
  }
  return qe_txq_insert(q, q->urgent, len, dropped);
}

/* A slot ahead of the queue, behind the urgent packets already there: they
 * leave in the order they came. Pushed each at the very head, the newest
 * went first, and under a steady trickle (a ping every 20 ms into a path
 * whose window opened a packet at a time) the oldest waited up to 0.8 s. */
static inline uint8_t *qe_txq_push_urgent(qe_txq *q, size_t len, int *dropped) {
  uint8_t *p = qe_txq_insert(q, q->urgent, len, dropped);
  if (p != NULL) {
    q->urgent++;
  }
  return p;
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
  if (q->urgent) {
    q->urgent--;
  }
}

/* Forgets the newest packet (the queue is not empty). */
static inline void qe_txq_pop_back(qe_txq *q) {
  q->count--;
  if (q->urgent > q->count) {
    q->urgent = q->count;
  }
}

#endif /* QE_TXQ_H */
