/*
 * The control stream of a connection: one bidirectional stream opened by
 * the client, length-prefixed messages each way after a 4-byte magic
 * ("QEC1", or a bonded path's "QEM2" hello; framing in ctrl_frame.h), and
 * the NOPs that keep ngtcp2's loss timer armed after datagrams. Sent data
 * waits in chunks until acknowledged; received data is parsed into whole
 * messages and handed to JS while its backlog allows (flow control holds
 * the peer back otherwise). Worker thread only.
 */
#include "ctrl_frame.h"
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

static void ctl_parse(qe_conn *c);
static void ctl_stamp(qe_conn *c, const uint8_t *p, size_t n);
static void ctl_link(qe_conn *c, qe_chunk *ch);

/* ---- ngtcp2 stream callbacks ---- */

int qe_ctl_on_extend_bidi(ngtcp2_conn *conn, uint64_t max_streams,
                          void *user_data) {
  qe_conn *c = user_data;
  (void)max_streams;
  if (!c->server && c->ctl_stream < 0) {
    int64_t sid;
    if (ngtcp2_conn_open_bidi_stream(conn, &sid, NULL) == 0) {
      c->ctl_stream = sid;
    }
  }
  return 0;
}

static int adopt_stream(qe_conn *c, int64_t stream_id) {
  if (c->ctl_stream < 0 && c->server && (stream_id & 0x3) == 0) {
    c->ctl_stream = stream_id;
  }
  return stream_id == c->ctl_stream;
}

int qe_ctl_on_stream_open(ngtcp2_conn *conn, int64_t stream_id,
                          void *user_data) {
  (void)conn;
  adopt_stream(user_data, stream_id);
  return 0;
}

int qe_ctl_on_recv(ngtcp2_conn *conn, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  qe_conn *c = user_data;
  (void)conn, (void)flags, (void)offset, (void)stream_user_data;
  if (!adopt_stream(c, stream_id) || datalen == 0) {
    return 0;
  }
  if (c->ctl_rlen + datalen > c->ctl_rcap) {
    size_t need = c->ctl_rlen + datalen, cap = c->ctl_rcap ? c->ctl_rcap : 4096;
    uint8_t *p;
    while (cap < need) {
      cap *= 2;
    }
    if (cap > QE_CTL_WINDOW) {
      cap = QE_CTL_WINDOW;
    }
    if (need > cap) {
      return NGTCP2_ERR_CALLBACK_FAILURE; /* flow control was ignored */
    }
    p = realloc(c->ctl_rbuf, cap);
    if (p == NULL) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    c->ctl_rbuf = p;
    c->ctl_rcap = cap;
  }
  memcpy(c->ctl_rbuf + c->ctl_rlen, data, datalen);
  c->ctl_rlen += datalen;
  if (c->announced) {
    ctl_parse(c);
    if (c->ctl_rlen == SIZE_MAX) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  }
  return 0;
}

int qe_ctl_on_acked(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t offset, uint64_t datalen, void *user_data,
                           void *stream_user_data) {
  qe_conn *c = user_data;
  uint64_t end = offset + datalen;
  (void)conn, (void)stream_id, (void)stream_user_data;
  while (c->ctl_head && c->ctl_head->offset + c->ctl_head->len <= end &&
         c->ctl_head != c->ctl_cur) {
    qe_chunk *ch = c->ctl_head;
    c->ctl_head = ch->next;
    if (c->ctl_tail == ch) {
      c->ctl_tail = NULL;
    }
    if (ch->pooled) {
      c->nop_free[c->nop_nfree++] = ch;
    } else {
      free(ch);
    }
  }
  return 0;
}

/* The control stream is the connection's lifeline: if the peer resets it
 * or stops reading it, the connection is closed (after read_pkt returns). */
int qe_ctl_on_reset(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  qe_conn *c = user_data;
  (void)conn, (void)final_size, (void)app_error_code, (void)stream_user_data;
  if (stream_id == c->ctl_stream) {
    c->ctl_broken = 1;
  }
  return 0;
}

