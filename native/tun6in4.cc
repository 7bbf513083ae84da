// tun6in4 native addon: what Node cannot do by itself. It opens the TUN device, the raw
// protocol-41 socket and the Foo-over-UDP socket, moves batches of packets between those fds and JS-owned buffers
// (recvmmsg/sendmmsg, drain loops), and watches fds on the main event loop with uv_poll; and it
// sends systemd's readiness datagrams (AF_UNIX, which Node lacks).
// It holds no tunnel logic: every decision about a packet is made in TypeScript.

#include <napi.h>
#include <uv.h>

#include "icmp6.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

void RegisterPeerCred(Napi::Env env, Napi::Object exports);  // native/peercred.cc

namespace {

constexpr int kMaxBatch = 256;
constexpr int kErrInfoStride = 6;  // origin, type, code, info, original destination, errno

// TUN reads and writes through io_uring: the TUN moves one packet per read() or write(), so a
// batch costs one syscall per packet; queued on a ring, a batch of reads or writes is one
// io_uring_enter. Measured with the C reference in bench/ before it came here (same run: 1.26x
// the batched C forwarder on one TCP stream, 1.13x on 64-byte UDP, 0.13 syscalls per packet
// instead of 2.5). One ring per thread, made on first use; where io_uring is missing or refused
// (old kernels, container seccomp profiles, kernel.io_uring_disabled) the syscall loops are used.
#ifdef HAVE_LIBURING
struct Ring {
  struct io_uring ring;
  bool tried = false;
  bool ok = false;
  int readHint = 8;  // reads to queue next time: follows the last batch, so a trickle costs little
  // Why a working ring was given up at run time ("" while it works): the read()/write() loops
  // carry on from the next packet, and status shows this.
  char fallback[96] = "";
};
thread_local Ring tl_ring;

// Gives the ring up for good (this thread) and says why, once.
void RingFallback(const char* what, int err) {
  if (tl_ring.fallback[0] == 0) snprintf(tl_ring.fallback, sizeof tl_ring.fallback, "%s: %s", what, strerror(err));
  tl_ring.ok = false;
}

struct io_uring* GetRing() {
  if (!tl_ring.tried) {
    tl_ring.tried = true;
    tl_ring.ok = io_uring_queue_init(2 * kMaxBatch, &tl_ring.ring, 0) == 0;
  }
  return tl_ring.ok ? &tl_ring.ring : nullptr;
}

// A result no completion can have: the operation's outcome is unknown.
constexpr int32_t kUnknown = INT32_MIN;

// Submits the `want` queued operations, waits for the completions of those the kernel took and
// stores each result at res[user_data]. Returns false if the ring itself failed; then res[i] is
// kUnknown for every operation whose completion was not seen. *submitted is how many the kernel
// took: they are the first ones (the ring is in order), and only those may take effect, so an
// operation at or past *submitted may be redone with a syscall while one before it must not be
// (that could write a packet twice). Waiting for more than were taken would block the JS thread
// for ever; operations left queued would run later on stale slots, so a short submit gives the
// ring up.
bool RingRun(struct io_uring* ring, int want, int32_t* res, int* submitted) {
  for (int i = 0; i < want; i++) res[i] = kUnknown;
  int r;
  // the kernel waits only when it took all `want` (io_uring_enter returns early otherwise)
  do r = io_uring_submit_and_wait(ring, want);
  while (r == -EINTR);
  *submitted = r > 0 ? r : 0;
  if (r < 0) {
    RingFallback("io_uring_enter", -r);
    return false;
  }
  for (int got = 0; got < *submitted; got++) {
    struct io_uring_cqe* cqe;
    int w;
    do w = io_uring_wait_cqe(ring, &cqe);
    while (w == -EINTR);
    if (w < 0) {
      RingFallback("io_uring_wait_cqe", -w);
      return false;
    }
    if (cqe->user_data < static_cast<__u64>(want)) res[cqe->user_data] = cqe->res;
    io_uring_cqe_seen(ring, cqe);
  }
  if (*submitted < want) {
    RingFallback("io_uring short submit", EAGAIN);
    return false;
  }
  return true;
}
#endif

Napi::Value ThrowErrno(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ArgsAre(const Napi::CallbackInfo& info, size_t n) {
  return info.Length() >= n;
}

// openTun(name: string, nonBlocking = true, offload = false) -> { fd, name }
// IFF_TUN | IFF_NO_PI: the fd carries bare IP packets. Close-on-exec; non-blocking unless asked
// (only the benchmark's naive baseline wants a blocking fd, for fs.read on the threadpool).
// The caller decides whether a name may be created or must already exist (TUNSETIFF does both).
Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgsAre(info, 1) || !info[0].IsString()) return ThrowType(env, "openTun(name: string)");
  std::string name = info[0].As<Napi::String>();
  if (name.size() >= IFNAMSIZ) return ThrowType(env, "interface name longer than 15 bytes");
  bool nonBlocking = info.Length() < 2 || !info[1].IsBoolean() || info[1].As<Napi::Boolean>().Value();
  // offload: every frame carries a virtio_net_hdr, and the kernel may hand us TCP/IPv6
  // super-packets (TSO6) with partial checksums, which the engine segments.
  bool offload = info.Length() >= 3 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0));
  if (fd < 0) return ThrowErrno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "ioctl TUNSETIFF", err);
  }
  if (offload && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO6)) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "ioctl TUNSETOFFLOAD", err);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("name", Napi::String::New(env, ifr.ifr_name));
  return out;
}

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

