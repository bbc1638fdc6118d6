/*
 * The overlay TUN device (IFF_TUN | IFF_NO_PI): created by name, MTU set,
 * link up. Addresses and routes belong to the control plane.
 *
 * With `offload` the device is opened with IFF_VNET_HDR and TSO/checksum
 * offload: each read may return a TCP super-packet up to 64 KiB preceded by
 * a virtio_net_hdr, and writes take the same header (see tun_offload.c).
 * The fd is non-blocking; it is owned by one thread at a time.
 */
#ifndef QE_TUN_H
#define QE_TUN_H

#include "qe.h"

#include <sys/types.h>
#include <net/if.h>

typedef struct qe_tun {
  int fd;
  int ifindex;
  int mtu;
  int vnet_hdr; /* reads and writes carry a struct virtio_net_hdr */
  char name[IFNAMSIZ];
} qe_tun;

/* Returns 0, QE_ERR_INVALID (name) or QE_ERR_SYS (errno set). */
int qe_tun_open(qe_tun *t, const char *name, int mtu, int offload);
/* Closing the fd removes the device. */
void qe_tun_close(qe_tun *t);

/*
 * Reads up to `n` packets into the caller's buffers (each `bufsize` long)
 * and stores their lengths in `sizes`. Returns the count (0 when nothing is
 * pending) or QE_ERR_SYS.
 */
int qe_tun_read(qe_tun *t, uint8_t **bufs, size_t *sizes, size_t n,
                size_t bufsize);
/* Writes one packet; returns 0 or QE_ERR_SYS (the packet is dropped). */
int qe_tun_write(qe_tun *t, const uint8_t *pkt, size_t len);

#endif /* QE_TUN_H */
