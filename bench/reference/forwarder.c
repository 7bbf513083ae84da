/*
 * A minimal 6in4 forwarder in C, the yardstick for the macro benchmark: TUN <-> raw IPv4
 * socket (protocol 41, kernel-built outer header, DF clear), no policy beyond the outer source
 * check. Builds of this one file:
 *   -DBATCH=1   one packet per syscall (read/sendto, recv/write), poll() between packets
 *   -DBATCH=64  TUN drain + sendmmsg, recvmmsg + write loop, poll() only when both ran dry
 *   -DBATCH=64 -DTHREADS  the same, one thread per direction, each polling its own fd
 *               (the probe for "a worker per direction": does a second thread help on 2 cores?)
 *   -DBATCH=64 -DURING    the same batches through one io_uring (liburing): up to 64 TUN reads in
 *               one submission, sends as SENDMSG entries, TUN writes as WRITE entries
 *   -DBATCH=64 -DOFFLOAD  TUN offload as our engine does it by default: TSO (and, where the
 *               kernel has it, USO) super-packets cut into segments here, received TCP segments
 *               or UDP datagrams of a flow (checksums verified) merged into one GSO write into
 *               the TUN; the strongest C yardstick
 *   -DFOU       (with -DBATCH=64, alone or with -DOFFLOAD) Foo-over-UDP instead of protocol 41:
 *               a UDP socket on port 5555 both ends, the IPv6 packet as the payload (Linux fou
 *               ipproto 41, UDP checksums on); with OFFLOAD the segments of one super-packet
 *               leave as one UDP_SEGMENT send (UDP GSO). No UDP GRO on receive.
 * usage: forwarder <tun-name> <local-ipv4> <remote-ipv4>   (the harness configures the interface)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#ifdef URING
#include <liburing.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef FOU
#include <netinet/udp.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define FOU_PORT 5555
#define HEADROOM 64 /* room before a received payload for an empty virtio header */
static struct sockaddr_in from[BATCH];
#else
#define HEADROOM 0
#endif

#ifndef BATCH
#define BATCH 64
#endif
#define SLOT 65536

static unsigned char tx[BATCH][SLOT], rx[BATCH][SLOT];
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

static int tun, raw;
static struct sockaddr_in local = {.sin_family = AF_INET}, remote = {.sin_family = AF_INET};
static struct mmsghdr out[BATCH], in[BATCH];
static struct iovec oiov[BATCH], iiov[BATCH];

/* The inner IPv6 packet of received message i, or NULL when it is not from the remote. */
static unsigned char *inner_of(int i, size_t *len) {
#ifdef FOU
  if (from[i].sin_addr.s_addr != remote.sin_addr.s_addr) return NULL;
  *len = in[i].msg_len;
  return rx[i] + HEADROOM;
#else
  unsigned char *p = rx[i];
  if (memcmp(p + 12, &remote.sin_addr, 4) != 0) return NULL;
  int ihl = (p[0] & 15) * 4;
  *len = in[i].msg_len - ihl;
  return p + ihl;
#endif
}

#ifdef URING
static struct io_uring ring;

/* Submits what is queued and reaps `want` completions into res[user_data]. */
static void ring_run(int want, int *res) {
  io_uring_submit_and_wait(&ring, want);
  struct io_uring_cqe *cqe;
  for (int got = 0; got < want; got++) {
    if (io_uring_wait_cqe(&ring, &cqe) < 0) break;
    res[cqe->user_data] = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
  }
}

static int tx_step(void) {
  int res[BATCH];
  for (int i = 0; i < BATCH; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, tun, tx[i], SLOT, (__u64)-1);
    sqe->rw_flags = RWF_NOWAIT;  /* an empty queue answers EAGAIN instead of parking the read */
    sqe->user_data = (__u64)i;
  }
  ring_run(BATCH, res);  /* the TUN is non-blocking: slots past the queue's end fail with EAGAIN */
  int n = 0;
  for (int i = 0; i < BATCH; i++) {
    if (res[i] <= 0) continue;
    oiov[n].iov_base = tx[i]; oiov[n].iov_len = (size_t)res[i];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_sendmsg(sqe, raw, &out[n].msg_hdr, 0);
    sqe->user_data = (__u64)n;
    n++;
  }
  if (n > 0) ring_run(n, res);
  return n > 0;
}

