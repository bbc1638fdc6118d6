/*
 * Control stream framing (ctrl_frame.h): random sequences of messages and
 * padding are encoded into one stream, which is then read back in pieces cut
 * at random points, as the stream delivers them. The frames read must be
 * exactly the frames written (kind, length, payload), a partial frame must
 * read as MORE, and a length over the limit as BAD. Prints "N passed, M
 * failed".
 */
#include "../ctrl_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 64
#define MAXLEN 300

static unsigned passed, failed;

static void check(int ok, const char *what, int round) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL %s (round %d)\n", what, round);
  }
}

int main(void) {
  static uint8_t stream[MAXF * (QE_CTL_HDR + MAXLEN)], rbuf[sizeof(stream)];
  srand(3);
  for (int round = 0; round < 300; round++) {
    size_t nf = 1 + (size_t)rand() % MAXF, len = 0, got = 0, pos = 0;
    size_t flen[MAXF], foff[MAXF], rlen = 0;
    int fpad[MAXF], ok = 1;
    for (size_t i = 0; i < nf; i++) {
      flen[i] = (size_t)rand() % MAXLEN;
      fpad[i] = rand() % 4 == 0;
      qe_ctl_frame_hdr(stream + len, flen[i], fpad[i]);
      foff[i] = len + QE_CTL_HDR;
      for (size_t k = 0; k < flen[i]; k++) {
        stream[foff[i] + k] = (uint8_t)(i * 7 + k);
      }
      len += QE_CTL_HDR + flen[i];
    }
    /* Deliver in random pieces; read whole frames as they complete. */
    while (rlen < len || pos < rlen) {
      size_t piece = 1 + (size_t)rand() % 200, n = 0;
      qe_ctl_frame_kind k;
      if (piece > len - rlen) {
        piece = len - rlen;
      }
      memcpy(rbuf + rlen, stream + rlen, piece);
      rlen += piece;
      while ((k = qe_ctl_frame(rbuf + pos, rlen - pos, MAXLEN, &n)) !=
             QE_CTL_FRAME_MORE) {
        if (got >= nf || k == QE_CTL_FRAME_BAD || n != flen[got] ||
            (k == QE_CTL_FRAME_PAD) != fpad[got] ||
            memcmp(rbuf + pos + QE_CTL_HDR, stream + foff[got], n) != 0) {
          ok = 0;
          break;
        }
        got++;
        pos += QE_CTL_HDR + n;
      }
      if (!ok || (piece == 0 && pos < rlen)) {
        break;
      }
    }
    check(ok, "frames read back as written", round);
    check(got == nf, "every frame read", round);
    check(qe_ctl_frame(stream, QE_CTL_HDR - 1, MAXLEN, &got) ==
              QE_CTL_FRAME_MORE,
          "a partial header is MORE", round);
    check(flen[0] == 0 || qe_ctl_frame(stream, QE_CTL_HDR + flen[0] - 1,
                                       MAXLEN, &got) == QE_CTL_FRAME_MORE,
          "a partial payload is MORE", round);
    check(flen[0] <= 1 ||
              qe_ctl_frame(stream, len, flen[0] - 1, &got) ==
                  QE_CTL_FRAME_BAD,
          "a length over the limit is BAD", round);
  }
  {
    uint8_t h[QE_CTL_HDR];
    size_t n = 0;
    qe_ctl_frame_hdr(h, 0x7fffffff, 0);
    check(qe_ctl_frame(h, sizeof(h), 1024 * 1024, &n) == QE_CTL_FRAME_BAD &&
              n == 0x7fffffff,
          "31-bit lengths, the top bit is padding", 0);
  }
  {
    /* A stamp reads back as written; other padding is not a stamp. */
    uint8_t p[QE_STAMP_LEN];
    uint64_t ts = 0;
    uint32_t echo = 0;
    qe_stamp_put(p, QE_STAMP_KIND, 0x0123456789abcdefULL, 0xfedcba98U);
    check(qe_stamp_get(p, sizeof(p), &ts, &echo) == QE_STAMP_KIND &&
              ts == 0x0123456789abcdefULL && echo == 0xfedcba98U,
          "a stamp reads back as written", 0);
    qe_stamp_put(p, QE_STAMP_ECHO_KIND, 1, 0);
    check(qe_stamp_get(p, sizeof(p), &ts, &echo) == QE_STAMP_ECHO_KIND &&
              ts == 1 && echo == 0,
          "an echo-only stamp keeps its kind", 0);
    qe_stamp_set_ts(p, 0x1122334455667788ULL);
    check(qe_stamp_get(p, sizeof(p), &ts, &echo) == QE_STAMP_ECHO_KIND &&
              ts == 0x1122334455667788ULL && echo == 0,
          "a stamp's clock is rewritten in place, its kind and echo kept", 0);
    check(qe_stamp_get(p, sizeof(p) - 1, &ts, &echo) == 0,
          "padding of another length is not a stamp", 0);
    p[0] = 0;
    check(qe_stamp_get(p, sizeof(p), &ts, &echo) == 0,
          "padding of other content is not a stamp", 0);
  }
  printf("ctrl_frame_test: %u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