int qe_ctl_on_stop_sending(ngtcp2_conn *conn, int64_t stream_id,
                                  uint64_t app_error_code, void *user_data,
                                  void *stream_user_data) {
  return qe_ctl_on_reset(conn, stream_id, 0, app_error_code, user_data,
                         stream_user_data);
}

/* ---- sending ---- */

int qe_ctl_enqueue(qe_conn *c, const uint8_t *hdr, size_t hdrlen,
                       const uint8_t *data, size_t len) {
  qe_chunk *ch = malloc(sizeof(*ch) + hdrlen + len);
  if (ch == NULL) {
    return QE_ERR_NOMEM;
  }
  ch->pooled = ch->stamped = 0;
  ch->len = hdrlen + len;
  memcpy(ch->data, hdr, hdrlen);
  if (len) {
    memcpy(ch->data + hdrlen, data, len);
  }
  ctl_link(c, ch);
  return 0;
}

void qe_conn_nop_after_datagrams(qe_conn *c) {
  qe_chunk *ch;
  if (!(c->dgram_since_nop || c->echo_wanted) || c->ctl_stream < 0 ||
      c->nop_nfree == 0) {
    return; /* with every NOP in flight, the timer is armed already */
  }
  ch = c->nop_free[--c->nop_nfree];
  ch->stamped = c->is_path;
  if (ch->stamped) {
    /* padding with a stamp: what we echo now; its clock is set as it
     * leaves (qe_conn_write) */
    ch->len = QE_CTL_HDR + QE_STAMP_LEN;
    qe_ctl_frame_hdr(ch->data, QE_STAMP_LEN, 1);
    qe_stamp_put(ch->data + QE_CTL_HDR,
                 c->dgram_since_nop ? QE_STAMP_KIND : QE_STAMP_ECHO_KIND, 0,
                 qe_owd_echo(&c->path.owd, c->eng->now));
  } else {
    ch->len = QE_CTL_HDR;
    qe_ctl_frame_hdr(ch->data, 0, 1); /* padding, 0 bytes */
  }
  ctl_link(c, ch);
  c->dgram_since_nop = c->echo_wanted = 0;
}

static void ctl_link(qe_conn *c, qe_chunk *ch) {
  ch->next = NULL;
  ch->offset = c->ctl_next_off;
  ch->sent = 0;
  c->ctl_next_off += ch->len;
  if (c->ctl_tail) {
    c->ctl_tail->next = ch;
  } else {
    c->ctl_head = ch;
  }
  c->ctl_tail = ch;
  if (c->ctl_cur == NULL) {
    c->ctl_cur = ch;
  }
  c->dirty = 1;
}

int qe_conn_queue_control(qe_conn *c, const uint8_t *data, size_t len) {
  uint8_t hdr[QE_CTL_HDR];
  if (len > QE_CTL_MAX_MSG) {
    return QE_ERR_INVALID;
  }
  qe_ctl_frame_hdr(hdr, len, 0);
  return qe_ctl_enqueue(c, hdr, QE_CTL_HDR, data, len);
}

int qe_ctl_init(qe_conn *c) {
  c->nop_block = malloc(QE_NOP_POOL * QE_NOP_SIZE);
  if (c->nop_block == NULL) {
    return QE_ERR_NOMEM;
  }
  for (size_t i = 0; i < QE_NOP_POOL; i++) {
    qe_chunk *ch = (qe_chunk *)(void *)(c->nop_block + i * QE_NOP_SIZE);
    ch->pooled = 1;
    c->nop_free[i] = ch;
  }
  c->nop_nfree = QE_NOP_POOL;
  return 0;
}

void qe_ctl_free(qe_conn *c) {
  while (c->ctl_head) {
    qe_chunk *ch = c->ctl_head;
    c->ctl_head = ch->next;
    if (!ch->pooled) {
      free(ch);
    }
  }
  free(c->nop_block);
  free(c->ctl_rbuf);
  c->nop_block = NULL;
  c->ctl_rbuf = NULL;
}

/* ---- receiving ---- */