// openRawSocket(localAddr: uint32, pmtuDiscover: number, bufferBytes: number, sendOnly = false) -> fd
// A raw IPv4 socket for protocol 41. The kernel builds the outer header (no IP_HDRINCL), so it
// can fragment when DF is clear (R05) and pick unique IDs; TTL and TOS come per packet as
// ancillary data. IP_RECVERR queues ICMPv4 errors about our packets (R07/R11/R12).
// sendOnly: a second socket that only sends (DF is per socket, not per packet): a filter drops
// everything it would receive, since every raw socket gets its own copy of each packet.
Napi::Value OpenRawSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgsAre(info, 3)) return ThrowType(env, "openRawSocket(localAddr, pmtuDiscover, bufferBytes, sendOnly?)");
  uint32_t local = info[0].As<Napi::Number>().Uint32Value();
  int pmtu = info[1].As<Napi::Number>().Int32Value();
  int bufBytes = info[2].As<Napi::Number>().Int32Value();
  bool sendOnly = info.Length() > 3 && info[3].ToBoolean().Value();
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPV6);
  if (fd < 0) return ThrowErrno(env, "socket(AF_INET, SOCK_RAW, 41)", errno);
  int one = 1;
  auto fail = [&](const char* what) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, what, err);
  };
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0) return fail("setsockopt IP_MTU_DISCOVER");
  if (sendOnly) {
    struct sock_filter dropAll = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {1, &dropAll};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return fail("setsockopt SO_ATTACH_FILTER");
  } else if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) < 0) {
    return fail("setsockopt IP_RECVERR");
  }
  // (a send-only socket's receive buffer stays empty: its filter drops everything)
  SetBufferSizes(fd, bufBytes);
  // Binding fixes our source address and makes the kernel deliver only packets sent to it (R14).
  if (local != 0 && BindLocal(fd, local, 0) < 0) return fail("bind");
  return Napi::Number::New(env, fd);
}

struct Slots {
  uint8_t* base;
  size_t size;
};

bool GetBytes(const Napi::Value& v, Slots* out) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u8 = v.As<Napi::Uint8Array>();
  out->base = u8.Data();
  out->size = u8.ByteLength();
  return true;
}

bool GetInt32s(const Napi::Value& v, int32_t** data, size_t* count) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return false;
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  *data = a.Data();
  *count = a.ElementLength();
  return true;
}

// Common shape of the "read a batch into slots" calls:
//   (fd, arena: Uint8Array, slotSize, headroom, max, lens: Int32Array, ...)
// Packet i lands at arena[i * slotSize + headroom]; its length goes to lens[i].
struct ReadArgs {
  int fd;
  Slots arena;
  int slotSize;
  int headroom;
  int max;
  int32_t* lens;
};

