// The one uv_poll handle of an fd on the main event loop, calling JS back when the fd is readable
// and/or writable.
//
// libuv refuses a second handle for the same fd (uv_poll_init fails with EEXIST), so reading and
// writing share this one: start(events) with kPollReadable | kPollWritable, and start again to
// change what it waits for. The callback gets those bits, or a negative libuv status. It runs with
// the Poller object as receiver (napi_make_callback needs an object).

#include "addon.h"

#include <uv.h>

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

}  // namespace

Napi::Function PollerClass(Napi::Env env) { return Poller::Define(env); }

}  // namespace t6
