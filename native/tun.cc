// The TUN device: opening it (TUNSETIFF, and TUNSETOFFLOAD with the caller's flags) and moving
// batches of packets between its fd and JS-owned slots, through the ring or read()/write().

#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

namespace t6 {

static_assert(kTunFCsum == TUN_F_CSUM && kTunFTso4 == TUN_F_TSO4 && kTunFTso6 == TUN_F_TSO6 && kTunFTsoEcn == TUN_F_TSO_ECN &&
              kTunFUfo == TUN_F_UFO, "linux/if_tun.h disagrees with addon.h");
#ifdef TUN_F_USO4
static_assert(kTunFUso4 == TUN_F_USO4 && kTunFUso6 == TUN_F_USO6, "linux/if_tun.h disagrees with addon.h");
#endif

namespace {

// "CSUM|TSO6", the unknown bits in hex: what an ioctl error names, so a caller can retry with fewer.
std::string FlagNames(uint32_t flags) {
  static const struct {
    uint32_t bit;
    const char* name;
  } kNames[] = {{kTunFCsum, "CSUM"}, {kTunFTso4, "TSO4"}, {kTunFTso6, "TSO6"}, {kTunFTsoEcn, "TSO_ECN"},
                {kTunFUfo, "UFO"},   {kTunFUso4, "USO4"}, {kTunFUso6, "USO6"}};
  std::string out;
  for (const auto& n : kNames) {
    if (!(flags & n.bit)) continue;
    if (!out.empty()) out += '|';
    out += n.name;
    flags &= ~n.bit;
  }
  if (flags) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%x", flags);
    if (!out.empty()) out += '|';
    out += hex;
  }
  return out;
}

}  // namespace

// openTun(name: string, nonBlocking = true, offloadFlags = 0) -> { fd, name }
// IFF_TUN | IFF_NO_PI: the fd carries bare IP packets. Close-on-exec; non-blocking unless asked
// (only the benchmark's naive baseline wants a blocking fd, for fs.read on the threadpool).
// The caller decides whether a name may be created or must already exist (TUNSETIFF does both).
// offloadFlags != 0: every frame carries a virtio_net_hdr (IFF_VNET_HDR) and TUNSETOFFLOAD gets
// the flags (TUN_F_*), so the kernel may hand over super-packets with partial checksums, which
// the engine segments. A refused TUNSETOFFLOAD (EINVAL: a flag this kernel lacks) throws an error
// naming the flags, with `flags` set, and leaves no device behind.
Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "openTun(name: string, nonBlocking?: boolean, offloadFlags?: number of TUN_F_* bits)";
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, usage);
  std::string name = info[0].As<Napi::String>();
  if (name.size() >= IFNAMSIZ) return ThrowType(env, "interface name longer than 15 bytes");
  bool nonBlocking = info.Length() < 2 || !info[1].IsBoolean() || info[1].As<Napi::Boolean>().Value();
  uint32_t offload = 0;
  if (info.Length() >= 3 && !info[2].IsUndefined()) {
    if (!info[2].IsNumber()) return ThrowType(env, usage);
    offload = info[2].As<Napi::Number>().Uint32Value();
  }
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
  if (offload && ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(offload)) < 0) {
    int err = errno;
    close(fd);
    char hex[16];
    snprintf(hex, sizeof hex, "0x%x", offload);
    Napi::Error e = Napi::Error::New(env, std::string("ioctl TUNSETOFFLOAD ") + hex + " (" + FlagNames(offload) + "): " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("syscall", Napi::String::New(env, "ioctl TUNSETOFFLOAD"));
    e.Set("flags", Napi::Number::New(env, offload));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("name", Napi::String::New(env, ifr.ifr_name));
  return out;
}

// tunRead(fd, arena, slotSize, headroom, max, lens, ring = true) -> packets read (0 when none
// waiting). Reads up to max packets, one per slot; stops at EAGAIN. Errors other than EAGAIN are
// thrown only when no packet was read, so none is lost. With the ring, reads go out in rounds
// (RWF_NOWAIT: an empty queue answers EAGAIN), each round as large as the last batch was.
Napi::Value TunRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadArgs a;
  if (!ParseReadArgs(info, &a)) return ThrowType(env, "tunRead(fd, arena, slotSize, headroom, max, lens)");
  // A read of nothing would teach the ring to queue nothing next time, and a round of nothing
  // never ends; max (as cut to the slots of the arena and the entries of lens) must be at least 1.
  if (a.max < 1) return ThrowType(env, "tunRead: max is 0 (or the arena or lens hold no slot): pass at least one slot to read into");
  int n = 0;
#ifdef HAVE_LIBURING
  bool useRing = info.Length() < 7 || !info[6].IsBoolean() || info[6].As<Napi::Boolean>().Value();
  struct io_uring* ring = useRing ? GetRing() : nullptr;
  if (ring) {
    int32_t res[kMaxBatch];
    int want = RingReadHint();
    while (n < a.max) {
      int k = want < a.max - n ? want : a.max - n;
      for (int i = 0; i < k; i++) {
        struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
        io_uring_prep_read(sqe, a.fd, a.slot(n + i), a.room(), static_cast<__u64>(-1));
        sqe->rw_flags = RWF_NOWAIT;
        sqe->user_data = static_cast<__u64>(i);
      }
      int submitted;
      RingRun(ring, k, res, &submitted);  // on failure the syscall loop below takes over for good
      int got = 0;
      for (int i = 0; i < k; i++) {
        if (res[i] >= 0) {
          // a packet can land after an earlier slot found the queue empty: close the gap, in order
          if (got != i) memmove(a.slot(n + got), a.slot(n + i), res[i]);
          a.lens[n + got++] = res[i];
        } else if (res[i] == kRingUnknown || res[i] == -EAGAIN) {
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
      if (!RingOk()) break;
      if (got < k) {
        RingReadHint() = n > 4 ? n : 4;
        return Napi::Number::New(env, n);
      }
      want = k * 2;
    }
    if (RingOk()) {
      RingReadHint() = n;
      return Napi::Number::New(env, n);
    }
  }
#endif
  while (n < a.max) {
    ssize_t r = read(a.fd, a.slot(n), a.room());
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || n > 0) break;
      return ThrowErrno(env, "read tun", errno);
    }
    a.lens[n++] = static_cast<int32_t>(r);
  }
  return Napi::Number::New(env, n);
}

