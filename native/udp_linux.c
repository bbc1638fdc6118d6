#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define QE_UDP_SOCKBUF (8 * 1024 * 1024)
#define QE_UDP_CTRL CMSG_SPACE(sizeof(int))
#define QE_GSO_MAX_SEGS 64
#define QE_GSO_MAX_BYTES 65000

static void sockbuf(int fd, int force, int plain, int size) {
  if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof(size)) < 0) {
    setsockopt(fd, SOL_SOCKET, plain, &size, sizeof(size));
  }
}

int qe_udp_open(qe_udp *u, const char *addr, uint16_t port,
                const char *device) {
  struct sockaddr_storage ss = {0};
  socklen_t sslen;
  int one = 1, zero = 0;
  *u = (qe_udp){.fd = -1};
  {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(port);
      sslen = sizeof(*s6);
    } else if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
      s4->sin_family = AF_INET;
      s4->sin_port = htons(port);
      sslen = sizeof(*s4);
    } else {
      return QE_ERR_INVALID;
    }
  }
  u->family = ss.ss_family;
  u->fd = socket(u->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u->fd < 0) {
    goto fail;
  }
  if (u->family == AF_INET6) {
    int pmtu = IPV6_PMTUDISC_DO;
    setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    setsockopt(u->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
  }
  {
    /* Also for v4-mapped traffic on a dual-stack socket: never fragment. */
    int pmtu = IP_PMTUDISC_DO;
    setsockopt(u->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
  }
  sockbuf(u->fd, SO_RCVBUFFORCE, SO_RCVBUF, QE_UDP_SOCKBUF);
  sockbuf(u->fd, SO_SNDBUFFORCE, SO_SNDBUF, QE_UDP_SOCKBUF);
  if (device != NULL && device[0] != '\0') {
    if (setsockopt(u->fd, SOL_SOCKET, SO_BINDTODEVICE, device,
                   (socklen_t)strlen(device)) < 0) {
      goto fail;
    }
  }
  if (bind(u->fd, (struct sockaddr *)&ss, sslen) < 0) {
    goto fail;
  }
  u->locallen = sizeof(u->local);
  if (getsockname(u->fd, (struct sockaddr *)&u->local, &u->locallen) < 0) {
    goto fail;
  }
  u->port = ntohs(u->family == AF_INET6
                      ? ((struct sockaddr_in6 *)&u->local)->sin6_port
                      : ((struct sockaddr_in *)&u->local)->sin_port);
  /* GRO lets the kernel hand us a GSO burst whole; optional. */
  setsockopt(u->fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
  u->gso = 1;
  return 0;
fail: {
  int e = errno;
  if (u->fd >= 0) {
    close(u->fd);
  }
  u->fd = -1;
  errno = e;
  return QE_ERR_SYS;
}
}

int qe_udp_set_mark(qe_udp *u, uint32_t mark) {
  if (mark == 0) {
    return 0;
  }
  return setsockopt(u->fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0
             ? 0
             : QE_ERR_SYS;
}

void qe_udp_close(qe_udp *u) {
  if (u->fd >= 0) {
    close(u->fd);
  }
  u->fd = -1;
}

int qe_udp_addr(const qe_udp *u, const char *addr, uint16_t port,
                struct sockaddr_storage *out, socklen_t *outlen) {
  struct in6_addr a6;
  struct in_addr a4;
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET6, addr, &a6) == 1) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (u->family != AF_INET6) {
      return QE_ERR_INVALID;
    }
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = a6;
    s6->sin6_port = htons(port);
    *outlen = sizeof(*s6);
    return 0;
  }
  if (inet_pton(AF_INET, addr, &a4) == 1) {
    if (u->family == AF_INET6) {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
      s6->sin6_family = AF_INET6;
      s6->sin6_addr.s6_addr[10] = 0xff;
      s6->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&s6->sin6_addr.s6_addr[12], &a4, 4);
      s6->sin6_port = htons(port);
      *outlen = sizeof(*s6);
    } else {
      struct sockaddr_in *s4 = (struct sockaddr_in *)out;
      s4->sin_family = AF_INET;
      s4->sin_addr = a4;
      s4->sin_port = htons(port);
      *outlen = sizeof(*s4);
    }
    return 0;
  }
  return QE_ERR_INVALID;
}

int qe_sockaddr_eq(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) {
    return 0;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  return 0;
}

int qe_udp_rx_init(qe_udp_rx *rx, size_t n, size_t bufsize) {
  *rx = (qe_udp_rx){.n = n, .bufsize = bufsize};
  rx->msgs = calloc(n, sizeof(*rx->msgs));
  rx->iov = calloc(n, sizeof(*rx->iov));
  rx->addrs = calloc(n, sizeof(*rx->addrs));
  rx->bufs = malloc(n * bufsize);
  rx->ctrl = calloc(n, QE_UDP_CTRL);
  rx->lens = calloc(n, sizeof(size_t));
  rx->segsize = calloc(n, sizeof(size_t));
  if (!rx->msgs || !rx->iov || !rx->addrs || !rx->bufs || !rx->ctrl ||
      !rx->lens || !rx->segsize) {
    qe_udp_rx_free(rx);
    return QE_ERR_NOMEM;
  }
  return 0;
}

void qe_udp_rx_free(qe_udp_rx *rx) {
  free(rx->msgs);
  free(rx->iov);
  free(rx->addrs);
  free(rx->bufs);
  free(rx->ctrl);
  free(rx->lens);
  free(rx->segsize);
  *rx = (qe_udp_rx){0};
}

