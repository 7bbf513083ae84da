// The outer sockets, raw protocol 41 and Foo-over-UDP: opening them, batched sends (DF per packet,
// UDP GSO runs checked and carried out), batched receives, and the ICMP error queue.

#include "addon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace t6 {

namespace {

// Socket buffers of `bytes` each way (0: the kernel's default). The FORCE variants need
// CAP_NET_ADMIN, which we have when we can open the TUN; without it the capped ones are used.
void SetBufferSizes(int fd, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

int BindLocal(int fd, uint32_t local, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(local);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
}

}  // namespace

OpeningSocket::OpeningSocket(Napi::Env env, int domain, int type, int protocol, const char* what)
    : env_(env), fd_(socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol)) {
  if (fd_ < 0) ThrowErrno(env_, what, errno);
}

OpeningSocket::~OpeningSocket() {
  if (fd_ >= 0) close(fd_);
}

bool OpeningSocket::Option(int level, int name, const void* value, unsigned size, const char* what) {
  return Check(fd_ < 0 ? 0 : setsockopt(fd_, level, name, value, size), what);
}

bool OpeningSocket::Check(int result, const char* what) {
  if (fd_ < 0) return false;
  if (result >= 0) return true;
  int err = errno;
  close(fd_);
  fd_ = -1;
  ThrowErrno(env_, what, err);
  return false;
}

int OpeningSocket::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

// openRawSocket(localAddr: uint32, pmtuDiscover: number, bufferBytes: number, sendOnly = false) -> fd
// A raw IPv4 socket for protocol 41. The kernel builds the outer header (no IP_HDRINCL), so it
// can fragment when DF is clear (R05) and pick unique IDs; TTL and TOS come per packet as
// ancillary data. IP_RECVERR queues ICMPv4 errors about our packets (R07/R11/R12).
// sendOnly: a second socket that only sends (DF is per socket, not per packet): a filter drops
// everything it would receive, since every raw socket gets its own copy of each packet.
Napi::Value OpenRawSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) return ThrowType(env, "openRawSocket(localAddr, pmtuDiscover, bufferBytes, sendOnly?)");
  uint32_t local = info[0].As<Napi::Number>().Uint32Value();
  int pmtu = info[1].As<Napi::Number>().Int32Value();
  int bufBytes = info[2].As<Napi::Number>().Int32Value();
  bool sendOnly = info.Length() > 3 && info[3].ToBoolean().Value();
  OpeningSocket s(env, AF_INET, SOCK_RAW, IPPROTO_IPV6, "socket(AF_INET, SOCK_RAW, 41)");
  s.Option(IPPROTO_IP, IP_MTU_DISCOVER, pmtu, "setsockopt IP_MTU_DISCOVER");
  if (sendOnly) {
    struct sock_filter dropAll = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {1, &dropAll};
    s.Option(SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog, "setsockopt SO_ATTACH_FILTER");
  } else {
    s.Option(IPPROTO_IP, IP_RECVERR, 1, "setsockopt IP_RECVERR");
  }
  if (!s.ok()) return env.Undefined();
  // (a send-only socket's receive buffer stays empty: its filter drops everything)
  SetBufferSizes(s.fd(), bufBytes);
  // Binding fixes our source address and makes the kernel deliver only packets sent to it (R14).
  if (local != 0 && !s.Check(BindLocal(s.fd(), local, 0), "bind")) return env.Undefined();
  return Napi::Number::New(env, s.Release());
}

