/*
 * TUN offload helpers: a TSO super-packet split into segments must give
 * packets whose IP and TCP checksums verify with an independent, plain
 * RFC 1071 implementation, whose sequence numbers and lengths add up; and
 * GRO must coalesce those segments back into one super-packet carrying the
 * same bytes. Prints "N passed, M failed".
 */
#include "../tun_offload.h"

#include <fcntl.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned passed, failed;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

/* Plain big-endian checksum, the slow twin of qe_csum_add/fold. */
static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) {
    s += (uint32_t)(p[i] << 8 | p[i + 1]);
  }
  if (n & 1) {
    s += (uint32_t)p[n - 1] << 8;
  }
  return s;
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) {
    s = (s & 0xffff) + (s >> 16);
  }
  return (uint16_t)s;
}

static int tcp_ok(const uint8_t *pkt, size_t len) {
  int v4 = pkt[0] >> 4 == 4;
  size_t iphl = v4 ? (size_t)(pkt[0] & 15) * 4 : 40, l4 = len - iphl;
  uint32_t s = v4 ? sum16(0, pkt + 12, 8) : sum16(0, pkt + 8, 32);
  s += 6 + (uint32_t)(l4 & 0xffff) + (uint32_t)(l4 >> 16);
  s = sum16(s, pkt + iphl, l4);
  if (v4 && fold(sum16(0, pkt, iphl)) != 0xffff) {
    return 0;
  }
  return fold(s) == 0xffff;
}

typedef struct {
  uint8_t out[64][2048];
  size_t len[64];
  int n;
} sink;

static void collect(void *ctx, const uint8_t *hdr, size_t hdrlen,
                    const uint8_t *payload, size_t paylen) {
  sink *s = ctx;
  if (s->n < 64) {
    memcpy(s->out[s->n], hdr, hdrlen);
    memcpy(s->out[s->n] + hdrlen, payload, paylen);
    s->len[s->n++] = hdrlen + paylen;
  }
}

/* A TSO frame as the kernel gives it: vnet header, IP, TCP (with options),
 * payload; the TCP checksum field holds only the pseudo-header sum. */