bool ParseReadArgs(const Napi::CallbackInfo& info, ReadArgs* a) {
  if (info.Length() < 6 || !info[0].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber())
    return false;
  size_t nLens = 0;
  if (!GetBytes(info[1], &a->arena) || !GetInt32s(info[5], &a->lens, &nLens)) return false;
  a->fd = info[0].As<Napi::Number>().Int32Value();
  a->slotSize = info[2].As<Napi::Number>().Int32Value();
  a->headroom = info[3].As<Napi::Number>().Int32Value();
  a->max = info[4].As<Napi::Number>().Int32Value();
  // a negative count would pass every upper clamp below and index before the arrays
  if (a->max < 0) return false;
  if (a->max > kMaxBatch) a->max = kMaxBatch;
  if (static_cast<size_t>(a->max) > nLens) a->max = static_cast<int>(nLens);
  if (a->slotSize <= a->headroom || a->headroom < 0) return false;
  size_t slots = a->arena.size / static_cast<size_t>(a->slotSize);
  if (static_cast<size_t>(a->max) > slots) a->max = static_cast<int>(slots);
  return true;
}

// tunRead(fd, arena, slotSize, headroom, max, lens, ring = true) -> packets read (0 when none
// waiting). Reads up to max packets, one per slot; stops at EAGAIN. Errors other than EAGAIN are
// thrown only when no packet was read, so none is lost. With the ring, reads go out in rounds
// (RWF_NOWAIT: an empty queue answers EAGAIN), each round as large as the last batch was.
Napi::Value TunRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadArgs a;
  if (!ParseReadArgs(info, &a)) return ThrowType(env, "tunRead(fd, arena, slotSize, headroom, max, lens)");
  auto slot = [&](int i) { return a.arena.base + static_cast<size_t>(i) * a.slotSize + a.headroom; };
  int n = 0;
#ifdef HAVE_LIBURING
  bool useRing = info.Length() < 7 || !info[6].IsBoolean() || info[6].As<Napi::Boolean>().Value();
  struct io_uring* ring = useRing ? GetRing() : nullptr;
  if (ring) {
    int32_t res[kMaxBatch];
    int want = tl_ring.readHint;
    while (n < a.max) {
      int k = want < a.max - n ? want : a.max - n;
      for (int i = 0; i < k; i++) {
        struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
        io_uring_prep_read(sqe, a.fd, slot(n + i), a.slotSize - a.headroom, static_cast<__u64>(-1));
        sqe->rw_flags = RWF_NOWAIT;
        sqe->user_data = static_cast<__u64>(i);
      }
      int submitted;
      RingRun(ring, k, res, &submitted);  // on failure the syscall loop below takes over for good
      int got = 0;
      for (int i = 0; i < k; i++) {
        if (res[i] >= 0) {
          // a packet can land after an earlier slot found the queue empty: close the gap, in order
          if (got != i) memmove(slot(n + got), slot(n + i), res[i]);
          a.lens[n + got++] = res[i];
        } else if (res[i] == kUnknown || res[i] == -EAGAIN) {
          // not read (a read whose completion was lost took nothing we will see again)
        } else if (res[i] == -EBADFD || res[i] == -EIO) {
          if (n + got == 0) return ThrowErrno(env, "read tun", -res[i]);  // the interface is gone
        } else {
          // Anything else says the ring cannot read this TUN (EINVAL or EOPNOTSUPP from kernels
          // or containers that refuse RWF_NOWAIT or io_uring on it): read() from here on.
          RingFallback("io_uring TUN read", -res[i]);
        }
      }
      n += got;
      if (!tl_ring.ok) break;
      if (got < k) {
        tl_ring.readHint = n > 4 ? n : 4;
        return Napi::Number::New(env, n);
      }
      want = k * 2;
    }
    if (tl_ring.ok) {
      tl_ring.readHint = n;
      return Napi::Number::New(env, n);
    }
  }
#endif
  while (n < a.max) {
    ssize_t r = read(a.fd, slot(n), a.slotSize - a.headroom);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || n > 0) break;
      return ThrowErrno(env, "read tun", errno);
    }
    a.lens[n++] = static_cast<int32_t>(r);
  }
  return Napi::Number::New(env, n);
}

// Common shape of the "write a batch from slots" calls: (fd, arena, offs, lens, n, errs).
struct WriteArgs {
  int fd;
  Slots arena;
  int32_t* offs;
  int32_t* lens;
  int32_t* errs;
  int n;
};