// setReceiveFilter(fd, prog: Int32Array | null) -> undefined
// Attaches a classic BPF program (code, jt, jf, k per instruction: src/transport/receive-filter.ts
// decides what it keeps) in place of the socket's filter, or removes it (null). The kernel checks
// the program; one it refuses throws.
Napi::Value SetReceiveFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "setReceiveFilter(fd, prog: Int32Array of (code, jt, jf, k) per instruction, at most 4096, or null)";
  if (info.Length() < 2 || !info[0].IsNumber()) return ThrowType(env, usage);
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (info[1].IsNull()) {
    int unused = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused) < 0 && errno != ENOENT) return ThrowErrno(env, "setsockopt SO_DETACH_FILTER", errno);
    return env.Undefined();
  }
  int32_t* words = nullptr;
  size_t n = 0;
  if (!GetInt32s(info[1], &words, &n) || n == 0 || n % 4 != 0 || n / 4 > BPF_MAXINSNS) return ThrowType(env, usage);
  // a fixed array, not std::vector: its libstdc++ symbols (GLIBCXX_3.4.29) would raise the prebuilds' floor
  struct sock_filter insns[BPF_MAXINSNS];
  const size_t count = n / 4;
  for (size_t i = 0; i < count; i++) {
    const int32_t* w = words + 4 * i;
    if (w[0] < 0 || w[0] > 0xffff || w[1] < 0 || w[1] > 0xff || w[2] < 0 || w[2] > 0xff) return ThrowType(env, usage);
    insns[i] = {static_cast<uint16_t>(w[0]), static_cast<uint8_t>(w[1]), static_cast<uint8_t>(w[2]), static_cast<uint32_t>(w[3])};
  }
  struct sock_fprog prog = {static_cast<unsigned short>(count), insns};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return ThrowErrno(env, "setsockopt SO_ATTACH_FILTER", errno);
  return env.Undefined();
}

namespace {

struct SendState {
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];  // one per packet; a GSO message spans several
  struct sockaddr_in addrs[kMaxBatch];
  alignas(struct cmsghdr) uint8_t control[kMaxBatch][CMSG_SPACE(sizeof(int)) * 2 + CMSG_SPACE(sizeof(uint16_t))];
  int fds[kMaxBatch];
  int pmtus[kMaxBatch];  // toggling: the IP_MTU_DISCOVER message m goes with (PmtuFor)
  bool csums[kMaxBatch];  // with csumForGso: this message goes with UDP checksums on
  int first[kMaxBatch];  // message m carries packets first[m] .. first[m] + count[m] - 1
  int count[kMaxBatch];
};
thread_local SendState send_state;

void AddCmsg(struct msghdr* m, struct cmsghdr** c, int level, int type, const void* data, size_t len) {
  *c = *c ? CMSG_NXTHDR(m, *c) : CMSG_FIRSTHDR(m);
  (*c)->cmsg_level = level;
  (*c)->cmsg_type = type;
  (*c)->cmsg_len = CMSG_LEN(len);
  memcpy(CMSG_DATA(*c), data, len);
}

// An errno a send can return for no fault of its own message: an ICMPv4 error about an earlier
// packet (net/ipv4/icmp.c icmp_err_convert), which IP_RECVERR also leaves in sk_err for the next
// send to pick up. Anyone who knows our address can forge one, so such a failure is tried once more.
bool MaybePendingReport(int err) {
  switch (err) {
    case ENETUNREACH: case EHOSTUNREACH: case ENOPROTOOPT: case ECONNREFUSED: case EMSGSIZE:
    case EOPNOTSUPP: case EHOSTDOWN: case ENONET: case EPROTO:
      return true;
    default:
      return false;
  }
}

// Whether a send on fd may go through now (POLLOUT). ENOBUFS from a writable socket is a packet
// the qdisc dropped (IP_RECVERR reports it); from one that is not, a full socket buffer.
bool Writable(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  int r;
  do r = poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & POLLOUT) != 0;
}

// The path-MTU mode a message leaves with on a socket whose mode is switched per message. With
// IP_PMTUDISC_WANT the kernel sets DF only on a datagram that fits the route MTU, and a GSO
// message, sized as a whole, never does: its segments left with DF clear while lone datagrams
// had it. IP_PMTUDISC_DO sets DF on the message, so on every segment cut from it; a segment over
// the route MTU is refused (EINVAL) and the message goes again packet by packet with WANT, as a
// lone datagram would have gone. One DF policy per tunnel, whatever the batching.
int PmtuFor(bool df, int packets) {
  if (!df) return IP_PMTUDISC_DONT;
  return packets > 1 ? IP_PMTUDISC_DO : IP_PMTUDISC_WANT;
}