static size_t make_tso(uint8_t *f, int v4, size_t mss, size_t paylen,
                       uint32_t seq) {
  uint8_t *p = f + QE_VNET_HDRLEN;
  size_t iphl = v4 ? 20 : 40, thl = 32, total = iphl + thl + paylen;
  memset(f, 0, QE_VNET_HDRLEN + iphl + thl);
  f[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  f[1] = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
  f[4] = (uint8_t)mss;
  f[5] = (uint8_t)(mss >> 8);
  if (v4) {
    p[0] = 0x45;
    p[2] = (uint8_t)(total >> 8);
    p[3] = (uint8_t)total;
    p[4] = 0x12;
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    memcpy(p + 12, "\x0a\x4d\x00\x02\x0a\x4d\x00\x01", 8);
  } else {
    p[0] = 0x60;
    p[4] = (uint8_t)((thl + paylen) >> 8);
    p[5] = (uint8_t)(thl + paylen);
    p[6] = 6;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 2;
    p[24] = 0xfd;
    p[39] = 1;
  }
  uint8_t *t = p + iphl;
  t[0] = 0x9c;
  t[1] = 0x40;
  t[2] = 0x14;
  t[3] = 0x51;
  t[4] = (uint8_t)(seq >> 24);
  t[5] = (uint8_t)(seq >> 16);
  t[6] = (uint8_t)(seq >> 8);
  t[7] = (uint8_t)seq;
  t[11] = 7;
  t[12] = (uint8_t)((thl / 4) << 4);
  t[13] = 0x18; /* ACK|PSH */
  t[14] = 0x01;
  t[20] = 1;
  t[21] = 1;
  t[22] = 8;
  t[23] = 10; /* timestamps option */
  for (size_t i = 0; i < paylen; i++) {
    p[iphl + thl + i] = (uint8_t)(i * 7 + 3);
  }
  return QE_VNET_HDRLEN + total;
}

static void test_split(int v4, size_t mss, size_t paylen) {
  static uint8_t frame[70000], scratch[128];
  static sink s;
  size_t iphl = v4 ? 20 : 40, hdr = iphl + 32, flen;
  uint32_t seq = 0xfffff000u; /* wraps during the split */
  size_t want = (paylen + mss - 1) / mss, got_payload = 0;
  int n;
  memset(&s, 0, sizeof(s));
  flen = make_tso(frame, v4, mss, paylen, seq);
  n = qe_tun_split(frame, flen, scratch, collect, &s);
  CHECK(n == (int)want, "v%d mss %zu: %d segments, want %zu", v4 ? 4 : 6, mss,
        n, want);
  for (int i = 0; i < s.n; i++) {
    const uint8_t *p = s.out[i], *t = p + iphl;
    size_t plen = s.len[i] - hdr;
    uint32_t sq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 |
                  (uint32_t)t[6] << 8 | t[7];
    int last = i == s.n - 1;
    CHECK(tcp_ok(p, s.len[i]), "segment %d: checksum", i);
    CHECK(sq == seq + (uint32_t)(i * mss), "segment %d: seq", i);
    CHECK(plen == (last ? paylen - (size_t)i * mss : mss), "segment %d: len",
          i);
    CHECK(((t[13] & 0x08) != 0) == last, "segment %d: PSH only last", i);
    if (v4) {
      CHECK((size_t)(p[2] << 8 | p[3]) == s.len[i], "segment %d: tot_len", i);
      CHECK((p[4] << 8 | p[5]) == 0x1200 + i, "segment %d: IP id", i);
    }
    for (size_t k = 0; k < plen; k++) {
      if (p[hdr + k] != (uint8_t)((got_payload + k) * 7 + 3)) {
        CHECK(0, "segment %d: payload byte %zu", i, k);
        break;
      }
    }
    got_payload += plen;
  }
  CHECK(got_payload == paylen, "payload total %zu of %zu", got_payload,
        paylen);

  /* GRO: the segments coalesce back into one super-packet. */
  {
    int fds[2];
    qe_tun tun = {.fd = -1};
    qe_gro g;
    static uint8_t back[70000];
    ssize_t r;
    if (pipe(fds) != 0 || qe_gro_init(&g) != 0) {
      CHECK(0, "pipe/gro init");
      return;
    }
    fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    tun.fd = fds[1];
    for (int i = 0; i < s.n; i++) {
      qe_gro_add(&g, &tun, s.out[i], s.len[i]);
    }
    qe_gro_flush(&g, &tun);
    CHECK(g.writes == 1, "gro: %lu writes for %d segments",
          (unsigned long)g.writes, s.n);
    r = read(fds[0], back, sizeof(back));
    CHECK(r == (ssize_t)(QE_VNET_HDRLEN + hdr + paylen), "gro: length %zd", r);
    if (s.n > 1) {
      CHECK(back[1] == (v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6),
            "gro: gso type");
      CHECK((back[4] | back[5] << 8) == (int)mss, "gro: gso_size");
    }
    CHECK(r > 0 && memcmp(back + QE_VNET_HDRLEN + hdr, frame + QE_VNET_HDRLEN + hdr,
                          paylen) == 0,
          "gro: payload bytes");
    close(fds[0]);
    close(fds[1]);
    qe_gro_free(&g);
  }
}

/* A segment with a broken checksum is not merged (the kernel will drop it). */
static void test_gro_rejects_bad_checksum(void) {
  static uint8_t frame[70000], scratch[128];
  static sink s;
  int fds[2];
  qe_tun tun;
  qe_gro g;
  size_t flen = make_tso(frame, 1, 1000, 3000, 1);
  memset(&s, 0, sizeof(s));
  qe_tun_split(frame, flen, scratch, collect, &s);
  s.out[1][60] ^= 0x01; /* corrupt the second segment's payload */
  if (pipe(fds) != 0 || qe_gro_init(&g) != 0) {
    CHECK(0, "pipe/gro init");
    return;
  }
  tun.fd = fds[1];
  for (int i = 0; i < s.n; i++) {
    qe_gro_add(&g, &tun, s.out[i], s.len[i]);
  }
  qe_gro_flush(&g, &tun);
  /* Segment 0 alone, segment 1 written raw (outside GRO), segment 2 alone. */
  CHECK(g.writes == 2 && g.segments == 2,
        "bad segment not merged: %lu gro writes, %lu segments",
        (unsigned long)g.writes, (unsigned long)g.segments);
  close(fds[0]);
  close(fds[1]);
  qe_gro_free(&g);
}

int main(void) {
  test_gro_rejects_bad_checksum();
  size_t mss_list[] = {536, 1380, 1388, 1399};
  size_t pay_list[] = {1, 500, 1380, 2761, 20000, 65000};
  for (int v4 = 0; v4 < 2; v4++) {
    for (size_t i = 0; i < sizeof(mss_list) / sizeof(*mss_list); i++) {
      for (size_t j = 0; j < sizeof(pay_list) / sizeof(*pay_list); j++) {
        if (pay_list[j] / mss_list[i] < 60) {
          test_split(v4, mss_list[i], pay_list[j]);
        }
      }
    }
  }
  printf("%u passed, %u failed\n", passed, failed);
  return failed ? 1 : 0;
}