bool ParseWriteArgs(const Napi::CallbackInfo& info, WriteArgs* a) {
  if (info.Length() < 6 || !info[0].IsNumber() || !info[4].IsNumber()) return false;
  size_t nOffs = 0, nLens = 0, nErrs = 0;
  if (!GetBytes(info[1], &a->arena) || !GetInt32s(info[2], &a->offs, &nOffs) || !GetInt32s(info[3], &a->lens, &nLens) ||
      !GetInt32s(info[5], &a->errs, &nErrs))
    return false;
  a->fd = info[0].As<Napi::Number>().Int32Value();
  a->n = info[4].As<Napi::Number>().Int32Value();
  if (a->n < 0 || static_cast<size_t>(a->n) > nOffs || static_cast<size_t>(a->n) > nLens ||
      static_cast<size_t>(a->n) > nErrs || a->n > kMaxBatch)
    return false;
  for (int i = 0; i < a->n; i++) {
    if (a->offs[i] < 0 || a->lens[i] < 0 || static_cast<size_t>(a->offs[i]) + a->lens[i] > a->arena.size) return false;
  }
  return true;
}

// tunWrite(fd, arena, offs, lens, n, errs, ring = true) -> packets written; errs[i] = errno or 0.
// With the ring, the whole batch is one submission.
// write() of packet i of a batch: 1 if written, else 0 with errs[i] = errno.
int WriteOne(WriteArgs& a, int i) {
  ssize_t r;
  do r = write(a.fd, a.arena.base + a.offs[i], a.lens[i]);
  while (r < 0 && errno == EINTR);
  a.errs[i] = r < 0 ? errno : 0;
  return r >= 0 ? 1 : 0;
}

Napi::Value TunWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WriteArgs a;
  if (!ParseWriteArgs(info, &a)) return ThrowType(env, "tunWrite(fd, arena, offs, lens, n, errs): bad arguments or slot outside arena");
  int ok = 0;
#ifdef HAVE_LIBURING
  bool useRing = info.Length() < 7 || !info[6].IsBoolean() || info[6].As<Napi::Boolean>().Value();
  struct io_uring* ring = useRing && a.n > 1 ? GetRing() : nullptr;
  if (ring) {
    for (int i = 0; i < a.n; i++) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
      io_uring_prep_write(sqe, a.fd, a.arena.base + a.offs[i], a.lens[i], static_cast<__u64>(-1));
      sqe->user_data = static_cast<__u64>(i);
    }
    int submitted;
    RingRun(ring, a.n, a.errs, &submitted);
    for (int i = 0; i < a.n; i++) {
      int32_t r = a.errs[i];
      if (r >= 0) {
        a.errs[i] = 0;
        ok++;
      } else if (r == kUnknown) {
        // never submitted: write it below; submitted but unseen: it may have been written, and
        // a second copy is worse than a loss, so it counts as failed
        if (i < submitted) a.errs[i] = EIO;
        else ok += WriteOne(a, i);
      } else if (r == -EBADFD || r == -EIO) {
        a.errs[i] = -r;  // the interface is gone or down: a write() would fail the same way
      } else {
        // The kernel refused this write on the ring. If write() takes the same packet, the ring
        // is at fault (some containers): use write() from here on. If not, the packet was bad.
        if (WriteOne(a, i)) {
          ok++;
          RingFallback("io_uring TUN write", -r);
        }
      }
    }
    return Napi::Number::New(env, ok);
  }
#endif
  for (int i = 0; i < a.n; i++) ok += WriteOne(a, i);
  return Napi::Number::New(env, ok);
}

// Per-packet outer fields, one int32 each (src/packet/ipv4.ts packOuterFields): TTL in bits
// 0-7, TOS in 8-15, DF in bit 16. The kernel writes the outer header; we only say what goes in it.
constexpr int32_t kOuterDf = 1 << 16;
// UDP GSO: at most this many segments per send (UDP_MAX_SEGMENTS on older kernels).
constexpr int kMaxGsoSegments = 64;
// The largest UDP payload of one IPv4 datagram.
constexpr int kMaxUdpPayload = 65535 - 20 - 8;
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

struct SendState {
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];  // one per packet; a GSO message spans several
  struct sockaddr_in addrs[kMaxBatch];
  alignas(struct cmsghdr) uint8_t control[kMaxBatch][CMSG_SPACE(sizeof(int)) * 2 + CMSG_SPACE(sizeof(uint16_t))];
  int fds[kMaxBatch];
  bool dfs[kMaxBatch];
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

