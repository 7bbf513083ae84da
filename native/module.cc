// The addon's export list: what Node cannot do by itself, as calls into JS-owned buffers.
//
// It opens the TUN device, the raw protocol-41 socket, the Foo-over-UDP socket and the ICMPv6
// router-advertisement socket, moves batches of packets between those fds and JS-owned slots, and
// watches fds on the main event loop; it also does the few OS services Node lacks. It holds no
// tunnel logic: every decision about a packet is made in TypeScript (src/io/native.ts types it).
// One file per job: args.cc (arguments and slots), ring.cc (io_uring), tun.cc, sockets.cc, os.cc,
// peercred.cc, icmp6.cc, netlink.cc (rtnetlink requests), poller.cc (readiness: uv_poll, or a poll thread); addon.h holds what they share.

#include "addon.h"

namespace {

using namespace t6;

void Fn(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback f) {
  exports.Set(name, Napi::Function::New(env, [f](const Napi::CallbackInfo& info) {
    g_crossings++;
    return f(info);
  }, name));
}

Napi::Value Crossings(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(g_crossings)); }

void Int(Napi::Env env, Napi::Object exports, const char* name, double v) { exports.Set(name, Napi::Number::New(env, v)); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The TUN (tun.cc)
  Fn(env, exports, "openTun", OpenTun);    // (name, nonBlocking = true, offloadFlags = 0) -> { fd, name }
  Fn(env, exports, "tunRead", TunRead);    // (fd, arena, slotSize, headroom, max, lens, ring = true) -> n
  Fn(env, exports, "tunWrite", TunWrite);  // (fd, arena, offs, lens, n, errs, ring = true) -> n written
  Fn(env, exports, "tunWritev", TunWritev);  // (fd, arena, offs, lens, n, errs, ring, pieces) -> frames written
  // TUNSETOFFLOAD flags for openTun's offloadFlags
  Int(env, exports, "TUN_F_CSUM", kTunFCsum);
  Int(env, exports, "TUN_F_TSO4", kTunFTso4);
  Int(env, exports, "TUN_F_TSO6", kTunFTso6);
  Int(env, exports, "TUN_F_TSO_ECN", kTunFTsoEcn);
  Int(env, exports, "TUN_F_UFO", kTunFUfo);
  Int(env, exports, "TUN_F_USO4", kTunFUso4);
  Int(env, exports, "TUN_F_USO6", kTunFUso6);

  // The outer sockets (sockets.cc)
  Fn(env, exports, "openRawSocket", OpenRawSocket);  // (localAddr, pmtuDiscover, bufferBytes, sendOnly = false) -> fd
  Fn(env, exports, "openUdpSocket", OpenUdpSocket);  // (localAddr, port, pmtuDiscover, bufferBytes, checksum, gro) -> { fd, gso, gro }
  Fn(env, exports, "setSendOptions", SetSendOptions);  // (fd, { port, dfClearFd, toggleDf, checksumGsoOnly, stats }): fixed when the socket opens
  Fn(env, exports, "sendBatch", SendBatch);  // (fd, batch, n, runs?) -> n sent
  Fn(env, exports, "rawRecv", RawRecv);      // (fd, arena, slotSize, headroom, max, lens) -> n, or -errno
  Fn(env, exports, "udpRecv", UdpRecv);      // (fd, arena, slotSize, headroom, max, lens, info) -> n, or -errno
  Fn(env, exports, "recvErrors", RecvErrors);  // (fd, arena, slotSize, headroom, max, lens, info) -> n
  Fn(env, exports, "setReceiveFilter", SetReceiveFilter);  // (fd, prog: Int32Array | null)
  // The layouts those calls share with TypeScript
  Int(env, exports, "MAX_BATCH", kMaxBatch);
  Int(env, exports, "BATCH_COLUMNS", kBatchColumns);
  Int(env, exports, "BATCH_OFFS", kBatchOffs);
  Int(env, exports, "BATCH_LENS", kBatchLens);
  Int(env, exports, "BATCH_DSTS", kBatchDsts);
  Int(env, exports, "BATCH_FIELDS", kBatchFields);
  Int(env, exports, "BATCH_ERRS", kBatchErrs);
  Int(env, exports, "OUTER_TTL_SHIFT", kOuterTtlShift);
  Int(env, exports, "OUTER_TOS_SHIFT", kOuterTosShift);
  Int(env, exports, "OUTER_DF", kOuterDf);
  Int(env, exports, "ERROR_INFO_STRIDE", kErrInfoStride);
  Int(env, exports, "UDP_INFO_STRIDE", kUdpInfoStride);
  Int(env, exports, "GSO_MAX_SEGMENTS", kMaxGsoSegments);
  Int(env, exports, "GSO_MAX_BYTES", kMaxUdpPayload);

  // The ICMPv6 socket for router advertisements (icmp6.cc)
  Fn(env, exports, "openIcmp6Socket", OpenIcmp6Socket);  // (ifname) -> { fd, ifindex }
  Fn(env, exports, "icmp6Recv", Icmp6Recv);              // (fd, buf, src, meta) -> bytes, or -1
  Fn(env, exports, "icmp6Send", Icmp6Send);              // (fd, buf, len, dst, ifindex)

  // rtnetlink, for interface set-up (netlink.cc; the messages are built and read in src/tun/netlink.ts)
  Fn(env, exports, "openNetlinkRoute", OpenNetlinkRoute);  // () -> fd
  Fn(env, exports, "netlinkRequest", NetlinkRequest);      // (fd, request, length, seq, reply, timeoutMs) -> bytes of answers

  // Readiness on the main loop (poller.cc)
  exports.Set("Poller", PollerClass(env));  // new Poller(fd, cb); start(events), stop(), close()
  // The same over an addon-owned epoll thread, for runtimes without libuv
  exports.Set("ThreadPoller", ThreadPollerClass(env));  // new ThreadPoller(fd, cb); start(events), stop(), close()
  Int(env, exports, "POLL_READABLE", kPollReadable);
  Int(env, exports, "POLL_WRITABLE", kPollWritable);

  // io_uring (ring.cc)
  exports.Set("IO_URING_COMPILED", Napi::Boolean::New(env, IoUringCompiled()));  // built with liburing
  Fn(env, exports, "ioUringAvailable", IoUringAvailable);  // () -> this thread has a ring
  Fn(env, exports, "ioUringFallback", IoUringFallback);    // () -> why the ring was given up, or null

  // Boundary crossings so far: every call above, each poller callback and Poller method
  exports.Set("crossings", Napi::Function::New(env, Crossings, "crossings"));  // () -> count

  // OS services (os.cc, peercred.cc)
  Fn(env, exports, "notifySocket", NotifySocket);      // (address, message): one sd_notify datagram
  Fn(env, exports, "flock", Flock);                    // (fd) -> true: holds an exclusive flock, false: another process does
  Fn(env, exports, "closeFd", CloseFd);                // (fd): close an fd the addon opened
  Fn(env, exports, "dropPrivileges", DropPrivileges);  // (uid, gid): keeps CAP_NET_ADMIN and CAP_NET_RAW
  Fn(env, exports, "peerCredentials", PeerCredentials);  // (fd) -> { pid, uid, gid } of an AF_UNIX peer
  return exports;
}

}  // namespace

NODE_API_MODULE(tun6in4_native, Init)
