// A raw ICMPv6 socket on one LAN interface for router advertisements (Node has none): opened
// bound to the interface, hop limit 255 both ways (RFC 4861 §6.1.1 and §6.2.3), joined to the
// all-routers group ff02::2, filtered to Router Solicitations; one message in or out per call,
// into and out of JS-owned buffers. What to send and whether a solicitation is valid is decided
// in TypeScript (src/packet/ndp.ts, src/host/advertiser.ts).

#include "addon.h"

#include <errno.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <string>

namespace t6 {

// openIcmp6Socket(ifname) -> { fd, ifindex }. Non-blocking; receives only Router Solicitations
// that arrive on ifname, with their hop limit.
Napi::Value OpenIcmp6Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "openIcmp6Socket(ifname: string)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ) return ThrowType(env, "interface name must be 1..15 bytes");
  unsigned ifindex = if_nametoindex(name.c_str());
  if (ifindex == 0) return ThrowErrno(env, "if_nametoindex", errno);
  OpeningSocket s(env, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, "socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)");
  s.Option(SOL_SOCKET, SO_BINDTODEVICE, name.c_str(), name.size(), "SO_BINDTODEVICE");
  struct icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
  s.Option(IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter, "ICMP6_FILTER");
  s.Option(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255, "IPV6_MULTICAST_HOPS");
  s.Option(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 255, "IPV6_UNICAST_HOPS");
  s.Option(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
  s.Option(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
  s.Option(IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(ifindex), "IPV6_MULTICAST_IF");
  struct ipv6_mreq mreq;
  memset(&mreq, 0, sizeof mreq);
  inet_pton(AF_INET6, "ff02::2", &mreq.ipv6mr_multiaddr);
  mreq.ipv6mr_interface = ifindex;
  s.Option(IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof mreq, "IPV6_JOIN_GROUP ff02::2");
  if (!s.ok()) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, s.Release()));
  out.Set("ifindex", Napi::Number::New(env, ifindex));
  return out;
}

// icmp6Recv(fd, buf, src: Uint8Array(16), meta: Int32Array(1)) -> bytes, or -1 when nothing waits.
// src gets the sender's address, meta[0] the hop limit it arrived with (-1 if the kernel gave none).
Napi::Value Icmp6Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Slots buf, src;
  if (info.Length() < 4 || !info[0].IsNumber() || !GetBytes(info[1], &buf) || !GetBytes(info[2], &src) || src.size < 16 ||
      !info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[3].As<Napi::Int32Array>().ElementLength() < 1)
    return ThrowType(env, "icmp6Recv(fd, buf, src: Uint8Array(16), meta: Int32Array(1))");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int32_t* meta = info[3].As<Napi::Int32Array>().Data();
  struct sockaddr_in6 from;
  struct iovec iov = {buf.base, buf.size};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    return ThrowErrno(env, "recvmsg icmp6", errno);
  }
  memcpy(src.base, &from.sin6_addr, 16);
  meta[0] = -1;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) memcpy(&meta[0], CMSG_DATA(c), sizeof(int));
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// icmp6Send(fd, buf, len, dst: Uint8Array(16), ifindex): one message; the kernel picks the
// link-local source and fills the ICMPv6 checksum. Throws with errno.
Napi::Value Icmp6Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Slots buf, dst;
  if (info.Length() < 5 || !info[0].IsNumber() || !GetBytes(info[1], &buf) || !info[2].IsNumber() || !GetBytes(info[3], &dst) ||
      dst.size < 16 || !info[4].IsNumber())
    return ThrowType(env, "icmp6Send(fd, buf, len, dst: Uint8Array(16), ifindex)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  size_t len = info[2].As<Napi::Number>().Uint32Value();
  if (len > buf.size) return ThrowType(env, "icmp6Send: len beyond the buffer");
  struct sockaddr_in6 to;
  memset(&to, 0, sizeof to);
  to.sin6_family = AF_INET6;
  memcpy(&to.sin6_addr, dst.base, 16);
  to.sin6_scope_id = info[4].As<Napi::Number>().Uint32Value();
  if (sendto(fd, buf.base, len, 0, reinterpret_cast<struct sockaddr*>(&to), sizeof to) < 0) return ThrowErrno(env, "sendto icmp6", errno);
  return env.Undefined();
}

}  // namespace t6
