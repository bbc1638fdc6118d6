/*
 * A bonded path's own state: what makes one QUIC connection a path of a
 * bonded peer (its hello: session, index, mode, role, weight, priority),
 * its liveness, its delivery rate and early drop, its counters, and the
 * datagrams it sent that are not yet acknowledged (kept to be sent again on
 * another path if this one dies or loses them). Embedded in qe_conn; owned
 * by bond.c and path.c (qe_path_init when the path comes up, qe_path_free
 * with the connection; the sent slots through qe_path_sent/acked/lost).
 */
#ifndef QE_BOND_H
#define QE_BOND_H

#include "qe.h"
#include "sched.h"

#include <stddef.h>
#include <stdint.h>

/* Sent bonded datagrams kept per path until acknowledged (or lost), to be
 * re-sent on another path if this one dies first. */
#define QE_SENT_SLOTS 2048

typedef struct qe_path {
  /* The hello (the dialler's view; the accepting side copies it). */
  uint64_t session;
  uint8_t index, mode, role;
  uint8_t cost; /* the accepting side's copy of the dialler's uplink cost */
  uint16_t weight, priority;
  int64_t wrr_credit;
  int dead; /* silent past the dead-path time; still probed */
  /* The last datagram sent while it was not loaded. Its first ACK is due a
   * round trip later: silence before then is not a dead path. */
  qe_ts busy_ts;
  /* Suspect (qe_sched_overdue): what it had in flight was sent again on
   * the others at rescue_ts (0: never); it carries nothing new until heard
   * again after that. */
  qe_ts rescue_ts;
  /* Its longest recent silences while loaded (qe_gap_tolerance). */
  qe_gap gap;
  /* Tunnelled traffic on this path; dropped: from its queue (full, or
   * early). */
  uint64_t bytes_out, bytes_in, pkts_out, pkts_in, lost, dropped;
  /*
   * The delivery rate, and the in-flight cap it sets for bulk packets
   * (qe_path_cap): QUIC's own window probes into the bottleneck's buffer
   * until packets are lost, and a lost datagram is a loss for TCP inside.
   */
  qe_rate rate;
  qe_aqm aqm;
  /* Each direction's queue, from the stamps on the control stream's NOPs
   * (shown in the stats; nothing steers by it yet). */
  qe_owd owd;
  /* Sent and not yet acknowledged (not in redundant mode: NULL). */
  size_t slotsize;
  uint8_t *sent_buf;  /* QE_SENT_SLOTS of slotsize bytes */
  uint64_t *sent_id;  /* dgram_id + 1, 0: free */
  uint32_t *sent_len;
  qe_ts *sent_ts;     /* when it was sent */
  uint64_t oldest_id; /* no datagram before this one is unacknowledged */
  /* Sent slots the QUIC stack declared lost, re-sent once it has returned
   * (qe_bond_resend_lost): QE_SENT_SLOTS entries. */
  uint16_t *lost_slots;
  size_t nlost;
  /* Re-sends of lost datagrams put at the head of this path's queue
   * (qe_sched_repair's view of it): bytes as of repair_ts, draining at the
   * path's rate since. */
  uint64_t repair_q;
  qe_ts repair_ts;
} qe_path;

/* Allocates the sent-datagram slots for packets of up to `slotsize` bytes:
 * 0, or QE_ERR_NOMEM with nothing held. */
int qe_path_init(qe_path *p, size_t slotsize);
/* Releases what qe_path_init took; safe on a path never initialised. */
void qe_path_free(qe_path *p);
/* Datagram `id` (ids grow by one per datagram) of `len` bytes was sent at
 * `ts`: the slot to copy it into, or NULL when the path keeps none (not
 * initialised, or too big). Its slot's older datagram is forgotten. */
uint8_t *qe_path_sent(qe_path *p, uint64_t id, size_t len, qe_ts ts);
/* Datagram `id` was acknowledged: its bytes if it was kept (for the rate
 * sample; when it was sent into *sent_ts unless NULL), else 0; its slot is
 * cleared. */
uint32_t qe_path_acked(qe_path *p, uint64_t id, qe_ts *sent_ts);
/* Datagram `id` was declared lost: counted; if kept, the rate hears of it
 * and its slot is listed in lost_slots to be sent again (1), else 0. */
int qe_path_lost(qe_path *p, uint64_t id);

#endif /* QE_BOND_H */