// sendBatch(fd, arena, offs, lens, n, errs, dsts, fields, port = 0, dfClearFd = -1, runs = null, nRuns = 0, stats?)
//   -> packets sent; errs[i] = errno or 0.
// Sends payload i (an inner IPv6 packet) to dsts[i] (IPv4, host order) with the TTL, TOS and DF
// of fields[i]: the kernel builds the IPv4 header (and the UDP header when port != 0, for a UDP
// socket). TTL and TOS go as ancillary data; DF is a socket option, so with a dfClearFd the
// packets without DF leave through that socket (IP_PMTUDISC_DONT); with dfClearFd == fd (a UDP
// socket: a second one could not share its port) the option is switched around each DF-clear
// run and back to IP_PMTUDISC_WANT. `runs` (UDP only) groups the packets into messages, runs[m]
// consecutive packets each: a run of more than one goes as one UDP_SEGMENT (GSO) message. Which
// packets may share a message is decided in TypeScript (src/transport/gso.ts); here a run is only
// checked to be one (same destination and fields, equal sizes but for a shorter last one). A GSO
// message the path refuses (EMSGSIZE) is sent again packet by packet, in place, and counted in
// stats[0].
// One sendmmsg per run of messages on one socket. A failed message fails its packets and the
// rest go on (ENOBUFS from a writable socket is a packet the qdisc dropped: the link is full,
// as a wire drops what it cannot carry); a
// failure that may be an earlier ICMP error's report is tried once more; at a full socket
// buffer the rest are marked EAGAIN.
Napi::Value SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WriteArgs a;
  int32_t* dsts = nullptr;
  int32_t* fields = nullptr;
  int32_t* runs = nullptr;
  size_t nDsts = 0, nFields = 0, runsLen = 0;
  const char* usage = "sendBatch(fd, arena, offs, lens, n, errs, dsts, fields, port?, dfClearFd?, runs?, nRuns?, stats?): bad arguments or slot outside arena";
  if (!ParseWriteArgs(info, &a) || info.Length() < 8 || !GetInt32s(info[6], &dsts, &nDsts) || !GetInt32s(info[7], &fields, &nFields) ||
      nDsts < static_cast<size_t>(a.n) || nFields < static_cast<size_t>(a.n))
    return ThrowType(env, usage);
  int port = info.Length() > 8 && info[8].IsNumber() ? info[8].As<Napi::Number>().Int32Value() : 0;
  int dfClearFd = info.Length() > 9 && info[9].IsNumber() ? info[9].As<Napi::Number>().Int32Value() : -1;
  int nRuns = -1;
  int32_t* gsoFallbacks = nullptr;
  if (info.Length() > 11 && info[10].IsTypedArray()) {
    if (!GetInt32s(info[10], &runs, &runsLen) || !info[11].IsNumber()) return ThrowType(env, usage);
    nRuns = info[11].As<Napi::Number>().Int32Value();
    if (nRuns < 0 || static_cast<size_t>(nRuns) > runsLen) return ThrowType(env, usage);
    size_t nStats = 0;
    if (info.Length() > 12 && !(GetInt32s(info[12], &gsoFallbacks, &nStats) && nStats >= 1)) return ThrowType(env, usage);
  }
  SendState& s = send_state;
  bool toggle = dfClearFd >= 0 && dfClearFd == a.fd;
  int nm = 0;
  for (int i = 0; i < a.n;) {
    int k = nRuns < 0 ? 1 : (nm < nRuns ? runs[nm] : 0);
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
    s.fds[nm] = dfClearFd >= 0 && !df ? dfClearFd : a.fd;
    s.dfs[nm] = df;
    nm++;
    i += k;
  }
  if (nRuns >= 0 && nm != nRuns) return ThrowType(env, "sendBatch: runs do not cover the batch");
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
    int ttl = fields[f] & 0xff;
    int tos = (fields[f] >> 8) & 0xff;
    AddCmsg(h, &c, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    AddCmsg(h, &c, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    size_t used = 2 * CMSG_SPACE(sizeof(int));
    if (s.count[m] > 1) {
      uint16_t seg = static_cast<uint16_t>(a.lens[f]);
      AddCmsg(h, &c, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg);
      used += CMSG_SPACE(sizeof seg);
    }
    h->msg_controllen = used;
  }
  int m = 0, sent = 0, retried = -1;
  bool socketDf = true;
  while (m < nm) {
    // a run: consecutive messages for the same socket (and DF, when toggling), in order
    int fd = s.fds[m];
    int run = 1;
    while (m + run < nm && s.fds[m + run] == fd && (!toggle || s.dfs[m + run] == s.dfs[m])) run++;
    if (toggle && s.dfs[m] != socketDf) {
      int v = s.dfs[m] ? IP_PMTUDISC_WANT : IP_PMTUDISC_DONT;
      setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
      socketDf = s.dfs[m];
    }
    int r = sendmmsg(fd, &s.msgs[m], run, 0);
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
      if (gsoFallbacks) (*gsoFallbacks)++;
      struct msghdr* h = &s.msgs[m].msg_hdr;
      h->msg_controllen = 2 * CMSG_SPACE(sizeof(int));  // TTL and TOS, without UDP_SEGMENT
      h->msg_iovlen = 1;
      bool full = false;
      for (int j = s.first[m]; j < s.first[m] + s.count[m]; j++) {
        h->msg_iov = &s.iovs[j];
        ssize_t w;
        do w = sendmsg(fd, h, 0);
        while (w < 0 && errno == EINTR);
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
  if (!socketDf) {
    int v = IP_PMTUDISC_WANT;
    setsockopt(a.fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
  }
  return Napi::Number::New(env, sent);
}

// openUdpSocket(localAddr, port, pmtuDiscover, bufferBytes, checksum = false, gro = false)
//   -> { fd, gso, gro }
// A UDP socket for Foo-over-UDP (Linux net/ipv4/fou: the UDP payload is the IPv6 packet). Bound
// to local:port, it receives from any source port; IP_RECVTOS hands us each datagram's outer TOS
// (R13's ECN); IP_RECVERR queues ICMPv4 errors about what we sent, as on the raw socket.
// checksum false sends a zero UDP checksum (SO_NO_CHECK), as Linux FOU's noencap-csum; the kernel
// refuses UDP GSO without checksums, so gso says whether UDP_SEGMENT may be used. gro asks for
// coalesced datagrams (UDP_GRO); the result says whether the kernel took it.
Napi::Value OpenUdpSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgsAre(info, 4)) return ThrowType(env, "openUdpSocket(localAddr, port, pmtuDiscover, bufferBytes, checksum?, gro?)");
  uint32_t local = info[0].As<Napi::Number>().Uint32Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int pmtu = info[2].As<Napi::Number>().Int32Value();
  int bufBytes = info[3].As<Napi::Number>().Int32Value();
  bool checksum = info.Length() > 4 && info[4].ToBoolean().Value();
  bool wantGro = info.Length() > 5 && info[5].ToBoolean().Value();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return ThrowErrno(env, "socket(AF_INET, SOCK_DGRAM)", errno);
  int one = 1;
  auto fail = [&](const char* what) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, what, err);
  };
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0) return fail("setsockopt IP_MTU_DISCOVER");
  if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) < 0) return fail("setsockopt IP_RECVERR");
  if (setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one) < 0) return fail("setsockopt IP_RECVTOS");
  if (!checksum && setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) < 0) return fail("setsockopt SO_NO_CHECK");
  SetBufferSizes(fd, bufBytes);
  // A zero UDP_SEGMENT is accepted by kernels that know the option and changes nothing.
  int zero = 0;
  bool gso = checksum && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
  bool gro = wantGro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  if (BindLocal(fd, local, port) < 0) return fail("bind");
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("gso", Napi::Boolean::New(env, gso));
  out.Set("gro", Napi::Boolean::New(env, gro));
  return out;
}

