/*
 * TUN offloads (IFF_VNET_HDR): what lets a userspace tunnel move a TCP
 * stream in 64 KiB pieces instead of 1.4 KiB ones.
 *
 * Read side: the kernel hands us TCP super-packets (TSO) with a partial
 * checksum; qe_tun_split cuts them into MSS-sized IP packets, each emitted
 * as (header, payload) so the payload is never copied here.
 * Write side: qe_gro coalesces consecutive in-order segments of one TCP flow
 * back into one super-packet and writes it with one syscall; the kernel's
 * TCP takes it as if a NIC had done GRO.
 */
#ifndef QE_TUN_OFFLOAD_H
#define QE_TUN_OFFLOAD_H

#include "qe.h"
#include "tun.h"

#define QE_VNET_HDRLEN 12

/* Emits one wire-ready IP packet: `hdr` (IP + TCP headers, or the whole
 * packet with paylen 0), valid only during the call. */
typedef void (*qe_emit_fn)(void *ctx, const uint8_t *hdr, size_t hdrlen,
                           const uint8_t *payload, size_t paylen);

/*
 * Splits one frame read from an offloading TUN (vnet header + packet).
 * `scratch` holds at least 128 bytes (one rebuilt header at a time).
 * Returns the number of packets emitted or QE_ERR_INVALID (dropped).
 */
int qe_tun_split(uint8_t *frame, size_t len, uint8_t *scratch, qe_emit_fn emit,
                 void *ctx);

/* Internet checksum helpers (RFC 1071), native-order accumulation. */
uint64_t qe_csum_add(uint64_t sum, const uint8_t *p, size_t len);
uint16_t qe_csum_fold(uint64_t sum);

typedef struct qe_gro {
  uint8_t *buf; /* vnet header + packet, QE_GRO_MAX bytes */
  size_t len;   /* bytes of packet after the vnet header; 0 = empty */
  size_t iphl, thl, mss;
  unsigned nseg;
  int family, closed;
  uint32_t next_seq;
  uint64_t writes, segments; /* stats: syscalls and packets written */
} qe_gro;

#define QE_GRO_MAX (65535 + QE_VNET_HDRLEN)

int qe_gro_init(qe_gro *g);
void qe_gro_free(qe_gro *g);
/* Adds one IP packet; writes out whatever it cannot merge. 0 or QE_ERR_SYS. */
int qe_gro_add(qe_gro *g, qe_tun *tun, const uint8_t *pkt, size_t len);
/* Writes the pending super-packet, if any. 0 or QE_ERR_SYS. */
int qe_gro_flush(qe_gro *g, qe_tun *tun);
/* Writes one packet as is (checksum already valid). 0 or QE_ERR_SYS. */
int qe_tun_write_vnet(qe_tun *tun, const uint8_t *pkt, size_t len);

#endif /* QE_TUN_OFFLOAD_H */