static int rx_step(void) {
  int res[BATCH];
  int m = recvmmsg(raw, in, BATCH, MSG_DONTWAIT, NULL), k = 0;
  for (int i = 0; i < m; i++) {
    size_t len;
    unsigned char *p = inner_of(i, &len);
    if (!p) continue;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_write(sqe, tun, p, len, (__u64)-1);
    sqe->user_data = (__u64)k++;
  }
  if (k > 0) ring_run(k, res);
  return m > 0;
}
#elif defined(OFFLOAD)
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* linux/virtio_net.h from 6.2 */
#endif
#define VH ((int)sizeof(struct virtio_net_hdr))
#define MAXSEG 1024
static unsigned char seg[MAXSEG][2048], merged[BATCH][SLOT + 64];
static struct mmsghdr sout[MAXSEG];
static struct iovec siov[MAXSEG];

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sum16 reads words in little-endian order"
#endif
/* The Internet checksum's sum of big-endian 16-bit words plus s, folded. It adds 32-bit words
 * in host order into 64 bits and swaps once at the end (RFC 1071 §2(B)): 11 GB/s on the bench
 * machine against 5.3 for a loop over byte pairs, so that the C references are not held back
 * by their checksums now that the engine sums in WebAssembly SIMD. */
static uint32_t sum16(const unsigned char *p, size_t n, uint32_t s) {
  uint64_t acc = 0;
  for (; n >= 4; p += 4, n -= 4) { uint32_t w; memcpy(&w, p, 4); acc += w; }
  if (n >= 2) { uint16_t h; memcpy(&h, p, 2); acc += h; p += 2; n -= 2; }
  if (n) acc += p[0]; /* a lone last byte is the high byte of its big-endian word */
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint64_t be = ((acc & 0xff) << 8 | acc >> 8) + s;
  while (be >> 16) be = (be & 0xffff) + (be >> 16);
  return (uint32_t)be;
}
static void wr16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, v >> 16); wr16(p + 2, v & 0xffff); }
static uint32_t pseudo(const unsigned char *ip6, unsigned tcplen) { return sum16(ip6 + 8, 32, tcplen + 6); }
static uint32_t pseudo_udp(const unsigned char *ip6, unsigned udplen) { return sum16(ip6 + 8, 32, udplen + 17); }

static int nseg, nmsg;
static void queue(unsigned char *p, size_t len) {
  if (nseg == MAXSEG) return;
  siov[nseg].iov_base = p; siov[nseg].iov_len = len;
  memset(&sout[nmsg].msg_hdr, 0, sizeof sout[nmsg].msg_hdr);
  sout[nmsg].msg_hdr.msg_name = &remote; sout[nmsg].msg_hdr.msg_namelen = sizeof remote;
  sout[nmsg].msg_hdr.msg_iov = &siov[nseg]; sout[nmsg].msg_hdr.msg_iovlen = 1;
  nseg++; nmsg++;
}
#ifdef FOU
static char gsoctl[MAXSEG][CMSG_SPACE(sizeof(uint16_t))];
/* The last `count` queued messages (one segment each, each `size` bytes but the last) become UDP
 * GSO sends: as many segments per send as one UDP datagram (65507 bytes) and the kernel (64) take. */
static void gso_merge(int count, unsigned size) {
  int per = 65507 / (int)size;
  if (per > 64) per = 64;
  int first = nmsg - count, out = first;
  for (int i = 0; i < count; i += per) {
    int k = count - i < per ? count - i : per;
    sout[out] = sout[first + i];
    struct msghdr *m = &sout[out].msg_hdr;
    m->msg_iovlen = (size_t)k;
    if (k > 1) {
      m->msg_control = gsoctl[out]; m->msg_controllen = sizeof gsoctl[out];
      struct cmsghdr *c = CMSG_FIRSTHDR(m);
      c->cmsg_level = SOL_UDP; c->cmsg_type = UDP_SEGMENT; c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t v = (uint16_t)size; memcpy(CMSG_DATA(c), &v, sizeof v);
    }
    out++;
  }
  nmsg = out;
}
#endif

