// Readiness of an fd, calling JS back when it is readable and/or writable, two ways behind one JS
// interface (src/io/native.ts picks one at load time):
//
// Poller: the fd's uv_poll handle on the main event loop. Node's own loop, no thread, no extra
// wake-up: the fastest path, but only where there is a libuv (Bun aborts on uv_poll_init).
//
// ThreadPoller: one addon-owned thread per JS environment waits in epoll_wait on every watched fd
// and wakes JS through a napi_threadsafe_function. Each fd is armed EPOLLONESHOT, so one readiness
// is one wake; the callback drains what it can and the fd is armed again after it returns, which
// gives uv_poll's level-triggered behaviour without a crossing per packet. Needs only Node-API.
//
// libuv refuses a second handle for the same fd (uv_poll_init fails with EEXIST), so reading and
// writing share this one: start(events) with kPollReadable | kPollWritable, and start again to
// change what it waits for. The callback gets those bits, or a negative libuv status. It runs with
// the Poller object as receiver (napi_make_callback needs an object).

#include "addon.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include <thread>
#include <map>

namespace t6 {

namespace {

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
    g_crossings++;
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

  void Stop(const Napi::CallbackInfo&) {
    g_crossings++;
    StopPolling();
  }

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
    g_crossings++;
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

class ThreadPoller;

// The poll thread of one JS environment, its epoll set and the threadsafe function it wakes JS with.
// A wake carries (poller id << 8 | event bits); ids are never reused, so a wake for a poller closed
// meanwhile finds nothing and is dropped.
struct PollThread {
  static constexpr uint64_t kStopId = 0;
  static constexpr uint64_t kErrorBit = 4;

  int epfd = -1;
  int stopfd = -1;
  napi_threadsafe_function tsfn = nullptr;
  std::thread thread;
  // std::map, not unordered_map: the latter's bucket array brings a libstdc++ symbol (GLIBCXX_3.4.29)
  // that would raise the prebuilds' floor; a few pollers per tunnel, looked up once per wake
  std::map<uint64_t, ThreadPoller*> pollers;
  uint64_t nextId = 1;
  // Pollers waiting for something: the thread keeps the event loop alive only while there are any,
  // as an active uv_poll handle does.
  int waiting = 0;

  static PollThread* Of(Napi::Env env);
  ~PollThread();
  void Wait(Napi::Env env, int delta);

  void Run() {
    epoll_event evs[64];
    for (;;) {
      int n = epoll_wait(epfd, evs, 64, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      for (int i = 0; i < n; i++) {
        uint64_t id = evs[i].data.u64;
        if (id == kStopId) return;
        uint32_t e = evs[i].events;
        uint64_t bits = (e & EPOLLERR) ? kErrorBit
                                       : (((e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) ? kPollReadable : 0) | ((e & EPOLLOUT) ? kPollWritable : 0));
        if (napi_call_threadsafe_function(tsfn, reinterpret_cast<void*>(static_cast<uintptr_t>(id << 8 | bits)), napi_tsfn_nonblocking) != napi_ok) return;
      }
    }
  }

  static void CallJs(napi_env env, napi_value, void* context, void* data);
};

class ThreadPoller : public Napi::ObjectWrap<ThreadPoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ThreadPoller",
                       {InstanceMethod("start", &ThreadPoller::Start), InstanceMethod("stop", &ThreadPoller::Stop),
                        InstanceMethod("close", &ThreadPoller::Close)});
  }