// sendmsg of one message, tried once more after a failure that may be an earlier packet's ICMP
// report (MaybePendingReport): the per-packet twin of the batch loop's retry. errno is the result's.
ssize_t SendOne(int fd, struct msghdr* h) {
  ssize_t w;
  for (int tries = 0;; tries++) {
    do w = sendmsg(fd, h, 0);
    while (w < 0 && errno == EINTR);
    if (w >= 0 || tries > 0 || !MaybePendingReport(errno)) return w;
  }
}

}  // namespace

namespace {

// The outer TTL the engine sends with unless told otherwise (TTL_DEFAULT in src/encap/options.ts).
constexpr int kPlainTtl = 64;

// What a socket's sends go with, fixed when it opens (setSendOptions), so a send names only the
// socket, the batch and its runs.
struct SendOptions {
  bool set;
  int port;         // the peer's UDP port; 0 on a raw socket
  int dfClearFd;    // packets without DF leave through this socket (-1: none)
  bool toggleDf;    // DF is switched on this socket itself around the stretches that need another mode
  bool csumGsoOnly; // the socket sends zero checksums: turn them on for GSO messages only
  napi_ref stats;   // an Int32Array: stats[0] += GSO messages refused as a whole and resent packet by packet
  napi_env env;
  int plainTtl;     // the TTL and TOS the socket (and its DF-clear one) sends with when a message
  int plainTos;     //   names none: such messages go without ancillary data (-1: always name them)
};
// By fd, grown as fds grow. A plain array: std::vector's libstdc++ symbols would raise the prebuilds' floor.
SendOptions* send_options = nullptr;
int send_options_len = 0;

SendOptions* SendOptionsOf(int fd) {
  return fd >= 0 && fd < send_options_len && send_options[fd].set ? &send_options[fd] : nullptr;
}

void CountGsoFallback(const SendOptions* so) {
  if (!so->stats) return;
  napi_value v;
  if (napi_get_reference_value(so->env, so->stats, &v) != napi_ok || v == nullptr) return;
  int32_t* data = nullptr;
  size_t n = 0;
  if (GetInt32s(Napi::Value(so->env, v), &data, &n) && n >= 1) data[0]++;
}

}  // namespace

void ForgetSendOptions(int fd) {
  if (fd < 0 || fd >= send_options_len || !send_options[fd].set) return;
  if (send_options[fd].stats) napi_delete_reference(send_options[fd].env, send_options[fd].stats);
  send_options[fd] = SendOptions{};
}

// setSendOptions(fd, { port = 0, dfClearFd = -1, toggleDf = false, checksumGsoOnly = false, stats? })
// Fixes how every sendBatch on fd sends: to which UDP port, how packets without DF leave (a
// second socket, or this one's option switched around them), checksums for GSO messages only,
// and where refused GSO messages are counted. Set again when the fd is reused; closeFd forgets it.
Napi::Value SetSendOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "setSendOptions(fd, { port?, dfClearFd?, toggleDf?, checksumGsoOnly?, stats?: Int32Array })";
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsObject()) return ThrowType(env, usage);
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0 || fd > (1 << 24)) return ThrowType(env, usage);
  Napi::Object o = info[1].As<Napi::Object>();
  auto num = [&](const char* k, int dflt) { Napi::Value v = o.Get(k); return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : dflt; };
  Napi::Value stats = o.Get("stats");
  int32_t* statsData = nullptr;
  size_t nStats = 0;
  if (!stats.IsUndefined() && !stats.IsNull() && !(GetInt32s(stats, &statsData, &nStats) && nStats >= 1)) return ThrowType(env, usage);
  if (fd >= send_options_len) {
    int len = send_options_len ? send_options_len : 64;
    while (len <= fd) len *= 2;
    void* grown = realloc(send_options, sizeof(SendOptions) * len);
    if (!grown) return ThrowErrno(env, "setSendOptions", ENOMEM);
    send_options = static_cast<SendOptions*>(grown);
    for (int i = send_options_len; i < len; i++) send_options[i] = SendOptions{};
    send_options_len = len;
  }
  ForgetSendOptions(fd);
  SendOptions& so = send_options[fd];
  so.set = true;
  so.port = num("port", 0);
  so.dfClearFd = num("dfClearFd", -1);
  so.toggleDf = o.Get("toggleDf").ToBoolean().Value();
  so.csumGsoOnly = o.Get("checksumGsoOnly").ToBoolean().Value();
  so.env = env;
  if (statsData) napi_create_reference(env, stats, 1, &so.stats);
  // The TTL and TOS most packets leave with, set on the socket itself so that a message with
  // these needs no IP_TTL/IP_TOS ancillary data, which the kernel would parse per message. Set,
  // not read: a socket that never set IP_TTL follows the sysctl, which may change under it.
  int ttl = kPlainTtl, tos = 0;
  bool pinned = setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) == 0 && setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) == 0;
  if (pinned && so.dfClearFd >= 0)
    pinned = setsockopt(so.dfClearFd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) == 0 && setsockopt(so.dfClearFd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) == 0;
  so.plainTtl = pinned ? ttl : -1;
  so.plainTos = pinned ? tos : -1;
  return env.Undefined();
}

