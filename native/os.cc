// Services of the operating system Node lacks: systemd's readiness datagrams (AF_UNIX), an
// exclusive flock on a file, closing the fds the addon opened, and the drop to an unprivileged user that keeps the two network
// capabilities.

#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

namespace t6 {

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

// flock(fd) -> true once fd holds an exclusive flock on its file, false when another process holds
// one. Node has no flock. JS opens the file, so the fd is one its own fs calls know (Deno's node:fs
// refuses fds it did not open); the lock lives as long as the fd and dies with the process, so a
// crashed owner leaves nothing to clean.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "flock(fd)");
  if (flock(info[0].As<Napi::Number>().Int32Value(), LOCK_EX | LOCK_NB) == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, "flock", errno);
}

// closeFd(fd) -> undefined; throws with errno. For the fds the addon opened (TUN, sockets): some
// runtimes' fs.closeSync knows only fds it opened itself (Deno: EBADF).
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "closeFd(fd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  ForgetSendOptions(fd);
  // Linux frees the fd even when close reports EINTR: never retried.
  if (close(fd) != 0 && errno != EINTR) return ThrowErrno(env, "close", errno);
  return env.Undefined();
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

}  // namespace t6
