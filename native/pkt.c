/* Packet parsing for traffic classes and flow order (see pkt.h). */
#include "pkt.h"

/* FNV-1a: the flow hash needs spread, not strength (the slots are ours). */
static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h = (h ^ p[i]) * 16777619u;
  }
  return h;
}

int qe_pkt_parse(const uint8_t *h, size_t n, qe_pkt_info *out) {
  size_t l4, addr, alen;
  out->sport = out->dport = out->tcp_flags = out->tcp_data = -1;
  if (n >= 20 && h[0] >> 4 == 4) {
    out->dscp = h[1] >> 2;
    out->proto = ((h[6] & 0x1f) | h[7]) != 0 ? -1 : h[9];
    l4 = (size_t)(h[0] & 15) * 4;
    addr = 12;
    alen = 8;
  } else if (n >= 40 && h[0] >> 4 == 6) {
    out->dscp = (((h[0] & 15) << 4) | (h[1] >> 4)) >> 2;
    out->proto = h[6];
    l4 = 40;
    addr = 8;
    alen = 32;
  } else {
    return -1;
  }
  if ((out->proto == 6 || out->proto == 17) && l4 + 4 <= n) {
    out->sport = h[l4] << 8 | h[l4 + 1];
    out->dport = h[l4 + 2] << 8 | h[l4 + 3];
    if (out->proto == 6 && l4 + 14 <= n) {
      out->tcp_flags = h[l4 + 13];
      out->tcp_data = (int)(l4 + (size_t)(h[l4 + 12] >> 4) * 4);
    }
  }
  uint8_t proto = (uint8_t)out->proto;
  out->flow = fnv(2166136261u, h + addr, alen);
  out->flow = fnv(out->flow, &proto, 1);
  if (out->sport >= 0) {
    out->flow = fnv(out->flow, h + l4, 4);
  }
  return 0;
}