/* TUN -> network: super-packets cut here (no extension headers in this yardstick) */
static int tx_step(void) {
  int n = 0;
  nseg = nmsg = 0;
  for (; n < BATCH; n++) {
    ssize_t r = read(tun, tx[n], SLOT);
    if (r <= VH) break;
    struct virtio_net_hdr *h = (struct virtio_net_hdr *)tx[n];
    unsigned char *p = tx[n] + VH;
    size_t len = (size_t)r - VH;
    if ((h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV6 && p[6] == 6) {
      unsigned thl = (p[52] >> 4) * 4, hl = 40 + thl, mss = h->gso_size;
      size_t payload = len - hl;
      uint32_t seq = rd32(p + 44);
#ifdef FOU
      int first = nseg;
#endif
      for (size_t off = 0; off < payload && nseg < MAXSEG; off += mss) {
        size_t chunk = payload - off < mss ? payload - off : mss;
        unsigned char *q = seg[nseg];
        memcpy(q, p, hl);
        memcpy(q + hl, p + hl + off, chunk);
        wr16(q + 4, thl + chunk);
        wr32(q + 44, seq + (uint32_t)off);
        if (off + chunk < payload) q[53] &= ~0x09; /* FIN, PSH only on the last */
        if (off) q[53] &= ~0x80;                    /* CWR only on the first */
        wr16(q + 56, 0);
        wr16(q + 56, ~sum16(q + 40, thl + chunk, pseudo(q, thl + chunk)) & 0xffff);
        queue(q, hl + chunk);
      }
#ifdef FOU
      gso_merge(nseg - first, hl + mss);
#endif
      continue;
    }
    if (h->gso_type == VIRTIO_NET_HDR_GSO_UDP_L4 && p[6] == 17) {
      unsigned mss = h->gso_size;
      size_t payload = len - 48;
      /* the pseudo-header sum the kernel left, less the super-packet's UDP length */
      uint32_t less = (uint32_t)(p[46] << 8 | p[47]) + (~(unsigned)(p[44] << 8 | p[45]) & 0xffff);
#ifdef FOU
      int first = nseg;
#endif
      for (size_t off = 0; off < payload && nseg < MAXSEG; off += mss) {
        size_t chunk = payload - off < mss ? payload - off : mss;
        unsigned char *q = seg[nseg];
        memcpy(q, p, 48);
        memcpy(q + 48, p + 48 + off, chunk);
        wr16(q + 4, 8 + chunk);
        wr16(q + 44, 8 + chunk);
        wr16(q + 46, 0);
        unsigned ck = ~sum16(q + 40, 8 + chunk, less + 8 + (uint32_t)chunk) & 0xffff;
        wr16(q + 46, ck ? ck : 0xffff);
        queue(q, 48 + chunk);
      }
#ifdef FOU
      gso_merge(nseg - first, 48 + mss);
#endif
      continue;
    }
    if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      unsigned at = h->csum_start + h->csum_offset;
      uint32_t s = sum16(p + h->csum_start, len - h->csum_start, 0);
      wr16(p + at, ~s & 0xffff);
    }
    queue(p, len);
  }
  for (int sent = 0; sent < nmsg;) { int r = sendmmsg(raw, sout + sent, nmsg - sent, 0); if (r <= 0) break; sent += r; }
  return n > 0;
}

/* the run being merged: its frame, length, header length, segment size, next sequence number; TCP or UDP */
static unsigned char *run; static size_t runLen; static unsigned runHl, runMss, runCount, runUdp; static uint32_t runNext;

static void flush_run(void) {
  if (!run) return;
  struct virtio_net_hdr *h = (struct virtio_net_hdr *)run;
  unsigned char *p = run + VH;
  memset(h, 0, VH);
  if (runCount > 1 && runUdp) {
    wr16(p + 4, (unsigned)runLen - 40);
    wr16(p + 44, (unsigned)runLen - 40);
    h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM; h->gso_type = VIRTIO_NET_HDR_GSO_UDP_L4;
    h->hdr_len = 48; h->gso_size = (uint16_t)runMss; h->csum_start = 40; h->csum_offset = 6;
    wr16(p + 46, pseudo_udp(p, (unsigned)runLen - 40));
  } else if (runCount > 1) {
    wr16(p + 4, (unsigned)runLen - 40);
    h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM; h->gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    h->hdr_len = (uint16_t)runHl; h->gso_size = (uint16_t)runMss; h->csum_start = 40; h->csum_offset = 16;
    wr16(p + 56, pseudo(p, (unsigned)runLen - 40));
  }
  if (write(tun, run, VH + runLen) < 0 && errno != EAGAIN) perror("write tun");
  run = NULL;
}

