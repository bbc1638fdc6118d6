/*
 * "Packet too big" back into the TUN, so the sender's kernel learns the
 * usable MTU (RFC 792 type 3 code 4, RFC 4443 type 2) instead of seeing its
 * packet vanish. The ICMP message claims to come from the packet's
 * destination, like a router on the way would. Rate-limited.
 */
#include "engine_int.h"

#include <string.h>

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += ((uint32_t)p[i] << 8) | p[i + 1];
  }
  if (len & 1) {
    sum += (uint32_t)p[len - 1] << 8;
  }
  return sum;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static size_t too_big4(uint8_t *out, const uint8_t *pkt, size_t len,
                       size_t mtu) {
  size_t ihl = (size_t)(pkt[0] & 0x0f) * 4, quote;
  uint8_t *icmp = out + 20;
  if (ihl < 20 || ihl > len) {
    return 0;
  }
  /* Only the first fragment, and never about an ICMP error. */
  if ((((size_t)pkt[6] & 0x1f) << 8 | pkt[7]) != 0) {
    return 0;
  }
  if (pkt[9] == 1 && len > ihl && pkt[ihl] != 0 && pkt[ihl] != 8) {
    return 0;
  }
  quote = len < 548 ? len : 548;
  memset(out, 0, 28);
  out[0] = 0x45;
  put16(out + 2, (uint16_t)(28 + quote));
  out[8] = 64;
  out[9] = 1;
  memcpy(out + 12, pkt + 16, 4);
  memcpy(out + 16, pkt + 12, 4);
  put16(out + 10, csum_fold(csum_add(0, out, 20)));
  icmp[0] = 3;
  icmp[1] = 4;
  put16(icmp + 6, (uint16_t)(mtu > 0xffff ? 0xffff : mtu));
  memcpy(icmp + 8, pkt, quote);
  put16(icmp + 2, csum_fold(csum_add(0, icmp, 8 + quote)));
  return 28 + quote;
}

static size_t too_big6(uint8_t *out, const uint8_t *pkt, size_t len,
                       size_t mtu) {
  size_t quote = len < 1280 - 48 ? len : 1280 - 48;
  uint8_t *icmp = out + 40;
  uint32_t sum;
  if (pkt[6] == 58 && len > 40 && pkt[40] < 128) {
    return 0;
  }
  memset(out, 0, 48);
  out[0] = 0x60;
  put16(out + 4, (uint16_t)(8 + quote));
  out[6] = 58;
  out[7] = 64;
  memcpy(out + 8, pkt + 24, 16);
  memcpy(out + 24, pkt + 8, 16);
  icmp[0] = 2;
  icmp[4] = (uint8_t)(mtu >> 24);
  icmp[5] = (uint8_t)(mtu >> 16);
  icmp[6] = (uint8_t)(mtu >> 8);
  icmp[7] = (uint8_t)mtu;
  memcpy(icmp + 8, pkt, quote);
  sum = csum_add(0, out + 8, 32);
  sum += (uint32_t)(8 + quote);
  sum += 58;
  sum = csum_add(sum, icmp, 8 + quote);
  put16(icmp + 2, csum_fold(sum));
  return 48 + quote;
}

int qe_icmp_too_big(qe_engine *e, const uint8_t *pkt, size_t len,
                    size_t mtu, qe_ts ts) {
  size_t n;
  double rate = 200, burst = 50;
  e->icmp_tokens += (double)(ts - e->icmp_tokens_ts) / 1e9 * rate;
  e->icmp_tokens_ts = ts;
  if (e->icmp_tokens > burst) {
    e->icmp_tokens = burst;
  }
  if (e->icmp_tokens < 1) {
    return QE_ERR_FULL;
  }
  e->icmp_tokens -= 1;
  if (len >= 20 && pkt[0] >> 4 == 4) {
    n = too_big4(e->scratch, pkt, len, mtu);
  } else if (len >= 40 && pkt[0] >> 4 == 6) {
    n = too_big6(e->scratch, pkt, len, mtu);
  } else {
    return QE_ERR_INVALID;
  }
  if (n == 0) {
    return QE_ERR_INVALID;
  }
  if (qe_engine_tun_write(e, e->scratch, n) != 0) {
    return QE_ERR_SYS;
  }
  e->g.icmp_sent++;
  return 0;
}