namespace {

// write() of packet i of a batch: 1 if written, else 0 with errs[i] = errno.
int WriteOne(WriteArgs& a, int i) {
  ssize_t r;
  do r = write(a.fd, a.arena.base + a.offs[i], a.lens[i]);
  while (r < 0 && errno == EINTR);
  a.errs[i] = r < 0 ? errno : 0;
  return r >= 0 ? 1 : 0;
}

}  // namespace

// tunWrite(fd, arena, offs, lens, n, errs, ring = true) -> packets written; errs[i] = errno or 0.
// With the ring, the whole batch is one submission.
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
      } else if (r == kRingUnknown) {
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

namespace {

// The iovecs of one tunWritev call: every entry is one piece, and a call has at most kMaxBatch.
thread_local struct iovec tl_iov[kMaxBatch];
// tl_first[f]: frame f's first piece; tl_first[frames] is one past the last.
thread_local int tl_first[kMaxBatch + 1];

// writev() of frame f: 1 if written, else 0 with errs[f] = errno.
int WriteFrame(WriteArgs& a, int f) {
  ssize_t r;
  do r = writev(a.fd, tl_iov + tl_first[f], tl_first[f + 1] - tl_first[f]);
  while (r < 0 && errno == EINTR);
  a.errs[f] = r < 0 ? errno : 0;
  return r >= 0 ? 1 : 0;
}

}  // namespace

// tunWritev(fd, arena, offs, lens, n, errs, ring, pieces) -> frames written. Entries [0, n) of
// offs/lens are the pieces of frames laid end to end: frame f is the next pieces[f] entries
// (pieces stop at a 0 or when they reach n), written with one writev (one ring entry); errs[f]
// = errno or 0. A frame merged from many received segments goes to the kernel straight from
// where they were received, with no copy into one buffer first.
Napi::Value TunWritev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WriteArgs a;
  int32_t* pieces = nullptr;
  size_t nPieces = 0;
  if (!ParseWriteArgs(info, &a) || info.Length() < 8 || !GetInt32s(info[7], &pieces, &nPieces))
    return ThrowType(env, "tunWritev(fd, arena, offs, lens, n, errs, ring, pieces): bad arguments or piece outside arena");
  int frames = 0, e = 0;
  while (e < a.n && static_cast<size_t>(frames) < nPieces && pieces[frames] > 0) {
    if (pieces[frames] > a.n - e) break;
    tl_first[frames++] = e;
    e += pieces[frames - 1];
  }
  if (e != a.n) return ThrowType(env, "tunWritev: pieces do not add up to n");
  tl_first[frames] = e;
  for (int i = 0; i < a.n; i++) {
    tl_iov[i].iov_base = a.arena.base + a.offs[i];
    tl_iov[i].iov_len = static_cast<size_t>(a.lens[i]);
  }
  int ok = 0;
#ifdef HAVE_LIBURING
  bool useRing = !info[6].IsBoolean() || info[6].As<Napi::Boolean>().Value();
  struct io_uring* ring = useRing && frames > 1 ? GetRing() : nullptr;
  if (ring) {
    for (int f = 0; f < frames; f++) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
      io_uring_prep_writev(sqe, a.fd, tl_iov + tl_first[f], static_cast<unsigned>(tl_first[f + 1] - tl_first[f]), static_cast<__u64>(-1));
      sqe->user_data = static_cast<__u64>(f);
    }
    int submitted;
    RingRun(ring, frames, a.errs, &submitted);
    for (int f = 0; f < frames; f++) {
      int32_t r = a.errs[f];
      if (r >= 0) {
        a.errs[f] = 0;
        ok++;
      } else if (r == kRingUnknown) {
        // as tunWrite: never submitted, write it now; submitted but unseen, count it failed
        if (f < submitted) a.errs[f] = EIO;
        else ok += WriteFrame(a, f);
      } else if (r == -EBADFD || r == -EIO) {
        a.errs[f] = -r;
      } else if (WriteFrame(a, f)) {
        ok++;
        RingFallback("io_uring TUN write", -r);
      }
    }
    return Napi::Number::New(env, ok);
  }
#endif
  for (int f = 0; f < frames; f++) ok += WriteFrame(a, f);
  return Napi::Number::New(env, ok);
}

}  // namespace t6