static int mergeable(const unsigned char *p, size_t len) {
  if (p[6] != 6 || len < 60) return 0;
  unsigned thl = (p[52] >> 4) * 4;
  if (len <= 40 + thl || (p[53] & 0x27)) return 0; /* no payload, or FIN/SYN/RST/URG */
  return sum16(p + 40, len - 40, pseudo(p, (unsigned)(len - 40))) == 0xffff;
}

static int uso; /* the kernel took TUN_F_USO4|USO6 */
static int mergeable_udp(const unsigned char *p, size_t len) {
  if (!uso || p[6] != 17 || len <= 48 || (unsigned)(p[44] << 8 | p[45]) != len - 40 || (p[46] | p[47]) == 0) return 0;
  return sum16(p + 40, len - 40, pseudo_udp(p, (unsigned)(len - 40))) == 0xffff;
}

/* network -> TUN: consecutive segments of one flow become one write */
static int rx_step(void) {
  int m = recvmmsg(raw, in, BATCH, MSG_DONTWAIT, NULL), runs = 0;
  for (int i = 0; i < m; i++) {
    size_t len;
    unsigned char *p = inner_of(i, &len);
    if (!p) continue;
    if (run && runUdp && mergeable_udp(p, len)) {
      unsigned char *r = run + VH;
      size_t pl = len - 48;
      if (pl <= runMss && runLen + pl <= 65535 + 40 && runCount < 64 && memcmp(p, r, 4) == 0 && p[7] == r[7] &&
          memcmp(p + 8, r + 8, 36) == 0) {
        memcpy(r + runLen, p + 48, pl);
        runLen += pl; runCount++;
        if (pl < runMss) flush_run();
        continue;
      }
    }
    if (run && !runUdp && mergeable(p, len)) {
      unsigned char *r = run + VH;
      unsigned thl = (p[52] >> 4) * 4;
      size_t pl = len - 40 - thl;
      if (40 + thl == runHl && rd32(p + 44) == runNext && pl <= runMss && runLen + pl <= 65535 &&
          memcmp(p + 8, r + 8, 32) == 0 && memcmp(p + 40, r + 40, 4) == 0 && memcmp(p + 48, r + 48, 5) == 0 &&
          (p[53] & ~0x08) == (r[53] & ~0x08) && memcmp(p + 54, r + 54, 2) == 0 && memcmp(p + 60, r + 60, thl - 20) == 0 &&
          !(r[53] & 0x08)) {
        memcpy(r + runLen, p + 40 + thl, pl);
        runLen += pl; runNext += (uint32_t)pl; runCount++;
        r[53] |= p[53] & 0x08;
        if (pl < runMss) flush_run();
        continue;
      }
    }
    flush_run();
    if (mergeable_udp(p, len) && runs < BATCH) {
      run = merged[runs++];
      memcpy(run + VH, p, len);
      runLen = len; runHl = 48; runMss = (unsigned)(len - 48); runCount = 1; runUdp = 1;
      continue;
    }
    if (mergeable(p, len) && runs < BATCH) {
      run = merged[runs++];
      memcpy(run + VH, p, len);
      runLen = len; runHl = 40 + (p[52] >> 4) * 4; runMss = (unsigned)(len - runHl); runCount = 1; runUdp = 0;
      runNext = rd32(p + 44) + runMss;
      if (p[53] & 0x08) flush_run();
      continue;
    }
    memset(p - VH, 0, VH); /* the IPv4 header's tail (FOU: the headroom) is room for an empty virtio header */
    if (write(tun, p - VH, VH + len) < 0 && errno != EAGAIN) perror("write tun");
  }
  flush_run();
  return m > 0;
}
#else
/* TUN -> network; returns 1 if it moved anything */
static int tx_step(void) {
  int n = 0;
  while (n < BATCH) {
    ssize_t r = read(tun, tx[n], SLOT);
    if (r <= 0) break;
    oiov[n].iov_base = tx[n]; oiov[n].iov_len = (size_t)r;
    n++;
    if (BATCH == 1) break;
  }
  if (n == 0) return 0;
  if (BATCH == 1) sendto(raw, tx[0], oiov[0].iov_len, 0, (struct sockaddr *)&remote, sizeof remote);
  else for (int sent = 0; sent < n;) { int r = sendmmsg(raw, out + sent, n - sent, 0); if (r <= 0) break; sent += r; }
  return 1;
}

