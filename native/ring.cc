// The io_uring ring each thread uses for TUN reads and writes, and its fallback to plain syscalls
// when the kernel or a container refuses it.
//
// The TUN moves one packet per read() or write(), so a batch costs one syscall per packet; queued
// on a ring, a batch of reads or writes is one io_uring_enter. Measured with the C reference in
// bench/ before it came here (same run: 1.26x the batched C forwarder on one TCP stream, 1.13x on
// 64-byte UDP, 0.13 syscalls per packet instead of 2.5). One ring per thread, made on first use;
// where io_uring is missing or refused (old kernels, container seccomp profiles,
// kernel.io_uring_disabled) the syscall loops in tun.cc are used.

#include "addon.h"

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>

namespace t6 {

#ifdef HAVE_LIBURING
namespace {

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

}  // namespace

bool RingOk() { return tl_ring.ok; }

int& RingReadHint() { return tl_ring.readHint; }

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

// Submits the `want` queued operations, waits for the completions of those the kernel took and
// stores each result at res[user_data]. Returns false if the ring itself failed; then res[i] is
// kRingUnknown for every operation whose completion was not seen. *submitted is how many the
// kernel took: they are the first ones (the ring is in order), and only those may take effect, so
// an operation at or past *submitted may be redone with a syscall while one before it must not be
// (that could write a packet twice). Waiting for more than were taken would block the JS thread
// for ever; operations left queued would run later on stale slots, so a short submit gives the
// ring up.
bool RingRun(struct io_uring* ring, int want, int32_t* res, int* submitted) {
  for (int i = 0; i < want; i++) res[i] = kRingUnknown;
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

bool IoUringCompiled() {
#ifdef HAVE_LIBURING
  return true;
#else
  return false;
#endif
}

Napi::Value IoUringAvailable(const Napi::CallbackInfo& info) {
#ifdef HAVE_LIBURING
  return Napi::Boolean::New(info.Env(), GetRing() != nullptr);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value IoUringFallback(const Napi::CallbackInfo& info) {
#ifdef HAVE_LIBURING
  if (tl_ring.fallback[0] != 0) return Napi::String::New(info.Env(), tl_ring.fallback);
#endif
  return info.Env().Null();
}

}  // namespace t6