constexpr int kUdpInfoStride = 4;  // source address, source port, TOS, GRO segment size (0: one datagram)

struct UdpRecvState {
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
  struct sockaddr_in from[kMaxBatch];
  alignas(struct cmsghdr) uint8_t control[kMaxBatch][CMSG_SPACE(sizeof(int)) * 2];
};
thread_local UdpRecvState udp_recv_state;

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

struct RecvState {
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
};
thread_local RecvState recv_state;

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

// notifySocket(address, message) -> undefined; throws with errno.
// systemd's readiness protocol (sd_notify(3)) is one datagram per message to the AF_UNIX socket
// named by $NOTIFY_SOCKET, and Node has no AF_UNIX datagram sockets. "@" first names the abstract
// namespace (the address is then exactly that many bytes, no terminating NUL, as sd_notify sends
// it). A socket per message, as sd_notify does: nothing to keep open across a privilege drop.
// MSG_DONTWAIT: a manager that stopped reading must never stall the event loop (and the data path
// with it); a full queue is EAGAIN, which the caller logs and moves past.
Napi::Value NotifySocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) return ThrowType(env, "notifySocket(address: string, message: string)");
  std::string address = info[0].As<Napi::String>();
  std::string message = info[1].As<Napi::String>();
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  bool abstract = !address.empty() && address[0] == '@';
  // A filesystem path needs room for its NUL; an abstract name may fill sun_path.
  if (address.empty() || address.size() > sizeof sa.sun_path - (abstract ? 0 : 1)) return ThrowErrno(env, "notify socket address", address.empty() ? EINVAL : ENAMETOOLONG);
  memcpy(sa.sun_path, address.data(), address.size());
  if (abstract) sa.sun_path[0] = 0;
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + address.size() + (abstract ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket AF_UNIX", errno);
  ssize_t r;
  do r = sendto(fd, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa), len);
  while (r < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (r < 0) return ThrowErrno(env, "sendto NOTIFY_SOCKET", err);
  return env.Undefined();
}