int qe_udp_recv(qe_udp *u, qe_udp_rx *rx) {
  int r;
  for (size_t i = 0; i < rx->n; i++) {
    rx->iov[i] = (struct iovec){.iov_base = qe_udp_rx_buf(rx, i),
                                .iov_len = rx->bufsize};
    rx->msgs[i].msg_hdr = (struct msghdr){
        .msg_name = &rx->addrs[i],
        .msg_namelen = sizeof(rx->addrs[i]),
        .msg_iov = &rx->iov[i],
        .msg_iovlen = 1,
        .msg_control = rx->ctrl + i * QE_UDP_CTRL,
        .msg_controllen = QE_UDP_CTRL,
    };
  }
  rx->count = 0;
  do {
    r = recvmmsg(u->fd, rx->msgs, (unsigned)rx->n, MSG_DONTWAIT, NULL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : QE_ERR_SYS;
  }
  for (int i = 0; i < r; i++) {
    struct msghdr *mh = &rx->msgs[i].msg_hdr;
    rx->lens[i] = rx->msgs[i].msg_len;
    rx->segsize[i] = 0;
    if (mh->msg_flags & MSG_TRUNC) {
      rx->lens[i] = 0; /* never parse a truncated buffer */
      continue;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
      if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
        int seg;
        memcpy(&seg, CMSG_DATA(c), sizeof(seg));
        rx->segsize[i] = seg > 0 ? (size_t)seg : 0;
      }
    }
  }
  rx->count = (size_t)r;
  return r;
}

int qe_udp_tx_init(qe_udp_tx *tx, size_t cap, size_t maxmsgs) {
  *tx = (qe_udp_tx){.cap = cap, .maxmsgs = maxmsgs};
  tx->buf = malloc(cap);
  tx->msgs = calloc(maxmsgs, sizeof(*tx->msgs));
  tx->mm = calloc(maxmsgs, sizeof(*tx->mm));
  tx->iov = calloc(maxmsgs, sizeof(*tx->iov));
  tx->ctrl = calloc(maxmsgs, CMSG_SPACE(sizeof(uint16_t)));
  if (!tx->buf || !tx->msgs || !tx->mm || !tx->iov || !tx->ctrl) {
    qe_udp_tx_free(tx);
    return QE_ERR_NOMEM;
  }
  return 0;
}

void qe_udp_tx_free(qe_udp_tx *tx) {
  free(tx->buf);
  free(tx->msgs);
  free(tx->mm);
  free(tx->iov);
  free(tx->ctrl);
  *tx = (qe_udp_tx){0};
}

uint8_t *qe_udp_tx_reserve(qe_udp_tx *tx, size_t maxlen) {
  if (tx->used + maxlen > tx->cap || tx->nmsgs >= tx->maxmsgs) {
    return NULL;
  }
  return tx->buf + tx->used;
}

void qe_udp_tx_commit(qe_udp_tx *tx, const qe_udp *u,
                      const struct sockaddr *addr, socklen_t addrlen,
                      size_t len) {
  qe_udp_msg *last = tx->nmsgs ? &tx->msgs[tx->nmsgs - 1] : NULL;
  if (len == 0) {
    return;
  }
  if (u->gso && last && !last->closed && len <= last->segsize &&
      last->nseg < QE_GSO_MAX_SEGS && last->len + len <= QE_GSO_MAX_BYTES &&
      last->off + last->len == tx->used &&
      qe_sockaddr_eq((const struct sockaddr *)&last->addr, addr)) {
    last->len += len;
    last->nseg++;
    if (len < last->segsize) {
      last->closed = 1;
    }
    tx->used += len;
    return;
  }
  qe_udp_msg *m = &tx->msgs[tx->nmsgs++];
  m->off = tx->used;
  m->len = len;
  m->segsize = len;
  m->nseg = 1;
  m->closed = 0;
  memcpy(&m->addr, addr, addrlen);
  m->addrlen = addrlen;
  tx->used += len;
}

int qe_udp_flush(qe_udp *u, qe_udp_tx *tx) {
  size_t done = 0;
  int rv = 0;
  const size_t cs = CMSG_SPACE(sizeof(uint16_t));
  for (size_t i = 0; i < tx->nmsgs; i++) {
    qe_udp_msg *m = &tx->msgs[i];
    struct msghdr *mh = &tx->mm[i].msg_hdr;
    tx->iov[i] = (struct iovec){.iov_base = tx->buf + m->off,
                                .iov_len = m->len};
    *mh = (struct msghdr){.msg_name = &m->addr,
                          .msg_namelen = m->addrlen,
                          .msg_iov = &tx->iov[i],
                          .msg_iovlen = 1};
    if (m->nseg > 1) {
      uint16_t seg = (uint16_t)m->segsize;
      struct cmsghdr *c;
      mh->msg_control = tx->ctrl + i * cs;
      mh->msg_controllen = cs;
      c = CMSG_FIRSTHDR(mh);
      c->cmsg_level = IPPROTO_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(seg));
      memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    }
  }
  while (done < tx->nmsgs) {
    int r = sendmmsg(u->fd, tx->mm + done, (unsigned)(tx->nmsgs - done), 0);
    if (r < 0) {
      qe_udp_msg *m = &tx->msgs[done];
      if (errno == EINTR) {
        continue;
      }
      if ((errno == EIO || errno == EINVAL) && m->nseg > 1) {
        u->gso = 0; /* the kernel or device cannot segment: stop asking */
      }
      tx->dropped += m->nseg;
      rv = QE_ERR_SYS;
      done++;
      continue;
    }
    done += (size_t)r;
  }
  tx->nmsgs = 0;
  tx->used = 0;
  return rv;
}