/* network -> TUN; returns 1 if it moved anything */
static int rx_step(void) {
  int m = BATCH == 1 ? (int)recv(raw, rx[0], SLOT, 0) : recvmmsg(raw, in, BATCH, MSG_DONTWAIT, NULL);
  if (BATCH == 1 && m > 0) { in[0].msg_len = (unsigned)m; m = 1; }
  for (int i = 0; i < m; i++) {
    size_t len;
    unsigned char *p = inner_of(i, &len);
    if (p && write(tun, p, len) < 0 && errno != EAGAIN) perror("write tun");
  }
  return m > 0;
}

#endif

#ifdef THREADS
static void *rx_thread(void *arg) {
  (void)arg;
  struct pollfd pfd = {raw, POLLIN, 0};
  while (!stop) if (!rx_step()) poll(&pfd, 1, 100);
  return NULL;
}
#endif

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: %s tun local remote\n", argv[0]); return 2; }
  tun = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  struct ifreq ifr; memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
#ifdef OFFLOAD
  ifr.ifr_flags |= IFF_VNET_HDR;
#endif
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  if (tun < 0 || ioctl(tun, TUNSETIFF, &ifr) < 0) { perror("tun"); return 1; }
#ifdef OFFLOAD
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif
  /* UDP offload where the kernel has it (6.2+), as our engine asks */
  uso = ioctl(tun, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6)) == 0;
  if (!uso && ioctl(tun, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO6)) < 0) { perror("TUNSETOFFLOAD"); return 1; }
#endif
#ifdef FOU
  raw = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  local.sin_port = remote.sin_port = htons(FOU_PORT);
#else
  raw = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPV6);
#endif
  int dont = IP_PMTUDISC_DONT, buf = 4 << 20;
  setsockopt(raw, IPPROTO_IP, IP_MTU_DISCOVER, &dont, sizeof dont);
  setsockopt(raw, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
  setsockopt(raw, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
  inet_pton(AF_INET, argv[2], &local.sin_addr);
  inet_pton(AF_INET, argv[3], &remote.sin_addr);
  if (raw < 0 || bind(raw, (struct sockaddr *)&local, sizeof local) < 0) { perror("raw"); return 1; }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  for (int i = 0; i < BATCH; i++) {
    out[i].msg_hdr.msg_name = &remote; out[i].msg_hdr.msg_namelen = sizeof remote;
    out[i].msg_hdr.msg_iov = &oiov[i]; out[i].msg_hdr.msg_iovlen = 1;
    iiov[i].iov_base = rx[i] + HEADROOM; iiov[i].iov_len = SLOT - HEADROOM;
    in[i].msg_hdr.msg_iov = &iiov[i]; in[i].msg_hdr.msg_iovlen = 1;
#ifdef FOU
    in[i].msg_hdr.msg_name = &from[i]; in[i].msg_hdr.msg_namelen = sizeof from[i];
#endif
  }
#ifdef URING
  if (io_uring_queue_init(4 * BATCH, &ring, 0) < 0) { perror("io_uring_queue_init"); return 1; }
#endif
  printf("ready\n");
  fflush(stdout);
#ifdef THREADS
  pthread_t rxt;
  pthread_create(&rxt, NULL, rx_thread, NULL);
  struct pollfd pfd = {tun, POLLIN, 0};
  while (!stop) if (!tx_step()) poll(&pfd, 1, 100);
  pthread_join(rxt, NULL);
#else
  struct pollfd pfd[2] = {{tun, POLLIN, 0}, {raw, POLLIN, 0}};
  while (!stop) {
    int busy = tx_step();
    busy |= rx_step();
    if (!busy) poll(pfd, 2, 100);
  }
#endif
  return 0;
}