// sendBatch(fd, batch, n, runs?) -> packets sent; batch.errs[i] = errno or 0.
// Sends the batch's packet i (an inner IPv6 packet at offs[i], lens[i]) to dsts[i] (IPv4, host
// order) with the TTL, TOS and DF of fields[i]: the kernel builds the IPv4 header (and the UDP
// header, to the port of the socket's send options, on a UDP socket). TTL and TOS go as ancillary
// data; DF is a socket option, so with a dfClearFd the packets without DF leave through that
// socket (IP_PMTUDISC_DONT); with toggleDf (a UDP socket: a second one could not share its port)
// the option is switched around each stretch that needs another mode (DF clear; a GSO message
// with DF: PmtuFor) and back to IP_PMTUDISC_WANT. `runs` (UDP only) groups the packets into
// messages, runs[m] consecutive packets each, covering the batch and ending there (a 0 after the
// last, or the array's end): a run of more than one goes as
// one UDP_SEGMENT (GSO) message. Which packets may share a message is decided in TypeScript
// (src/transport/gso.ts); here a run is only checked to be one (same destination and fields,
// equal non-empty sizes but for a shorter last one, at most kMaxGsoSegments packets and
// kMaxUdpPayload bytes, UDP only) and the runs to cover the batch exactly; anything else throws
// before a packet leaves. A GSO message the path refuses (EMSGSIZE) is sent again packet by
// packet, in place, and counted in the socket's stats[0].
// One sendmmsg per stretch of consecutive messages for one socket (and one DF setting, when
// toggling): that follows the caller's order and decides nothing about packets. A failed message
// fails its packets and the rest go on (ENOBUFS from a writable socket is a packet the qdisc
// dropped: the link is full, as a wire drops what it cannot carry); a failure that may be an
// earlier ICMP error's report is tried once more (a message, or a packet of a refused GSO message
// resent alone); at a full socket buffer the rest are marked EAGAIN.
Napi::Value SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs a;
  int32_t* runs = nullptr;
  size_t runsLen = 0;
  const char* usage = "sendBatch(fd, batch: PacketBatch, n, runs?: Int32Array): bad arguments or a packet outside the arena";
  if (info.Length() < 3 || !info[0].IsNumber() || !info[2].IsNumber() ||
      !ParseBatch(info[1], info[0].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(), &a))
    return ThrowType(env, usage);
  const SendOptions* so = SendOptionsOf(a.fd);
  if (!so) return ThrowType(env, "sendBatch: the socket has no send options (setSendOptions when it opens)");
  bool withRuns = info.Length() > 3 && info[3].IsTypedArray();
  if (withRuns && !GetInt32s(info[3], &runs, &runsLen)) return ThrowType(env, usage);
  const int32_t* dsts = a.dsts;
  const int32_t* fields = a.fields;
  const int port = so->port;
  const int dfClearFd = so->dfClearFd;
  // The socket sends zero checksums (SO_NO_CHECK) but the kernel refuses UDP GSO without them:
  // GSO messages go with checksums on, every other datagram as the socket has it.
  const bool csumToggle = so->csumGsoOnly;
  SendState& s = send_state;
  const bool toggle = so->toggleDf;
  const int plainTtl = so->plainTtl;
  const int plainTos = so->plainTos;
  int nm = 0;
  for (int i = 0; i < a.n;) {
    int k = !withRuns ? 1 : (static_cast<size_t>(nm) < runsLen ? runs[nm] : 0);
    if (k < 1 || k > a.n - i || (k > 1 && (port == 0 || k > kMaxGsoSegments))) return ThrowType(env, "sendBatch: runs do not cover the batch");
    long total = 0;
    for (int j = i; j < i + k; j++) {
      total += a.lens[j];
      if (j > i && (dsts[j] != dsts[i] || fields[j] != fields[i] || a.lens[j] > a.lens[i] || a.lens[j] == 0 || (j < i + k - 1 && a.lens[j] != a.lens[i])))
        return ThrowType(env, "sendBatch: a run mixes destinations, fields or sizes");
    }
    if (total > kMaxUdpPayload) return ThrowType(env, "sendBatch: a run exceeds one UDP datagram");
    bool df = (fields[i] & kOuterDf) != 0;
    s.first[nm] = i;
    s.count[nm] = k;
    s.fds[nm] = dfClearFd >= 0 && !toggle && !df ? dfClearFd : a.fd;
    s.pmtus[nm] = PmtuFor(df, k);
    s.csums[nm] = csumToggle && k > 1;
    nm++;
    i += k;
  }
  // the runs end at a 0 or at the array's end: one more run than the batch needs is a mistake
  if (withRuns && static_cast<size_t>(nm) < runsLen && runs[nm] != 0) return ThrowType(env, "sendBatch: runs do not cover the batch");
  for (int i = 0; i < a.n; i++) {
    a.errs[i] = 0;
    s.iovs[i].iov_base = a.arena.base + a.offs[i];
    s.iovs[i].iov_len = a.lens[i];
  }
  for (int m = 0; m < nm; m++) {
    int f = s.first[m];
    struct sockaddr_in* sa = &s.addrs[m];
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(static_cast<uint32_t>(dsts[f]));
    sa->sin_port = htons(static_cast<uint16_t>(port));
    struct msghdr* h = &s.msgs[m].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = sa;
    h->msg_namelen = sizeof *sa;
    h->msg_iov = &s.iovs[f];
    h->msg_iovlen = s.count[m];
    h->msg_control = s.control[m];
    h->msg_controllen = sizeof s.control[m];
    struct cmsghdr* c = nullptr;
    int ttl = (fields[f] >> kOuterTtlShift) & 0xff;
    int tos = (fields[f] >> kOuterTosShift) & 0xff;
    size_t used = 0;
    if (ttl != plainTtl || tos != plainTos) {
      AddCmsg(h, &c, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
      AddCmsg(h, &c, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
      used = 2 * CMSG_SPACE(sizeof(int));
    }
    if (s.count[m] > 1) {
      uint16_t seg = static_cast<uint16_t>(a.lens[f]);
      AddCmsg(h, &c, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg);
      used += CMSG_SPACE(sizeof seg);
    }
    h->msg_controllen = used;
    if (used == 0) h->msg_control = nullptr;
  }
  int m = 0, sent = 0, retried = -1;
  int socketPmtu = IP_PMTUDISC_WANT;  // what a toggled socket stands at between calls
  bool socketCsum = false;
  auto setPmtu = [&](int fd, int v) {
    if (v == socketPmtu) return;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
    socketPmtu = v;
  };
  while (m < nm) {
    // a stretch: consecutive messages for the same socket (and DF and checksums, when toggling), in order
    int fd = s.fds[m];
    int stretch = 1;
    while (m + stretch < nm && s.fds[m + stretch] == fd && (!toggle || s.pmtus[m + stretch] == s.pmtus[m]) && s.csums[m + stretch] == s.csums[m]) stretch++;
    if (toggle) setPmtu(fd, s.pmtus[m]);
    if (s.csums[m] != socketCsum) {
      int noCheck = s.csums[m] ? 0 : 1;
      setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &noCheck, sizeof noCheck);
      socketCsum = s.csums[m];
    }
    int r = sendmmsg(fd, &s.msgs[m], stretch, 0);
    if (r > 0) {
      for (int j = m; j < m + r; j++) sent += s.count[j];
      m += r;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || (err == ENOBUFS && !Writable(fd))) {
      // Back-pressure: the socket buffer is full (a raw socket says ENOBUFS for it: its sends
      // allocate past twice the buffer with sock_wmalloc). Nothing waits here, on the JS thread:
      // the rest of the batch is marked EAGAIN, in order, for the caller to send again once the
      // socket that refused (the DF-clear one or the main one) is writable.
      for (int j = s.first[m]; j < a.n; j++) a.errs[j] = EAGAIN;
      break;
    }
    if (retried != m && MaybePendingReport(err)) {
      retried = m;  // that send consumed the report; this one is the message's own result
      continue;
    }
    if (s.count[m] > 1 && (err == EMSGSIZE || err == EINVAL)) {
      // The path refused the GSO message as a whole (a segment over the route MTU: the kernel
      // would have fragmented each packet sent alone; older kernels say EINVAL): send them so.
      CountGsoFallback(so);
      struct msghdr* h = &s.msgs[m].msg_hdr;
      // TTL and TOS where the message names them, without UDP_SEGMENT (always the last)
      h->msg_controllen -= CMSG_SPACE(sizeof(uint16_t));
      if (h->msg_controllen == 0) h->msg_control = nullptr;
      h->msg_iovlen = 1;
      if (toggle) setPmtu(fd, PmtuFor(s.pmtus[m] != IP_PMTUDISC_DONT, 1));
      bool full = false;
      for (int j = s.first[m]; j < s.first[m] + s.count[m]; j++) {
        h->msg_iov = &s.iovs[j];
        ssize_t w = SendOne(fd, h);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || (errno == ENOBUFS && !Writable(fd)))) {
          for (int k = j; k < a.n; k++) a.errs[k] = EAGAIN;
          full = true;
          break;
        }
        a.errs[j] = w < 0 ? errno : 0;
        if (w >= 0) sent++;
      }
      if (full) break;
      m++;
      continue;
    }
    for (int j = 0; j < s.count[m]; j++) a.errs[s.first[m] + j] = err;
    m++;
  }
  if (toggle) setPmtu(a.fd, IP_PMTUDISC_WANT);
  if (socketCsum) {
    int noCheck = 1;
    setsockopt(a.fd, SOL_SOCKET, SO_NO_CHECK, &noCheck, sizeof noCheck);
  }
  return Napi::Number::New(env, sent);
}