  explicit ThreadPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThreadPoller>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new ThreadPoller(fd, callback)").ThrowAsJavaScriptException();
      return;
    }
    thread_ = PollThread::Of(env);
    if (!thread_) return;  // threw
    env_ = env;
    fd_ = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    id_ = thread_->nextId++;
    thread_->pollers[id_] = this;
  }

  ~ThreadPoller() override { CloseWatch(); }

  // A wake from the poll thread, on the main thread. The fd is disarmed until Arm().
  void Wake(uint32_t bits) {
    if (!active_) return;
    Napi::HandleScope scope(env_);
    g_crossings++;
    // a negative status, as uv_poll gives on POLLERR: an error is queued
    int arg = (bits & PollThread::kErrorBit) ? -EBADF : static_cast<int>(bits);
    callback_.MakeCallback(Value(), {Napi::Number::New(env_, arg)});
    if (env_.IsExceptionPending()) {
      napi_value e;
      napi_get_and_clear_last_exception(env_, &e);
      napi_fatal_exception(env_, e);
    }
    if (active_ && Arm() != 0) StopWatching();
  }

 private:
  void Start(const Napi::CallbackInfo& info) {
    g_crossings++;
    if (!thread_ || closed_) return;
    int want = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : kPollReadable;
    uint32_t events = ((want & kPollReadable) ? static_cast<uint32_t>(EPOLLIN) : 0u) | ((want & kPollWritable) ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    if (events == 0) return StopWatching();
    // Armed, or fired with its wake on the way (which arms it again): nothing to change.
    if (active_ && events == events_) return;
    events_ = events;
    if (int err = Arm()) {
      Napi::Error::New(info.Env(), std::string("epoll_ctl: ") + strerror(err)).ThrowAsJavaScriptException();
      return;
    }
    if (!active_) {
      active_ = true;
      Ref();  // keep the JS object (and so this) alive while it can be called back
      thread_->Wait(env_, +1);
    }
  }

  void Stop(const Napi::CallbackInfo&) {
    g_crossings++;
    StopWatching();
  }

  void Close(const Napi::CallbackInfo&) { CloseWatch(); }

  int Arm() {
    epoll_event e{};
    e.events = events_ | EPOLLONESHOT;
    e.data.u64 = id_;
    if (epoll_ctl(thread_->epfd, registered_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd_, &e) != 0) return errno;
    registered_ = true;
    return 0;
  }

  void StopWatching() {
    if (!active_) return;
    active_ = false;
    if (registered_) epoll_ctl(thread_->epfd, EPOLL_CTL_DEL, fd_, nullptr);
    registered_ = false;
    thread_->Wait(env_, -1);
    Unref();
  }

  void CloseWatch() {
    if (closed_ || !thread_) return;
    StopWatching();
    closed_ = true;
    thread_->pollers.erase(id_);
  }

  Napi::Env env_{nullptr};
  Napi::FunctionReference callback_;
  PollThread* thread_ = nullptr;
  uint64_t id_ = 0;
  int fd_ = -1;
  uint32_t events_ = 0;
  bool active_ = false;
  bool registered_ = false;
  bool closed_ = false;
};

void PollThread::CallJs(napi_env env, napi_value, void* context, void* data) {
  if (env == nullptr) return;  // the function is being torn down
  auto* self = static_cast<PollThread*>(context);
  uint64_t word = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data));
  auto it = self->pollers.find(word >> 8);
  if (it != self->pollers.end()) it->second->Wake(static_cast<uint32_t>(word & 0xff));
}

PollThread* PollThread::Of(Napi::Env env) {
  if (auto* t = env.GetInstanceData<PollThread>()) return t;
  auto* t = new PollThread;
  t->epfd = epoll_create1(EPOLL_CLOEXEC);
  t->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event stop{};
  stop.events = EPOLLIN;
  stop.data.u64 = kStopId;
  napi_value name = Napi::String::New(env, "tun6in4 poll thread");
  if (t->epfd < 0 || t->stopfd < 0 || epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->stopfd, &stop) != 0 ||
      napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, t, CallJs, &t->tsfn) != napi_ok) {
    int err = errno;
    delete t;
    Napi::Error::New(env, std::string("the poll thread cannot start: ") + strerror(err)).ThrowAsJavaScriptException();
    return nullptr;
  }
  napi_unref_threadsafe_function(env, t->tsfn);
  t->thread = std::thread([t] { t->Run(); });
  env.SetInstanceData<PollThread>(t);  // deleted (the thread stopped and joined) with the environment
  return t;
}

void PollThread::Wait(Napi::Env env, int delta) {
  int before = waiting;
  waiting += delta;
  if (before == 0 && waiting > 0) napi_ref_threadsafe_function(env, tsfn);
  if (before > 0 && waiting == 0) napi_unref_threadsafe_function(env, tsfn);
}

PollThread::~PollThread() {
  if (thread.joinable()) {
    uint64_t one = 1;
    if (write(stopfd, &one, sizeof one) == sizeof one) thread.join();
    else thread.detach();
  }
  if (tsfn) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  if (epfd >= 0) close(epfd);
  if (stopfd >= 0) close(stopfd);
}

}  // namespace

Napi::Function PollerClass(Napi::Env env) { return Poller::Define(env); }
Napi::Function ThreadPollerClass(Napi::Env env) { return ThreadPoller::Define(env); }

}  // namespace t6
