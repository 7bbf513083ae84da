// Turns JS arguments into checked C views of JS-owned memory (arenas, slot offsets and lengths) and
// JS errors out of errno, so no call can reach outside the buffers it was given.

#include "addon.h"

#include <string.h>

namespace t6 {

uint64_t g_crossings = 0;

Napi::Value ThrowErrno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool GetBytes(const Napi::Value& v, Slots* out) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u8 = v.As<Napi::Uint8Array>();
  out->base = u8.Data();
  out->size = u8.ByteLength();
  return true;
}

bool GetInt32s(const Napi::Value& v, int32_t** data, size_t* count) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return false;
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  *data = a.Data();
  *count = a.ElementLength();
  return true;
}

bool ParseReadArgs(const Napi::CallbackInfo& info, ReadArgs* a) {
  if (info.Length() < 6 || !info[0].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber())
    return false;
  size_t nLens = 0;
  if (!GetBytes(info[1], &a->arena) || !GetInt32s(info[5], &a->lens, &nLens)) return false;
  a->fd = info[0].As<Napi::Number>().Int32Value();
  a->slotSize = info[2].As<Napi::Number>().Int32Value();
  a->headroom = info[3].As<Napi::Number>().Int32Value();
  a->max = info[4].As<Napi::Number>().Int32Value();
  // a negative count would pass every upper clamp below and index before the arrays
  if (a->max < 0) return false;
  if (a->max > kMaxBatch) a->max = kMaxBatch;
  if (static_cast<size_t>(a->max) > nLens) a->max = static_cast<int>(nLens);
  if (a->slotSize <= a->headroom || a->headroom < 0) return false;
  size_t slots = a->arena.size / static_cast<size_t>(a->slotSize);
  if (static_cast<size_t>(a->max) > slots) a->max = static_cast<int>(slots);
  return true;
}

bool ParseWriteArgs(const Napi::CallbackInfo& info, WriteArgs* a) {
  if (info.Length() < 6 || !info[0].IsNumber() || !info[4].IsNumber()) return false;
  size_t nOffs = 0, nLens = 0, nErrs = 0;
  if (!GetBytes(info[1], &a->arena) || !GetInt32s(info[2], &a->offs, &nOffs) || !GetInt32s(info[3], &a->lens, &nLens) ||
      !GetInt32s(info[5], &a->errs, &nErrs))
    return false;
  a->fd = info[0].As<Napi::Number>().Int32Value();
  a->n = info[4].As<Napi::Number>().Int32Value();
  if (a->n < 0 || static_cast<size_t>(a->n) > nOffs || static_cast<size_t>(a->n) > nLens ||
      static_cast<size_t>(a->n) > nErrs || a->n > kMaxBatch)
    return false;
  for (int i = 0; i < a->n; i++) {
    if (a->offs[i] < 0 || a->lens[i] < 0 || static_cast<size_t>(a->offs[i]) + a->lens[i] > a->arena.size) return false;
  }
  return true;
}

bool ParseBatch(const Napi::Value& batch, int fd, int n, BatchArgs* a) {
  if (!batch.IsObject()) return false;
  Napi::Object o = batch.As<Napi::Object>();
  int32_t* cols = nullptr;
  size_t nCols = 0;
  if (!GetBytes(o.Get("arena"), &a->arena) || !GetInt32s(o.Get("columns"), &cols, &nCols)) return false;
  if (nCols < static_cast<size_t>(kBatchColumns * kMaxBatch) || n < 0 || n > kMaxBatch) return false;
  a->fd = fd;
  a->n = n;
  a->offs = cols + kBatchOffs * kMaxBatch;
  a->lens = cols + kBatchLens * kMaxBatch;
  a->dsts = cols + kBatchDsts * kMaxBatch;
  a->fields = cols + kBatchFields * kMaxBatch;
  a->errs = cols + kBatchErrs * kMaxBatch;
  for (int i = 0; i < n; i++) {
    if (a->offs[i] < 0 || a->lens[i] < 0 || static_cast<size_t>(a->offs[i]) + a->lens[i] > a->arena.size) return false;
  }
  return true;
}

}  // namespace t6