// openUdpSocket(localAddr, port, pmtuDiscover, bufferBytes, checksum = false, gro = false)
//   -> { fd, gso, gro }
// A UDP socket for Foo-over-UDP (Linux net/ipv4/fou: the UDP payload is the IPv6 packet). Bound
// to local:port, it receives from any source port; IP_RECVTOS hands us each datagram's outer TOS
// (R13's ECN); IP_RECVERR queues ICMPv4 errors about what we sent, as on the raw socket.
// checksum false sends a zero UDP checksum (SO_NO_CHECK), as Linux FOU's noencap-csum; gso says
// whether this kernel has UDP_SEGMENT (it refuses it on a send without checksums: see sendBatch's
// csumForGso). gro asks for coalesced datagrams (UDP_GRO); the result says whether the kernel took it.
Napi::Value OpenUdpSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) return ThrowType(env, "openUdpSocket(localAddr, port, pmtuDiscover, bufferBytes, checksum?, gro?)");
  uint32_t local = info[0].As<Napi::Number>().Uint32Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int pmtu = info[2].As<Napi::Number>().Int32Value();
  int bufBytes = info[3].As<Napi::Number>().Int32Value();
  bool checksum = info.Length() > 4 && info[4].ToBoolean().Value();
  bool wantGro = info.Length() > 5 && info[5].ToBoolean().Value();
  OpeningSocket s(env, AF_INET, SOCK_DGRAM, IPPROTO_UDP, "socket(AF_INET, SOCK_DGRAM)");
  s.Option(IPPROTO_IP, IP_MTU_DISCOVER, pmtu, "setsockopt IP_MTU_DISCOVER");
  s.Option(IPPROTO_IP, IP_RECVERR, 1, "setsockopt IP_RECVERR");
  s.Option(IPPROTO_IP, IP_RECVTOS, 1, "setsockopt IP_RECVTOS");
  if (!checksum) s.Option(SOL_SOCKET, SO_NO_CHECK, 1, "setsockopt SO_NO_CHECK");
  if (!s.ok()) return env.Undefined();
  int fd = s.fd();
  SetBufferSizes(fd, bufBytes);
  // A zero UDP_SEGMENT is accepted by kernels that know the option and changes nothing.
  int zero = 0;
  int one = 1;
  bool gso = setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
  bool gro = wantGro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  if (!s.Check(BindLocal(fd, local, port), "bind")) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, s.Release()));
  out.Set("gso", Napi::Boolean::New(env, gso));
  out.Set("gro", Napi::Boolean::New(env, gro));
  return out;
}

