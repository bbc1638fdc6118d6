/*
 * Control stream framing: each frame is a 4-byte big-endian header, then
 * its payload. The header's top bit marks padding (a NOP: skipped, never
 * delivered); the other 31 bits are the payload length. Pure (no engine
 * state): native/test/ctrl_frame_test.c checks it on random streams cut at
 * random points.
 */
#ifndef QE_CTRL_FRAME_H
#define QE_CTRL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define QE_CTL_HDR 4

typedef enum qe_ctl_frame_kind {
  QE_CTL_FRAME_MORE, /* not whole yet: wait for more bytes */
  QE_CTL_FRAME_MSG,  /* a message of *n bytes after the header */
  QE_CTL_FRAME_PAD,  /* padding of *n bytes after the header */
  QE_CTL_FRAME_BAD,  /* a length over `max`: the stream is broken */
} qe_ctl_frame_kind;

/* Writes the header of a frame of `n` payload bytes (n < 2^31). */
static inline void qe_ctl_frame_hdr(uint8_t hdr[QE_CTL_HDR], size_t n,
                                    int pad) {
  hdr[0] = (uint8_t)((n >> 24) & 0x7f) | (pad ? 0x80 : 0);
  hdr[1] = (uint8_t)(n >> 16);
  hdr[2] = (uint8_t)(n >> 8);
  hdr[3] = (uint8_t)n;
}

/* Reads the frame at `buf`, of which `len` bytes have arrived; payloads
 * over `max` bytes are BAD. The frame is QE_CTL_HDR + *n bytes. */
static inline qe_ctl_frame_kind qe_ctl_frame(const uint8_t *buf, size_t len,
                                             size_t max, size_t *n) {
  if (len < QE_CTL_HDR) {
    return QE_CTL_FRAME_MORE;
  }
  *n = ((size_t)(buf[0] & 0x7f) << 24) | ((size_t)buf[1] << 16) |
       ((size_t)buf[2] << 8) | buf[3];
  if (*n > max) {
    return QE_CTL_FRAME_BAD;
  }
  if (len - QE_CTL_HDR < *n) {
    return QE_CTL_FRAME_MORE;
  }
  return (buf[0] & 0x80) ? QE_CTL_FRAME_PAD : QE_CTL_FRAME_MSG;
}

/*
 * A bonded path's NOPs are padding with a stamp as payload (sched.h,
 * qe_owd): QE_STAMP_KIND, the sender's clock when the NOP left (8
 * bytes, big-endian, CLOCK_MONOTONIC ns), then the echo (4 bytes,
 * big-endian, µs: how long the peer's stamps waited above their lowest;
 * 0xffffffff: none came since the last echo). Padding of any other content
 * or length carries nothing, and a peer of an older version skips a stamp
 * as any padding: the format of the stream is unchanged.
 */
#define QE_STAMP_KIND 0x54      /* 'T': a NOP after datagrams, or a probe */
#define QE_STAMP_ECHO_KIND 0x45 /* 'E': a NOP sent only to echo: not echoed
                                 * itself, or two quiet peers would echo
                                 * each other's echoes for ever */
#define QE_STAMP_LEN 13

/* Sets a stamp's clock (as the NOP leaves: qe_conn_write). */
static inline void qe_stamp_set_ts(uint8_t p[QE_STAMP_LEN], uint64_t ts) {
  for (int i = 0; i < 8; i++) {
    p[1 + i] = (uint8_t)(ts >> (56 - 8 * i));
  }
}

static inline void qe_stamp_put(uint8_t p[QE_STAMP_LEN], int kind,
                                uint64_t ts, uint32_t echo_us) {
  p[0] = (uint8_t)kind;
  qe_stamp_set_ts(p, ts);
  for (int i = 0; i < 4; i++) {
    p[9 + i] = (uint8_t)(echo_us >> (24 - 8 * i));
  }
}

/* Reads a padding payload of `n` bytes: its kind if it is a stamp, else 0. */
static inline int qe_stamp_get(const uint8_t *p, size_t n, uint64_t *ts,
                               uint32_t *echo_us) {
  if (n != QE_STAMP_LEN ||
      (p[0] != QE_STAMP_KIND && p[0] != QE_STAMP_ECHO_KIND)) {
    return 0;
  }
  *ts = 0;
  *echo_us = 0;
  for (int i = 0; i < 8; i++) {
    *ts = (*ts << 8) | p[1 + i];
  }
  for (int i = 0; i < 4; i++) {
    *echo_us = (*echo_us << 8) | p[9 + i];
  }
  return p[0];
}

#endif /* QE_CTRL_FRAME_H */
