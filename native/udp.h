/*
 * The UDP socket of an engine: one socket for every connection, client and
 * server role alike. Receives in batches (recvmmsg, UDP GRO: one buffer may
 * hold several datagrams of `segsize` bytes), sends in batches (sendmmsg,
 * UDP GSO: consecutive same-size packets to one peer leave as one message).
 *
 * The batches are per-worker scratch allocated once (qe_udp_rx_init /
 * qe_udp_tx_init); nothing on the packet path allocates. A socket and its
 * batches belong to one thread at a time.
 */
#ifndef QE_UDP_H
#define QE_UDP_H

#include "qe.h"

#include <netinet/in.h>
#include <sys/socket.h>

typedef struct qe_udp {
  int fd;
  int family; /* AF_INET or AF_INET6 (dual-stack when bound to ::) */
  int gso;    /* UDP_SEGMENT works */
  struct sockaddr_storage local;
  socklen_t locallen;
  uint16_t port;
} qe_udp;

typedef struct qe_udp_rx {
  size_t n, bufsize;
  struct mmsghdr *msgs;
  struct iovec *iov;
  struct sockaddr_storage *addrs;
  uint8_t *bufs;
  uint8_t *ctrl;
  /* Results of the last qe_udp_recv, for i < count: */
  size_t count;
  size_t *lens;
  size_t *segsize; /* GRO segment size; 0 or == len for one datagram */
} qe_udp_rx;

typedef struct qe_udp_msg {
  size_t off, len, segsize;
  unsigned nseg;
  int closed; /* a short last segment ended the GSO run */
  struct sockaddr_storage addr;
  socklen_t addrlen;
} qe_udp_msg;

typedef struct qe_udp_tx {
  uint8_t *buf;
  size_t cap, used;
  qe_udp_msg *msgs;
  size_t nmsgs, maxmsgs;
  struct mmsghdr *mm;
  struct iovec *iov;
  uint8_t *ctrl;
  uint64_t dropped; /* packets the kernel refused (EAGAIN, EMSGSIZE ...) */
} qe_udp_tx;

/*
 * Binds to `addr`:`port` (port 0: any), optionally SO_BINDTODEVICE `device`
 * (NULL: none). "::" is dual-stack. Returns 0, QE_ERR_INVALID or QE_ERR_SYS.
 */
int qe_udp_open(qe_udp *u, const char *addr, uint16_t port,
                const char *device);
void qe_udp_close(qe_udp *u);

/* SO_MARK (`mark` 0: leaves the socket unmarked). Returns 0 or QE_ERR_SYS. */
int qe_udp_set_mark(qe_udp *u, uint32_t mark);

/*
 * Parses a numeric address for sending from this socket (IPv4 becomes
 * v4-mapped on a dual-stack socket). Returns 0 or QE_ERR_INVALID.
 */
int qe_udp_addr(const qe_udp *u, const char *addr, uint16_t port,
                struct sockaddr_storage *out, socklen_t *outlen);

int qe_udp_rx_init(qe_udp_rx *rx, size_t n, size_t bufsize);
void qe_udp_rx_free(qe_udp_rx *rx);
/* Fills rx with up to rx->n buffers. Returns the count or QE_ERR_SYS. */
int qe_udp_recv(qe_udp *u, qe_udp_rx *rx);
static inline uint8_t *qe_udp_rx_buf(qe_udp_rx *rx, size_t i) {
  return rx->bufs + i * rx->bufsize;
}

int qe_udp_tx_init(qe_udp_tx *tx, size_t cap, size_t maxmsgs);
void qe_udp_tx_free(qe_udp_tx *tx);
/* Room for one packet of up to `maxlen` bytes, or NULL: flush first. */
uint8_t *qe_udp_tx_reserve(qe_udp_tx *tx, size_t maxlen);
/* Appends the packet written at the reserved place. */
void qe_udp_tx_commit(qe_udp_tx *tx, const qe_udp *u,
                      const struct sockaddr *addr, socklen_t addrlen,
                      size_t len);
/* Sends everything queued; returns 0 or QE_ERR_SYS (packets dropped). */
int qe_udp_flush(qe_udp *u, qe_udp_tx *tx);

int qe_sockaddr_eq(const struct sockaddr *a, const struct sockaddr *b);

#endif /* QE_UDP_H */
