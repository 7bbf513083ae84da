// What the addon's files share: the layouts JS and C both read (exported by module.cc so a test
// can hold TypeScript to them), the argument and slot helpers, and every exported call.
#pragma once

#include <napi.h>

#include <stddef.h>
#include <stdint.h>

#include <string>

struct io_uring;  // liburing.h, included where the ring is used

namespace t6 {

// ---- Layouts shared with TypeScript (module.cc exports each; test/native.test.ts compares) ----

// The most packets one call moves (src/io/slots.ts MAX_BATCH).
constexpr int kMaxBatch = 256;
// Per-packet outer fields, one int32 each (src/packet/ipv4.ts packOuterFields): TTL in bits 0-7,
// TOS in bits 8-15, DF in bit 16. The kernel writes the outer header; we only say what goes in it.
constexpr int kOuterTtlShift = 0;
constexpr int kOuterTosShift = 8;
constexpr int32_t kOuterDf = 1 << 16;
// A batch value's per-packet columns (src/io/batch.ts BatchColumn): one Int32Array of
// kBatchColumns * kMaxBatch ints, column c at [c * kMaxBatch, (c + 1) * kMaxBatch).
constexpr int kBatchOffs = 0;
constexpr int kBatchLens = 1;
constexpr int kBatchDsts = 2;
constexpr int kBatchFields = 3;
constexpr int kBatchErrs = 4;
constexpr int kBatchColumns = 5;
// recvErrors' info per error (src/io/batch.ts ERROR_INFO_STRIDE): origin, ICMP type,
// code, info, original destination, errno.
constexpr int kErrInfoStride = 6;
// udpRecv's info per datagram (src/transport/fou.ts UDP_INFO_STRIDE): source address, source
// port, TOS, GRO segment size (0: one datagram).
constexpr int kUdpInfoStride = 4;
// UDP GSO limits a run is checked against (src/transport/gso.ts): segments per send
// (UDP_MAX_SEGMENTS on older kernels) and the largest UDP payload of one IPv4 datagram.
constexpr int kMaxGsoSegments = 64;
constexpr int kMaxUdpPayload = 65535 - 20 - 8;
// TUNSETOFFLOAD flags (linux/if_tun.h; USO4/USO6 from Linux 6.2, defined here for older headers):
// what openTun may ask the kernel to hand over unsegmented or without checksums.
constexpr uint32_t kTunFCsum = 0x01;
constexpr uint32_t kTunFTso4 = 0x02;
constexpr uint32_t kTunFTso6 = 0x04;
constexpr uint32_t kTunFTsoEcn = 0x08;
constexpr uint32_t kTunFUfo = 0x10;
constexpr uint32_t kTunFUso4 = 0x20;
constexpr uint32_t kTunFUso6 = 0x40;
// Poller.start's event bits.
constexpr int kPollReadable = 1;
constexpr int kPollWritable = 2;

// ---- Errors and arguments (args.cc) ----

// Throws an Error carrying errno and syscall; returns undefined for the caller to return.
// Calls from JS into the addon and callbacks from it into JS, on the main thread: what a packet
// costs in boundary crossings is this over the packets moved (the bench reports it).
extern uint64_t g_crossings;

Napi::Value ThrowErrno(Napi::Env env, const std::string& what, int err);
Napi::Value ThrowType(Napi::Env env, const char* msg);

// A JS-owned byte buffer (a Uint8Array or Buffer).
struct Slots {
  uint8_t* base;
  size_t size;
};
bool GetBytes(const Napi::Value& v, Slots* out);
bool GetInt32s(const Napi::Value& v, int32_t** data, size_t* count);

// The "read a batch into slots" calls: (fd, arena: Uint8Array, slotSize, headroom, max, lens, ...).
// Packet i lands at arena[i * slotSize + headroom]; its length goes to lens[i]. max is cut to
// kMaxBatch, to lens and to the slots the arena holds.
struct ReadArgs {
  int fd;
  Slots arena;
  int slotSize;
  int headroom;
  int max;
  int32_t* lens;

