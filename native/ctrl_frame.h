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

#endif /* QE_CTRL_FRAME_H */
