/*
 * A bonded path's bookkeeping of what it sent (see bond.h): each datagram
 * kept in a slot until acknowledged or lost, so that it can be sent again
 * on another path. Pure (no QUIC or engine state): native/test/path_test.c
 * drives it with made-up datagram ids.
 */
#include "bond.h"

#include <stdlib.h>

int qe_path_init(qe_path *p, size_t slotsize) {
  p->sent_buf = malloc(QE_SENT_SLOTS * slotsize);
  p->sent_id = calloc(QE_SENT_SLOTS, sizeof(uint64_t));
  p->sent_len = calloc(QE_SENT_SLOTS, sizeof(uint32_t));
  p->sent_ts = calloc(QE_SENT_SLOTS, sizeof(qe_ts));
  p->lost_slots = calloc(QE_SENT_SLOTS, sizeof(uint16_t));
  if (!p->sent_buf || !p->sent_id || !p->sent_len || !p->sent_ts ||
      !p->lost_slots) {
    qe_path_free(p);
    return QE_ERR_NOMEM;
  }
  p->slotsize = slotsize;
  return 0;
}

void qe_path_free(qe_path *p) {
  free(p->sent_buf);
  free(p->sent_id);
  free(p->sent_len);
  free(p->sent_ts);
  free(p->lost_slots);
  p->sent_buf = NULL;
  p->sent_id = NULL;
  p->sent_len = NULL;
  p->sent_ts = NULL;
  p->lost_slots = NULL;
  p->nlost = 0;
}

uint8_t *qe_path_sent(qe_path *p, uint64_t id, size_t len, qe_ts ts) {
  size_t slot = id % QE_SENT_SLOTS;
  if (p->sent_buf == NULL || len > p->slotsize) {
    return NULL;
  }
  p->sent_id[slot] = id + 1;
  p->sent_ts[slot] = ts;
  p->sent_len[slot] = (uint32_t)len;
  return p->sent_buf + slot * p->slotsize;
}

/* Clears the slot of datagram `id` if it still holds it. */
static void forget(qe_path *p, uint64_t id) {
  if (p->sent_id != NULL && p->sent_id[id % QE_SENT_SLOTS] == id + 1) {
    p->sent_id[id % QE_SENT_SLOTS] = 0;
  }
}

uint32_t qe_path_acked(qe_path *p, uint64_t id, qe_ts *sent_ts) {
  uint32_t len = 0;
  if (p->sent_id != NULL && p->sent_id[id % QE_SENT_SLOTS] == id + 1) {
    len = p->sent_len[id % QE_SENT_SLOTS];
    if (sent_ts != NULL) {
      *sent_ts = p->sent_ts[id % QE_SENT_SLOTS];
    }
  }
  forget(p, id);
  return len;
}

int qe_path_lost(qe_path *p, uint64_t id) {
  size_t slot = id % QE_SENT_SLOTS;
  int kept = p->sent_id != NULL && p->sent_id[slot] == id + 1;
  p->lost++;
  if (kept) {
    qe_rate_lost(&p->rate, p->sent_len[slot]);
  }
  if (kept && p->nlost < QE_SENT_SLOTS) {
    p->lost_slots[p->nlost++] = (uint16_t)slot;
    return 1;
  }
  forget(p, id);
  return 0;
}