  uint8_t* slot(int i) const { return arena.base + static_cast<size_t>(i) * slotSize + headroom; }
  size_t room() const { return static_cast<size_t>(slotSize - headroom); }
};
bool ParseReadArgs(const Napi::CallbackInfo& info, ReadArgs* a);

// The "write a batch from slots" calls: (fd, arena, offs, lens, n, errs, ...); every packet is
// checked to lie inside the arena before anything is written.
struct WriteArgs {
  int fd;
  Slots arena;
  int32_t* offs;
  int32_t* lens;
  int32_t* errs;
  int n;
};
bool ParseWriteArgs(const Napi::CallbackInfo& info, WriteArgs* a);

// A batch value (src/io/batch.ts PacketBatch: { arena, columns }) with its first n packets
// checked to lie inside the arena; dsts and fields point at their columns.
struct BatchArgs : WriteArgs {
  int32_t* dsts;
  int32_t* fields;
};
bool ParseBatch(const Napi::Value& batch, int fd, int n, BatchArgs* a);

// ---- Opening a socket (sockets.cc), for sockets.cc and icmp6.cc ----

// A socket being set up, non-blocking and close-on-exec from socket() on. The first step that
// fails throws its errno under the step's name, and every step after it does nothing and fails
// too, so an open call returns at its first failure; the socket is closed unless Release took it.
class OpeningSocket {
 public:
  OpeningSocket(Napi::Env env, int domain, int type, int protocol, const char* what);
  ~OpeningSocket();
  OpeningSocket(const OpeningSocket&) = delete;
  OpeningSocket& operator=(const OpeningSocket&) = delete;
  // False once a step failed, its error thrown: the caller returns env.Undefined().
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool Option(int level, int name, const void* value, unsigned size, const char* what);
  bool Option(int level, int name, int value, const char* what) { return Option(level, name, &value, sizeof value, what); }
  // A step of the caller's own on fd() (a bind, say) that returned `result`: < 0 failed, with errno.
  bool Check(int result, const char* what);
  // The fd, now the caller's.
  int Release();

 private:
  Napi::Env env_;
  int fd_;
};

// ---- The io_uring ring of this thread (ring.cc), for tun.cc ----
#ifdef HAVE_LIBURING
// A result no completion can have: the operation's outcome is unknown.
constexpr int32_t kRingUnknown = INT32_MIN;
struct io_uring* GetRing();
bool RingOk();
int& RingReadHint();
void RingFallback(const char* what, int err);
bool RingRun(struct io_uring* ring, int want, int32_t* res, int* submitted);
#endif

// ---- The exported calls, by file (module.cc lists them with their JS signatures) ----

// ring.cc
bool IoUringCompiled();
Napi::Value IoUringAvailable(const Napi::CallbackInfo& info);
Napi::Value IoUringFallback(const Napi::CallbackInfo& info);
// tun.cc
Napi::Value OpenTun(const Napi::CallbackInfo& info);
Napi::Value TunRead(const Napi::CallbackInfo& info);
Napi::Value TunWrite(const Napi::CallbackInfo& info);
Napi::Value TunWritev(const Napi::CallbackInfo& info);
// sockets.cc
Napi::Value OpenRawSocket(const Napi::CallbackInfo& info);
Napi::Value OpenUdpSocket(const Napi::CallbackInfo& info);
Napi::Value SetSendOptions(const Napi::CallbackInfo& info);
void ForgetSendOptions(int fd);
Napi::Value SendBatch(const Napi::CallbackInfo& info);
Napi::Value RawRecv(const Napi::CallbackInfo& info);
Napi::Value UdpRecv(const Napi::CallbackInfo& info);
Napi::Value RecvErrors(const Napi::CallbackInfo& info);
Napi::Value SetReceiveFilter(const Napi::CallbackInfo& info);
// os.cc
Napi::Value NotifySocket(const Napi::CallbackInfo& info);
Napi::Value Flock(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
Napi::Value DropPrivileges(const Napi::CallbackInfo& info);
// peercred.cc
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
// icmp6.cc
Napi::Value OpenIcmp6Socket(const Napi::CallbackInfo& info);
Napi::Value Icmp6Recv(const Napi::CallbackInfo& info);
Napi::Value Icmp6Send(const Napi::CallbackInfo& info);
// netlink.cc
Napi::Value OpenNetlinkRoute(const Napi::CallbackInfo& info);
Napi::Value NetlinkRequest(const Napi::CallbackInfo& info);
// poller.cc
Napi::Function PollerClass(Napi::Env env);
Napi::Function ThreadPollerClass(Napi::Env env);

}  // namespace t6
