// Who is at the other end of a connected AF_UNIX socket (SO_PEERCRED): the control socket lets
// the group ask for status but keeps packet bytes (trace) for root and the daemon's own user.
#include "addon.h"

#include <sys/socket.h>
#include <cerrno>
#include <string>

namespace t6 {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    return ThrowType(env, "peerCredentials(fd)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ThrowErrno(env, "SO_PEERCRED", errno);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

}  // namespace t6
