/*
 * What an IP packet is, read from its first bytes: DSCP, protocol, ports and
 * a flow hash (traffic classes and flow order, bond.c). Pure: no engine
 * state, so native/test/pkt_test.c checks it on generated headers.
 */
#ifndef QE_PKT_H
#define QE_PKT_H

#include <stddef.h>
#include <stdint.h>

/* Enough of a packet to read: IPv4 with options (60) or IPv6 (40), plus
 * the TCP or UDP ports, and TCP's flags (14 bytes into its header). */
#define QE_PKT_HDR_MAX 76
#define QE_TCP_FIN 0x01
#define QE_TCP_SYN 0x02
#define QE_TCP_RST 0x04

typedef struct qe_pkt_info {
  int dscp;         /* the DSCP (6 bits) */
  int proto;        /* IP protocol; -1 for a later IPv4 fragment */
  int sport, dport; /* TCP or UDP ports; -1 when there are none */
  int tcp_flags;    /* TCP's flags byte (FIN SYN RST PSH ACK URG ECE CWR);
                     * -1 when not TCP or not in the bytes read */
  int tcp_data;     /* where TCP's payload starts (IP and TCP headers);
                     * -1 with tcp_flags */
  uint32_t flow;    /* hash of addresses, protocol and ports */
} qe_pkt_info;

/*
 * Reads an IP packet's first `n` bytes (`h`). 0, or -1 when it is neither
 * IPv4 nor IPv6. IPv6 extension headers are not walked (no ports then).
 */
int qe_pkt_parse(const uint8_t *h, size_t n, qe_pkt_info *out);

#endif /* QE_PKT_H */
