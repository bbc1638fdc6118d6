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
  rb->due = calloc(QE_RB_SLOTS, sizeof(uint64_t));
  if (!rb->buf || !rb->lens || !rb->seqs || !rb->done || !rb->due) {
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
  free(rb->due);
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

/* The slot of `next` when it holds that packet, else -1 (a gap). */
static long head_slot(const qe_reorder *rb) {
  size_t slot = rb->next % QE_RB_SLOTS;
  return rb->lens[slot] != 0 && rb->seqs[slot] == rb->next ? (long)slot : -1;
}

/* Releases the run of held packets starting at `next` that have come due
 * (`force`: the first one whatever its due time). A gap left behind with
 * packets still held starts its wait. */
static void release_run(qe_reorder *rb, uint64_t ts, int force,
                        qe_rb_deliver fn, void *ud) {
  long slot;
  int released = 0;
  while ((slot = head_slot(rb)) >= 0 && (force || rb->due[slot] <= ts)) {
    uint32_t len = rb->lens[slot];
    force = 0;
    released = 1;
    rb->lens[slot] = 0;
    rb->held--;
    rb->held_bytes -= len;
    release(rb, rb->next, rb->buf + (size_t)slot * rb->slotsize, len, fn, ud);
    rb->next = (rb->next + 1) & QE_RB_SEQ_MASK;
  }
  if (released && rb->held && slot < 0) {
    rb->gap_since = ts;
  }
}

/* Gives up the gap at `next`, if any: skips to the first held packet and
 * releases what has come due (`force`: that packet whatever its due). */
static void skip_gap(qe_reorder *rb, uint64_t ts, int force,
                     qe_rb_deliver fn, void *ud) {
  for (size_t n = 0; n < QE_RB_SLOTS && rb->held && head_slot(rb) < 0; n++) {
    rb->next = (rb->next + 1) & QE_RB_SEQ_MASK;
  }
  release_run(rb, ts, force, fn, ud);
}

void qe_reorder_push(qe_reorder *rb, uint32_t seq, const uint8_t *pkt,
                     size_t len, uint64_t ts, uint64_t due, qe_rb_deliver fn,
                     void *ud) {
  int32_t d;
  size_t slot;
  int gap;
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
      skip_gap(rb, ts, 1, fn, ud);
    }
    rb->next = seq;
    d = 0;
  }
  if (d == 0 && due <= ts && rb->held == 0) {
    release(rb, seq, pkt, len, fn, ud); /* the common case: no copy */
    rb->next = (rb->next + 1) & QE_RB_SEQ_MASK;
    return;
  }
  if (rb->lens[slot] != 0) {
    rb->dropped++; /* a duplicate of a held packet */
    return;
  }
  gap = rb->held && head_slot(rb) < 0;
  memcpy(rb->buf + slot * rb->slotsize, pkt, len);
  rb->lens[slot] = (uint32_t)len;
  rb->seqs[slot] = seq;
  rb->due[slot] = due;
  rb->held++;
  rb->held_bytes += len;
  if (d == 0) {
    release_run(rb, ts, 0, fn, ud);
  } else {
    rb->reordered++;
    if (!gap && head_slot(rb) < 0) {
      rb->gap_since = ts; /* a gap's wait begins (not while `next` is held
                           * for its due time) */
    }
  }
  while (rb->held_bytes > rb->max_bytes && rb->held) {
    skip_gap(rb, ts, 1, fn, ud);
  }
}

/* The slot of the first packet held past `next` (some packet is held). */
static size_t first_held(const qe_reorder *rb) {
  uint32_t seq = rb->next;
  for (size_t n = 0; n < QE_RB_SLOTS; n++, seq = (seq + 1) & QE_RB_SEQ_MASK) {
    size_t slot = seq % QE_RB_SLOTS;
    if (rb->lens[slot] != 0 && rb->seqs[slot] == seq) {
      return slot;
    }
  }
  return 0; /* not reached while rb->held */
}

void qe_reorder_tick(qe_reorder *rb, uint64_t ts, qe_rb_deliver fn,
                     void *ud) {
  release_run(rb, ts, 0, fn, ud);
  while (rb->held && head_slot(rb) < 0 && ts >= rb->gap_since + rb->timeout_ns) {
    uint64_t before = rb->next;
    size_t f = first_held(rb);
    if (rb->due[f] > ts) {
      /* Nothing past the gap may leave yet: a gap given up now would make
       * its packet late for nothing. Its wait ends with that due time. */
      rb->gap_since = rb->due[f] - rb->timeout_ns;
      break;
    }
    skip_gap(rb, ts, 0, fn, ud);
    if (rb->next == before) {
      break;
    }
  }
}

uint64_t qe_reorder_deadline(const qe_reorder *rb) {
  long slot;
  if (!rb->held) {
    return UINT64_MAX;
  }
  slot = head_slot(rb);
  return slot >= 0 ? rb->due[slot] : rb->gap_since + rb->timeout_ns;
}
