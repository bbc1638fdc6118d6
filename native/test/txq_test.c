/*
 * The send queue ring (txq.h) against a naive deque on random operations:
 * pushes at both ends and urgent ones (a full queue refuses at the tail,
 * loses its newest packet at the head; an urgent packet goes behind the
 * urgent ones, a front push behind those too), pops at both ends,
 * oversized packets, wrap-around.
 * After every operation the ring's packets, oldest first, must equal the
 * model's. Prints "N passed, M failed".
 */
#include "../txq.h"

#include <stdio.h>
#include <string.h>

#define CAP 8
#define SLOT 32
#define MAXN 64

static unsigned passed, failed;

static void check(int ok, const char *what, int step) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s (step %d)\n", what, step);
  }
}

/* The slow twin: packets as (length, first byte) in a plain array. */
typedef struct model {
  size_t n, len[MAXN], urgent;
  uint8_t tag[MAXN];
} model;

static void model_insert(model *m, size_t at, size_t len, uint8_t tag) {
  memmove(m->len + at + 1, m->len + at, (m->n - at) * sizeof(size_t));
  memmove(m->tag + at + 1, m->tag + at, m->n - at);
  m->len[at] = len;
  m->tag[at] = tag;
  m->n++;
}

static void model_remove(model *m, size_t at) {
  memmove(m->len + at, m->len + at + 1, (m->n - at - 1) * sizeof(size_t));
  memmove(m->tag + at, m->tag + at + 1, m->n - at - 1);
  m->n--;
  if (at < m->urgent) {
    m->urgent--;
  }
}

static int same(const qe_txq *q, const model *m) {
  if (q->count != m->n || q->urgent != m->urgent) {
    return 0;
  }
  for (size_t i = 0; i < m->n; i++) {
    size_t slot = (q->head + i) % q->cap;
    const uint8_t *p = q->buf + slot * q->slotsize;
    if (q->lens[slot] != m->len[i] || p[0] != m->tag[i] ||
        p[m->len[i] - 1] != m->tag[i]) {
      return 0;
    }
  }
  return 1;
}

int main(void) {
  qe_txq q;
  model m = {0};
  uint8_t tag = 1;
  srand(7);
  if (qe_txq_init(&q, CAP, SLOT) != 0) {
    return 1;
  }
  for (int step = 0; step < 5000; step++) {
    int op = rand() % 7, dropped;
    size_t len = 1 + (size_t)rand() % (SLOT + 4), got;
    uint8_t *p;
    if (op == 0 || op == 1) {
      p = qe_txq_push_back(&q, len);
      if (len > SLOT || m.n == CAP) {
        check(p == NULL, "push_back refuses when full or too big", step);
      } else {
        check(p != NULL, "push_back takes when room", step);
        memset(p, tag, len);
        model_insert(&m, m.n, len, tag++);
      }
    } else if (op == 2 || op == 6) {
      int urgent = op == 6;
      p = urgent ? qe_txq_push_urgent(&q, len, &dropped)
                 : qe_txq_push_front(&q, len, &dropped);
      if (len > SLOT || (!urgent && m.urgent == CAP)) {
        check(p == NULL && !dropped,
              "push_front refuses too big, or a queue full of urgent ones",
              step);
      } else {
        check(p != NULL && dropped == (m.n == CAP),
              "push_front loses the newest only when full", step);
        if (m.n == CAP) {
          model_remove(&m, m.n - 1);
        }
        memset(p, tag, len);
        model_insert(&m, m.urgent, len, tag++);
        m.urgent += (size_t)urgent;
      }
    } else if (op == 3 || op == 4) {
      p = qe_txq_front(&q, &got);
      check((p == NULL) == (m.n == 0), "front is NULL only when empty", step);
      if (p) {
        check(got == m.len[0] && p[0] == m.tag[0], "front is the oldest",
              step);
        qe_txq_pop_front(&q);
        model_remove(&m, 0);
      }
    } else {
      p = qe_txq_back(&q, &got);
      check((p == NULL) == (m.n == 0), "back is NULL only when empty", step);
      if (p) {
        check(got == m.len[m.n - 1] && p[0] == m.tag[m.n - 1],
              "back is the newest", step);
        qe_txq_pop_back(&q);
        model_remove(&m, m.n - 1);
      }
    }
    if (tag == 0) {
      tag = 1;
    }
    check(same(&q, &m), "ring equals the model", step);
  }
  qe_txq_free(&q);
  check(q.buf == NULL && q.count == 0, "free clears", 0);
  {
    /* Bulk waiting, then three urgent packets and a front push (a
     * re-sent bulk packet): the urgent ones leave first, in the order they
     * came, then the re-sent one, then the bulk. */
    static const uint8_t want[] = {'u', 'v', 'w', 'r', 'a', 'b'};
    int ok = qe_txq_init(&q, CAP, SLOT) == 0, d;
    size_t n = 0, got;
    uint8_t *p;
    for (const char *t = "ab"; *t; t++) {
      memset(qe_txq_push_back(&q, 4), *t, 4);
    }
    memset(qe_txq_push_urgent(&q, 4, &d), 'u', 4);
    memset(qe_txq_push_urgent(&q, 4, &d), 'v', 4);
    memset(qe_txq_push_front(&q, 4, &d), 'r', 4);
    memset(qe_txq_push_urgent(&q, 4, &d), 'w', 4);
    while (ok && (p = qe_txq_front(&q, &got)) != NULL) {
      ok = n < sizeof(want) && p[0] == want[n++];
      qe_txq_pop_front(&q);
    }
    check(ok && n == sizeof(want) && q.urgent == 0,
          "urgent packets leave first and in their order", 0);
    qe_txq_free(&q);
  }
  printf("txq_test: %u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
