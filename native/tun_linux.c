#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int tun_ifreq(const char *name, unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rv;
  if (s < 0) {
    return -1;
  }
  size_t n = strnlen(name, IFNAMSIZ - 1);
  memcpy(ifr->ifr_name, name, n);
  ifr->ifr_name[n] = '\0';
  rv = ioctl(s, req, ifr);
  if (rv < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  close(s);
  return 0;
}

int qe_tun_open(qe_tun *t, const char *name, int mtu, int offload) {
  struct ifreq ifr = {0};
  size_t len = strlen(name);
  *t = (qe_tun){.fd = -1};
  if (len == 0 || len >= IFNAMSIZ || mtu < 576 || mtu > 65535) {
    return QE_ERR_INVALID;
  }
  t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (t->fd < 0) {
    goto fail;
  }
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, len);
  if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
    goto fail;
  }
  memcpy(t->name, ifr.ifr_name, IFNAMSIZ);
  t->name[IFNAMSIZ - 1] = '\0';
  if (offload) {
    int hdrlen = 12; /* struct virtio_net_hdr_v1 (num_buffers unused) */
    unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdrlen) < 0 ||
        ioctl(t->fd, TUNSETOFFLOAD, off) < 0) {
      goto fail;
    }
    t->vnet_hdr = 1;
  }
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_mtu = mtu;
  if (tun_ifreq(t->name, SIOCSIFMTU, &ifr) < 0) {
    goto fail;
  }
  t->mtu = mtu;
  memset(&ifr, 0, sizeof(ifr));
  if (tun_ifreq(t->name, SIOCGIFFLAGS, &ifr) < 0) {
    goto fail;
  }
  ifr.ifr_flags |= IFF_UP;
  if (tun_ifreq(t->name, SIOCSIFFLAGS, &ifr) < 0) {
    goto fail;
  }
  memset(&ifr, 0, sizeof(ifr));
  if (tun_ifreq(t->name, SIOCGIFINDEX, &ifr) < 0) {
    goto fail;
  }
  t->ifindex = ifr.ifr_ifindex;
  return 0;
fail: {
  int e = errno;
  if (t->fd >= 0) {
    close(t->fd);
  }
  t->fd = -1;
  errno = e;
  return QE_ERR_SYS;
}
}

void qe_tun_close(qe_tun *t) {
  if (t->fd >= 0) {
    close(t->fd);
  }
  t->fd = -1;
}

int qe_tun_read(qe_tun *t, uint8_t **bufs, size_t *sizes, size_t n,
                size_t bufsize) {
  size_t i;
  for (i = 0; i < n; i++) {
    ssize_t r = read(t->fd, bufs[i], bufsize);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        break;
      }
      return i > 0 ? (int)i : QE_ERR_SYS;
    }
    sizes[i] = (size_t)r;
  }
  return (int)i;
}

int qe_tun_write(qe_tun *t, const uint8_t *pkt, size_t len) {
  for (;;) {
    ssize_t r = write(t->fd, pkt, len);
    if (r >= 0) {
      return 0;
    }
    if (errno != EINTR) {
      return QE_ERR_SYS;
    }
  }
}