// lockFile(path) -> fd holding an exclusive flock on path (created 0644 if missing), or -1 when
// another process holds it. Node has no flock. The lock lives as long as the fd (close-on-exec,
// so no child keeps it) and dies with the process, so a crashed owner leaves nothing to clean.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "lockFile(path)");
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return ThrowErrno(env, "open lock file", errno);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return Napi::Number::New(env, -1);
    return ThrowErrno(env, "flock", err);
  }
  return Napi::Number::New(env, fd);
}

// dropPrivileges(uid, gid) -> undefined
// Becomes uid/gid (no supplementary groups) while keeping exactly CAP_NET_ADMIN and CAP_NET_RAW
// (also the only ones left in the bounding set, with no_new_privs),
// also as ambient capabilities so the `ip` commands run at teardown or on an address change
// inherit them. Capabilities are per thread: this runs on the main thread, which is the one that
// opens sockets and spawns children; glibc applies the uid/gid change to every thread.
Napi::Value DropPrivileges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) return ThrowType(env, "dropPrivileges(uid, gid)");
  uid_t uid = info[0].As<Napi::Number>().Uint32Value();
  gid_t gid = info[1].As<Napi::Number>().Uint32Value();
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return ThrowErrno(env, "prctl PR_SET_KEEPCAPS", errno);
  if (setgroups(0, nullptr) < 0) return ThrowErrno(env, "setgroups", errno);
  // Nothing beyond the two can be regained, by us or by a child: bound them, and no setuid or
  // file-capability program may add privileges (the children are `ip` at teardown). Without
  // CAP_SETPCAP (started with just the two capabilities) the bounding set is the supervisor's.
  for (int c = 0; c <= 63; c++) {
    if (c == CAP_NET_ADMIN || c == CAP_NET_RAW) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
      if (errno == EINVAL || errno == EPERM) break;  // past the kernel's last capability, or not ours to drop
      return ThrowErrno(env, "prctl PR_CAPBSET_DROP", errno);
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return ThrowErrno(env, "prctl PR_SET_NO_NEW_PRIVS", errno);
  if (setresgid(gid, gid, gid) < 0) return ThrowErrno(env, "setresgid", errno);
  if (setresuid(uid, uid, uid) < 0) return ThrowErrno(env, "setresuid", errno);
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[2];
  memset(&hdr, 0, sizeof hdr);
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  uint32_t keep = (1u << CAP_NET_ADMIN) | (1u << CAP_NET_RAW);
  data[0].effective = data[0].permitted = data[0].inheritable = keep;
  if (syscall(SYS_capset, &hdr, data) < 0) return ThrowErrno(env, "capset", errno);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0) < 0) return ThrowErrno(env, "prctl PR_CAP_AMBIENT NET_ADMIN", errno);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0) < 0) return ThrowErrno(env, "prctl PR_CAP_AMBIENT NET_RAW", errno);
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  return env.Undefined();
}