void qe_conn_ctl_resume(qe_conn *c, qe_ts ts) {
  ctl_parse(c);
  if (c->ctl_rlen == SIZE_MAX) {
    qe_conn_close(c, "error", QE_APP_PROTOCOL, ts);
  }
}

/*
 * A bonded path's NOP from the peer (padding, ctrl_frame.h): its stamp goes
 * into this direction's one-way delay, its echo is the queue of ours. A
 * receiver that sends nothing else sends a NOP half a window after its last
 * echo when a stamp came, only to echo it: the sender keeps the lowest echo
 * of its last two windows (qe_owd_forward).
 */
static void ctl_stamp(qe_conn *c, const uint8_t *p, size_t n) {
  uint64_t ts, win;
  uint32_t echo;
  ngtcp2_conn_stat cs;
  int kind = qe_stamp_get(p, n, &ts, &echo);
  if (!kind) {
    return;
  }
  ngtcp2_conn_get_conn_stat(c->conn, &cs);
  win = qe_rate_window(cs.min_rtt);
  qe_rate_back_seen(&c->path.rate,
                    qe_owd_stamp(&c->path.owd, ts, c->eng->now));
  qe_owd_echoed(&c->path.owd, echo, c->eng->now, win);
  if (echo != QE_OWD_NONE) {
    qe_rate_fwd_seen(&c->path.rate, (uint64_t)echo * 1000);
  }
  if (kind == QE_STAMP_KIND &&
      qe_owd_echo_due(&c->path.owd, c->eng->now, win / 2)) {
    c->echo_wanted = 1; /* flush_all queues the NOP */
  }
}

/*
 * Delivers whole control messages; on a framing error sets rlen = SIZE_MAX.
 * Stops while JS has too much undelivered: the bytes stay here, the stream
 * window is not extended, and the peer is held back by flow control.
 */
static void ctl_parse(qe_conn *c) {
  size_t pos = 0, consumed;
  if (!c->ctl_magic_rcvd) {
    if (c->ctl_rlen < 4) {
      return;
    }
    if (memcmp(c->ctl_rbuf, QE_CTL_MAGIC, 4) == 0 ||
        memcmp(c->ctl_rbuf, QE_RELAY_MAGIC, 4) == 0) {
      pos = 4;
    } else if (memcmp(c->ctl_rbuf, QE_PATH_MAGIC, 4) == 0) {
      if (c->ctl_rlen < QE_HELLO_LEN) {
        return;
      }
      pos = QE_HELLO_LEN;
    } else {
      c->ctl_rlen = SIZE_MAX;
      return;
    }
    c->ctl_magic_rcvd = 1;
  }
  for (;;) {
    size_t n;
    uint8_t *msg;
    qe_ctl_frame_kind k = qe_ctl_frame(c->ctl_rbuf + pos, c->ctl_rlen - pos,
                                       QE_CTL_MAX_MSG, &n);
    if (k == QE_CTL_FRAME_BAD) {
      c->ctl_rlen = SIZE_MAX;
      return;
    }
    if (k == QE_CTL_FRAME_MORE ||
        (k == QE_CTL_FRAME_MSG &&
         atomic_load(&c->eng->ctl_backlog) > QE_CTL_BACKLOG_MAX)) {
      break;
    }
    if (k == QE_CTL_FRAME_MSG) {
      msg = malloc(n ? n : 1);
      if (msg != NULL) {
        memcpy(msg, c->ctl_rbuf + pos + QE_CTL_HDR, n);
        c->eng->up->control(c, msg, n);
      }
    } else if (c->is_path) {
      ctl_stamp(c, c->ctl_rbuf + pos + QE_CTL_HDR, n);
    }
    pos += QE_CTL_HDR + n; /* padding (a NOP) is skipped */
  }
  consumed = pos;
  if (consumed) {
    memmove(c->ctl_rbuf, c->ctl_rbuf + consumed, c->ctl_rlen - consumed);
    c->ctl_rlen -= consumed;
    ngtcp2_conn_extend_max_stream_offset(c->conn, c->ctl_stream, consumed);
    ngtcp2_conn_extend_max_offset(c->conn, consumed);
    c->dirty = 1;
  }
}
