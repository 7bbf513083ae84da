{
  "targets": [
    {
      "target_name": "tun6in4_native",
      "sources": ["tun6in4.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["<!(test -f /usr/include/liburing.h && echo 1 || echo 0)==1", {
          "defines": ["HAVE_LIBURING"],
          "libraries": ["-luring"]
        }]
      ]
    }
  ]
}
