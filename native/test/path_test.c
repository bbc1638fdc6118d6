/*
 * A bonded path's sent-datagram bookkeeping (path.c) against a model: a
 * random run of sends, ACKs and losses (ids growing by one, ACKs and
 * losses of random recent or long-gone ids, some twice). The model says
 * which ids are still kept: a slot holds the last datagram sent into it
 * until that one is acknowledged, lost (then listed once to be sent
 * again) or overwritten. Checked after every step: what an ACK returns,
 * what a loss returns, the lost list, the payload in a kept slot. Also:
 * init's undo, and a path that keeps nothing. Prints "N passed, M failed".
 */
#include "../bond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT 64

static unsigned passed, failed;

static void check(int ok, const char *what, int step) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s (step %d)\n", what, step);
  }
}

/* The model: for each slot, the id it keeps + 1 (0: none) and its length. */
static uint64_t kept[QE_SENT_SLOTS];
static uint32_t klen[QE_SENT_SLOTS];

int main(void) {
  qe_path p;
  uint64_t next = 0, lost = 0;
  size_t nlisted = 0;
  srand(5);
  memset(&p, 0, sizeof(p));
  check(qe_path_sent(&p, 0, 10, 1) == NULL,
        "an uninitialised path keeps nothing", 0);
  check(qe_path_acked(&p, 0, NULL) == 0 && qe_path_lost(&p, 0) == 0 && p.lost == 1,
        "nor reports anything kept", 0);
  qe_path_free(&p);
  memset(&p, 0, sizeof(p));
  if (qe_path_init(&p, SLOT) != 0) {
    return 1;
  }
  for (int step = 0; step < 20000; step++) {
    int op = rand() % 10;
    if (op < 5) {
      size_t len = 1 + (size_t)rand() % (SLOT + 8);
      uint8_t *dst = qe_path_sent(&p, next, len, (qe_ts)step);
      size_t slot = next % QE_SENT_SLOTS;
      if (len > SLOT) {
        check(dst == NULL, "too big is not kept", step);
      } else {
        check(dst == p.sent_buf + slot * SLOT, "kept in its slot", step);
        memset(dst, (int)(next & 0xff), len);
        kept[slot] = next + 1;
        klen[slot] = (uint32_t)len;
      }
      next++;
    } else if (next > 0) {
      /* A recent id, or one long overwritten. */
      uint64_t back =
          (uint64_t)rand() % (rand() % 8 ? 64 : 3 * QE_SENT_SLOTS);
      uint64_t id = back < next ? next - 1 - back : 0;
      size_t slot = id % QE_SENT_SLOTS;
      int is_kept = kept[slot] == id + 1;
      if (op < 8) {
        uint32_t n = qe_path_acked(&p, id, NULL);
        check(n == (is_kept ? klen[slot] : 0),
              "ACK returns a kept one's bytes", step);
        if (is_kept) {
          check(p.sent_buf[slot * SLOT] == (uint8_t)(id & 0xff),
                "its payload was intact", step);
          kept[slot] = 0;
        }
      } else {
        int r = qe_path_lost(&p, id);
        lost++;
        check(r == is_kept, "a loss of a kept one is listed", step);
        if (is_kept) {
          check(p.lost_slots[nlisted] == slot, "listed by slot", step);
          nlisted++;
          /* The slot stays kept until re-sent (bond.c clears it then). */
          p.sent_id[slot] = 0;
          kept[slot] = 0;
        }
      }
    }
    check(p.nlost == nlisted && p.lost == lost, "counts follow", step);
    if (p.nlost > QE_SENT_SLOTS / 2) {
      p.nlost = nlisted = 0; /* bond.c re-sent them */
    }
  }
  qe_path_free(&p);
  check(p.sent_buf == NULL && p.sent_id == NULL && p.lost_slots == NULL,
        "free clears", 0);
  qe_path_free(&p);
  check(1, "free twice is safe", 0);
  printf("path_test: %u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
