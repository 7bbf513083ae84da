// rtnetlink as a byte pipe: a NETLINK_ROUTE socket, and one call that sends a request TypeScript
// built (src/tun/netlink.ts) and gathers the kernel's answers to it into a JS buffer. What the
// messages say, and what an answer means, is decided there.

#include "addon.h"

#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

namespace t6 {

namespace {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Whether the answers in buf[0, n) end the request `seq`: its NLMSG_ERROR (an error, or the ACK
// every request but a dump asks for) or a dump's NLMSG_DONE. Answers to other sequence numbers (a
// request an earlier call gave up on) are kept for TypeScript to skip.
bool EndsRequest(const uint8_t* buf, size_t n, uint32_t seq) {
  size_t off = 0;
  while (off + sizeof(struct nlmsghdr) <= n) {
    struct nlmsghdr h;
    memcpy(&h, buf + off, sizeof h);
    if (h.nlmsg_len < sizeof h || h.nlmsg_len > n - off) return false;
    if (h.nlmsg_seq == seq && (h.nlmsg_type == NLMSG_ERROR || h.nlmsg_type == NLMSG_DONE)) return true;
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  return false;
}

}  // namespace

// openNetlinkRoute() -> fd
// A NETLINK_ROUTE socket, non-blocking and close-on-exec (the `ip` children and hooks we run must
// not inherit it). Extended ACKs carry the kernel's own sentence about a refusal; capped ACKs leave
// our request out of an error, so an answer stays small. Kernels without them (before 4.12 and 4.3)
// answer with the errno alone.
Napi::Value OpenNetlinkRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpeningSocket s(env, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)");
  if (!s.ok()) return env.Undefined();
  int on = 1;
  setsockopt(s.fd(), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  setsockopt(s.fd(), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks our port id
  if (!s.Check(bind(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind AF_NETLINK")) return env.Undefined();
  return Napi::Number::New(env, s.Release());
}

// netlinkRequest(fd, request: Uint8Array, length, seq, reply: Uint8Array, timeoutMs) -> bytes of answers in reply
// Sends request[0, length) to the kernel and reads answers into reply until one ends the request
// `seq` (EndsRequest). rtnetlink handles a request inside the send, so its answer is usually queued
// by then; a dump's later parts are made as we read. Throws ETIMEDOUT when none ends it in time,
// EMSGSIZE when an answer would not fit in what is left of reply.
Napi::Value NetlinkRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "netlinkRequest(fd, request: Uint8Array, length, seq, reply: Uint8Array, timeoutMs)";
  if (info.Length() < 6 || !info[0].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() || !info[5].IsNumber()) return ThrowType(env, usage);
  Slots req, reply;
  if (!GetBytes(info[1], &req) || !GetBytes(info[4], &reply)) return ThrowType(env, usage);
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t length = info[2].As<Napi::Number>().Int64Value();
  uint32_t seq = info[3].As<Napi::Number>().Uint32Value();
  int64_t timeoutMs = info[5].As<Napi::Number>().Int64Value();
  if (length < static_cast<int64_t>(sizeof(struct nlmsghdr)) || static_cast<uint64_t>(length) > req.size || timeoutMs < 0) return ThrowType(env, usage);

  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do sent = sendto(fd, req.base, static_cast<size_t>(length), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return ThrowErrno(env, "sendto NETLINK_ROUTE", errno);

  const int64_t deadline = NowMs() + timeoutMs;
  size_t got = 0;
  for (;;) {
    // MSG_TRUNC: the datagram's whole length, so one too long for the room left is seen, not cut
    ssize_t r;
    do r = recv(fd, reply.base + got, reply.size - got, MSG_DONTWAIT | MSG_TRUNC);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) return ThrowErrno(env, "recv NETLINK_ROUTE", errno);
      int64_t left = deadline - NowMs();
      if (left <= 0) return ThrowErrno(env, "recv NETLINK_ROUTE (no answer in time)", ETIMEDOUT);
      struct pollfd p = {fd, POLLIN, 0};
      int pr = poll(&p, 1, static_cast<int>(left));
      if (pr < 0 && errno != EINTR) return ThrowErrno(env, "poll NETLINK_ROUTE", errno);
      continue;
    }
    if (static_cast<size_t>(r) > reply.size - got) return ThrowErrno(env, "recv NETLINK_ROUTE (answer larger than the reply buffer)", EMSGSIZE);
    size_t from = got;
    // each datagram starts on a message boundary, which TypeScript finds by NLMSG_ALIGN
    got = NLMSG_ALIGN(got + static_cast<size_t>(r));
    if (got > reply.size) got = reply.size;
    if (EndsRequest(reply.base + from, static_cast<size_t>(r), seq)) return Napi::Number::New(env, static_cast<double>(got));
  }
}

}  // namespace t6