namespace {

struct UdpRecvState {
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
  struct sockaddr_in from[kMaxBatch];
  alignas(struct cmsghdr) uint8_t control[kMaxBatch][CMSG_SPACE(sizeof(int)) * 2];
};
thread_local UdpRecvState udp_recv_state;

}  // namespace

// udpRecv(fd, arena, slotSize, headroom, max, lens, info) -> datagrams received, 0 when none, or
// -errno for a socket error (then read the error queue). Slot i gets the UDP payload;
// info[4i..4i+3] = source address (int32), source port, TOS, and the GRO segment size when the
// kernel coalesced several datagrams of one flow into this slot (each segment that size, the
// last possibly shorter). A datagram larger than a slot is marked with length -1.
Napi::Value UdpRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadArgs a;
  int32_t* out = nullptr;
  size_t nOut = 0;
  if (!ParseReadArgs(info, &a) || info.Length() < 7 || !GetInt32s(info[6], &out, &nOut))
    return ThrowType(env, "udpRecv(fd, arena, slotSize, headroom, max, lens, info)");
  if (static_cast<size_t>(a.max) * kUdpInfoStride > nOut) a.max = static_cast<int>(nOut / kUdpInfoStride);
  UdpRecvState& s = udp_recv_state;
  for (int i = 0; i < a.max; i++) {
    s.iovs[i].iov_base = a.arena.base + static_cast<size_t>(i) * a.slotSize + a.headroom;
    s.iovs[i].iov_len = a.slotSize - a.headroom;
    struct msghdr* h = &s.msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &s.from[i];
    h->msg_namelen = sizeof s.from[i];
    h->msg_iov = &s.iovs[i];
    h->msg_iovlen = 1;
    h->msg_control = s.control[i];
    h->msg_controllen = sizeof s.control[i];
  }
  int r;
  do r = recvmmsg(a.fd, s.msgs, a.max, MSG_DONTWAIT, nullptr);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Napi::Number::New(env, (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno);
  for (int i = 0; i < r; i++) {
    struct msghdr* h = &s.msgs[i].msg_hdr;
    int32_t* o = out + i * kUdpInfoStride;
    o[0] = static_cast<int32_t>(ntohl(s.from[i].sin_addr.s_addr));
    o[1] = ntohs(s.from[i].sin_port);
    o[2] = 0;
    o[3] = 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
        o[2] = *reinterpret_cast<uint8_t*>(CMSG_DATA(c));
      } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int seg;
        memcpy(&seg, CMSG_DATA(c), sizeof seg);
        o[3] = seg;
      }
    }
    a.lens[i] = (h->msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(s.msgs[i].msg_len);
  }
  return Napi::Number::New(env, r);
}

