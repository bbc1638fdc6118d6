/* The bonded peer's reorder buffer (see reorder.h). */
#include "reorder.h"

#include <stdlib.h>
#include <string.h>

int qe_reorder_init(qe_reorder *rb, size_t slotsize, size_t max_bytes,
                    uint64_t timeout_ns) {
  memset(rb, 0, sizeof(*rb));
  rb->buf = malloc(QE_RB_SLOTS * slotsize);
  rb->lens = calloc(QE_RB_SLOTS, sizeof(uint32_t));
  rb->seqs = calloc(QE_RB_SLOTS, sizeof(uint32_t));
  rb->done = calloc(QE_RB_SLOTS, sizeof(uint64_t));
  if (!rb->buf || !rb->lens || !rb->seqs || !rb->done) {
    qe_reorder_free(rb);
    return -1;
  }
  rb->slotsize = slotsize;
  rb->max_bytes = max_bytes;
  rb->timeout_ns = timeout_ns;
  return 0;
}

void qe_reorder_free(qe_reorder *rb) {
  free(rb->buf);
  free(rb->lens);
  free(rb->seqs);
  free(rb->done);
  memset(rb, 0, sizeof(*rb));
}

void qe_reorder_reset(qe_reorder *rb) {
  if (rb->lens == NULL) {
    return;
  }
  memset(rb->lens, 0, QE_RB_SLOTS * sizeof(uint32_t));
  memset(rb->done, 0, QE_RB_SLOTS * sizeof(uint64_t));
  rb->started = 0;
  rb->held = rb->held_bytes = 0;
}

/* seq - next in the 31-bit sequence space, sign-extended. */
static int32_t seq_diff(uint32_t seq, uint32_t next) {
  return (int32_t)(((seq - next) & QE_RB_SEQ_MASK) << 1) >> 1;
}

static void release(qe_reorder *rb, uint32_t seq, const uint8_t *pkt,
                    size_t len, qe_rb_deliver fn, void *ud) {
  rb->done[seq % QE_RB_SLOTS] = (uint64_t)seq + 1;
  rb->delivered++;
  fn(ud, pkt, len);
}

/* Releases the run of held packets starting at `next`. */
static void release_run(qe_reorder *rb, uint64_t ts, qe_rb_deliver fn,
                        void *ud) {
  for (;;) {
    size_t slot = rb->next % QE_RB_SLOTS;
    if (rb->lens[slot] == 0 || rb->seqs[slot] != rb->next) {
      break;
    }
    uint32_t len = rb->lens[slot];
    rb->lens[slot] = 0;
    rb->held--;
    rb->held_bytes -= len;
    release(rb, rb->next, rb->buf + slot * rb->slotsize, len, fn, ud);
    rb->next = (rb->next + 1) & QE_RB_SEQ_MASK;
  }
  if (rb->held) {
    rb->gap_since = ts;
  }
}

/* Gives up the gap at `next`: skips to the first held packet. */
static void skip_gap(qe_reorder *rb, uint64_t ts, qe_rb_deliver fn,
                     void *ud) {
  for (size_t n = 0; n < QE_RB_SLOTS && rb->held; n++) {
    size_t slot = rb->next % QE_RB_SLOTS;
    if (rb->lens[slot] != 0 && rb->seqs[slot] == rb->next) {
      break;
    }
    rb->next = (rb->next + 1) & QE_RB_SEQ_MASK;
  }
  release_run(rb, ts, fn, ud);
}

void qe_reorder_push(qe_reorder *rb, uint32_t seq, const uint8_t *pkt,
                     size_t len, uint64_t ts, qe_rb_deliver fn, void *ud) {
  int32_t d;
  size_t slot;
  seq &= QE_RB_SEQ_MASK;
  slot = seq % QE_RB_SLOTS;
  if (len == 0 || len > rb->slotsize) {
    rb->dropped++;
    return;
  }
  if (!rb->started) {
    rb->started = 1;
    rb->next = seq;
  }
  d = seq_diff(seq, rb->next);
  if (d < 0) {
    if (d > -(int32_t)QE_RB_SLOTS && rb->done[slot] == (uint64_t)seq + 1) {
      rb->dropped++; /* a duplicate */
      return;
    }
    rb->late++;
    release(rb, seq, pkt, len, fn, ud);
    return;
  }
  if (d >= (int32_t)QE_RB_SLOTS) {
    /* Far ahead: give up everything held, restart the window here. */
    while (rb->held) {
      skip_gap(rb, ts, fn, ud);
    }
    rb->next = seq;
    d = 0;
  }
  if (d == 0) {
    release(rb, seq, pkt, len, fn, ud);
    rb->next = (rb->next + 1) & QE_RB_SEQ_MASK;
    release_run(rb, ts, fn, ud);
    return;
  }
  if (rb->lens[slot] != 0) {
    rb->dropped++; /* a duplicate of a held packet */
    return;
  }
  memcpy(rb->buf + slot * rb->slotsize, pkt, len);
  rb->lens[slot] = (uint32_t)len;
  rb->seqs[slot] = seq;
  if (rb->held++ == 0) {
    rb->gap_since = ts;
  }
  rb->held_bytes += len;
  rb->reordered++;
  while (rb->held_bytes > rb->max_bytes && rb->held) {
    skip_gap(rb, ts, fn, ud);
  }
}

void qe_reorder_tick(qe_reorder *rb, uint64_t ts, qe_rb_deliver fn,
                     void *ud) {
  while (rb->held && ts >= rb->gap_since + rb->timeout_ns) {
    uint64_t before = rb->gap_since;
    skip_gap(rb, ts, fn, ud);
    if (rb->held && rb->gap_since == before) {
      break;
    }
  }
}

uint64_t qe_reorder_deadline(const qe_reorder *rb) {
  return rb->held ? rb->gap_since + rb->timeout_ns : UINT64_MAX;
}
