/*
 * A minimal 6in4 forwarder in C, the yardstick for the macro benchmark: TUN <-> raw IPv4
 * socket (protocol 41, kernel-built outer header, DF clear), no policy beyond the outer source
 * check. Two builds of this one file:
 *   -DBATCH=1   one packet per syscall (read/sendto, recv/write), poll() between packets
 *   -DBATCH=64  TUN drain + sendmmsg, recvmmsg + write loop, poll() only when both ran dry
 * usage: forwarder <tun-name> <local-ipv4> <remote-ipv4>   (the harness configures the interface)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
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
    unsigned char *p = rx[i];
    if (memcmp(p + 12, &remote.sin_addr, 4) != 0) continue;
    int ihl = (p[0] & 15) * 4;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_write(sqe, tun, p + ihl, in[i].msg_len - ihl, (__u64)-1);
    sqe->user_data = (__u64)k++;
  }
  if (k > 0) ring_run(k, res);
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
    unsigned char *p = rx[i];
    if (memcmp(p + 12, &remote.sin_addr, 4) != 0) continue;
    int ihl = (p[0] & 15) * 4;
    if (write(tun, p + ihl, in[i].msg_len - ihl) < 0 && errno != EAGAIN) perror("write tun");
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
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  if (tun < 0 || ioctl(tun, TUNSETIFF, &ifr) < 0) { perror("tun"); return 1; }
  raw = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPV6);
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
    iiov[i].iov_base = rx[i]; iiov[i].iov_len = SLOT;
    in[i].msg_hdr.msg_iov = &iiov[i]; in[i].msg_hdr.msg_iovlen = 1;
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