namespace {

struct RecvState {
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
};
thread_local RecvState recv_state;

}  // namespace

// rawRecv(fd, arena, slotSize, headroom, max, lens) -> packets received, 0 when none,
// or -errno for a socket error (IP_RECVERR reports an ICMP error once this way; the caller
// then reads the error queue). Each slot gets a whole IPv4 packet, header included,
// reassembled by the kernel (R06). A packet larger than a slot is marked with length -1.
Napi::Value RawRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadArgs a;
  if (!ParseReadArgs(info, &a)) return ThrowType(env, "rawRecv(fd, arena, slotSize, headroom, max, lens)");
  RecvState& s = recv_state;
  for (int i = 0; i < a.max; i++) {
    s.iovs[i].iov_base = a.arena.base + static_cast<size_t>(i) * a.slotSize + a.headroom;
    s.iovs[i].iov_len = a.slotSize - a.headroom;
    memset(&s.msgs[i].msg_hdr, 0, sizeof s.msgs[i].msg_hdr);
    s.msgs[i].msg_hdr.msg_iov = &s.iovs[i];
    s.msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int r;
  do r = recvmmsg(a.fd, s.msgs, a.max, MSG_DONTWAIT, nullptr);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Napi::Number::New(env, (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno);
  for (int i = 0; i < r; i++) {
    a.lens[i] = (s.msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(s.msgs[i].msg_len);
  }
  return Napi::Number::New(env, r);
}

// recvErrors(fd, arena, slotSize, headroom, max, lens, info) -> errors read.
// Reads the socket's error queue (raw or UDP): for each ICMPv4 error (or local error) about a
// packet we sent, slot i gets what the kernel kept of our payload — past the IPv4 header, and
// the UDP header on a UDP socket: the quoted inner IPv6 packet — and info[6i..6i+5] = origin, ICMP type, code, info (the next-hop
// MTU for "fragmentation needed"), original destination (as int32), errno.
Napi::Value RecvErrors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadArgs a;
  int32_t* out = nullptr;
  size_t nOut = 0;
  if (!ParseReadArgs(info, &a) || info.Length() < 7 || !GetInt32s(info[6], &out, &nOut))
    return ThrowType(env, "recvErrors(fd, arena, slotSize, headroom, max, lens, info)");
  if (static_cast<size_t>(a.max) * kErrInfoStride > nOut) a.max = static_cast<int>(nOut / kErrInfoStride);
  int n = 0;
  while (n < a.max) {
    struct sockaddr_in from;
    struct iovec iov = {a.arena.base + static_cast<size_t>(n) * a.slotSize + a.headroom,
                        static_cast<size_t>(a.slotSize - a.headroom)};
    alignas(struct cmsghdr) uint8_t control[512];
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t r = recvmsg(a.fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    struct sock_extended_err* ee = nullptr;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR)
        ee = reinterpret_cast<struct sock_extended_err*>(CMSG_DATA(c));
    }
    if (!ee) continue;
    int32_t* o = out + n * kErrInfoStride;
    o[0] = ee->ee_origin;
    o[1] = ee->ee_type;
    o[2] = ee->ee_code;
    o[3] = static_cast<int32_t>(ee->ee_info);
    o[4] = static_cast<int32_t>(ntohl(from.sin_addr.s_addr));
    o[5] = static_cast<int32_t>(ee->ee_errno);
    a.lens[n] = (m.msg_flags & MSG_TRUNC) ? static_cast<int32_t>(iov.iov_len) : static_cast<int32_t>(r);
    n++;
  }
  return Napi::Number::New(env, n);
}

}  // namespace t6