// Poller: the one uv_poll handle of an fd on the main loop (libuv refuses a second one for the
// same fd: uv_poll_init fails with EEXIST), calling back into JS when the fd is readable and/or
// writable, as asked by start(events): kPollReadable | kPollWritable. Calling start again changes
// what it waits for. The callback gets those bits, or a negative libuv status.
// The callback runs with the Poller object as receiver (napi_make_callback needs an object).
constexpr int kPollReadable = 1;
constexpr int kPollWritable = 2;

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close)});
  }

  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new Poller(fd, callback)").ThrowAsJavaScriptException();
      return;
    }
    env_ = env;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    handle_->data = this;
    int err = uv_poll_init(loop, handle_, info[0].As<Napi::Number>().Int32Value());
    if (err != 0) {
      delete handle_;
      handle_ = nullptr;
      Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(err)).ThrowAsJavaScriptException();
    }
  }

  ~Poller() override { CloseHandle(); }

 private:
  // start(events = kPollReadable)
  void Start(const Napi::CallbackInfo& info) {
    int want = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : kPollReadable;
    int events = ((want & kPollReadable) ? UV_READABLE : 0) | ((want & kPollWritable) ? UV_WRITABLE : 0);
    if (!handle_) return;
    if (events == 0) return StopPolling();
    if (active_ && events == events_) return;
    int err = uv_poll_start(handle_, events, OnPoll);
    if (err != 0) {
      Napi::Error::New(info.Env(), std::string("uv_poll_start: ") + uv_strerror(err)).ThrowAsJavaScriptException();
      return;
    }
    events_ = events;
    if (!active_) {
      active_ = true;
      Ref();  // keep the JS object (and so this) alive while it can be called back
    }
  }

  void Stop(const Napi::CallbackInfo&) { StopPolling(); }

  void Close(const Napi::CallbackInfo&) { CloseHandle(); }

  void StopPolling() {
    if (!handle_ || !active_) return;
    uv_poll_stop(handle_);
    active_ = false;
    Unref();
  }

  void CloseHandle() {
    StopPolling();
    if (!handle_) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Poller* self = static_cast<Poller*>(handle->data);
    if (!self || !self->active_) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    int bits = ((events & UV_READABLE) ? kPollReadable : 0) | ((events & UV_WRITABLE) ? kPollWritable : 0);
    self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, status < 0 ? status : bits)});
    if (env.IsExceptionPending()) {
      // No JS frame is above us: route the exception to process 'uncaughtException'.
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_fatal_exception(env, e);
    }
    // libuv stops a poll handle on POLLERR (status UV_EBADF). For a socket POLLERR means "error
    // queued", which the callback has just drained: keep watching.
    if (status < 0 && self->handle_ && self->active_ && uv_poll_start(self->handle_, self->events_, OnPoll) != 0) {
      self->StopPolling();
    }
  }

  Napi::Env env_{nullptr};
  Napi::FunctionReference callback_;
  uv_poll_t* handle_ = nullptr;
  bool active_ = false;
  int events_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openTun", Napi::Function::New(env, OpenTun));
  exports.Set("openRawSocket", Napi::Function::New(env, OpenRawSocket));
  exports.Set("tunRead", Napi::Function::New(env, TunRead));
  exports.Set("tunWrite", Napi::Function::New(env, TunWrite));
  exports.Set("sendBatch", Napi::Function::New(env, SendBatch));
  exports.Set("openUdpSocket", Napi::Function::New(env, OpenUdpSocket));
  exports.Set("udpRecv", Napi::Function::New(env, UdpRecv));
  exports.Set("rawRecv", Napi::Function::New(env, RawRecv));
  exports.Set("recvErrors", Napi::Function::New(env, RecvErrors));
  exports.Set("dropPrivileges", Napi::Function::New(env, DropPrivileges));
  exports.Set("lockFile", Napi::Function::New(env, LockFile));
  exports.Set("notifySocket", Napi::Function::New(env, NotifySocket));
  RegisterPeerCred(env, exports);
  exports.Set("Poller", Poller::Define(env));
  RegisterIcmp6(env, exports);
  exports.Set("MAX_BATCH", Napi::Number::New(env, kMaxBatch));
  exports.Set("POLL_READABLE", Napi::Number::New(env, kPollReadable));
  exports.Set("POLL_WRITABLE", Napi::Number::New(env, kPollWritable));
#ifdef HAVE_LIBURING
  exports.Set("IO_URING_COMPILED", Napi::Boolean::New(env, true));
#else
  exports.Set("IO_URING_COMPILED", Napi::Boolean::New(env, false));
#endif
  exports.Set("ioUringFallback", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
#ifdef HAVE_LIBURING
    if (tl_ring.fallback[0] != 0) return Napi::String::New(info.Env(), tl_ring.fallback);
#endif
    return info.Env().Null();
  }));
  exports.Set("ioUringAvailable", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
#ifdef HAVE_LIBURING
    return Napi::Boolean::New(info.Env(), GetRing() != nullptr);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
  }));
  return exports;
}

}  // namespace

NODE_API_MODULE(tun6in4_native, Init)
