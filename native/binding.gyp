{
  "targets": [
    {
      "target_name": "tun6in4_native",
      "sources": ["module.cc", "args.cc", "ring.cc", "tun.cc", "sockets.cc", "os.cc", "peercred.cc", "icmp6.cc", "netlink.cc", "poller.cc"],
      "variables": {
        "liburing_lib": "<!(node liburing.cjs lib <(target_arch))",
        "liburing_include": "<!(node liburing.cjs include <(target_arch))"
      },
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-ffile-prefix-map=<(module_root_dir)/=", "-ffile-prefix-map=<(module_root_dir)/../="],
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "conditions": [
        ["liburing_lib!=''", {
          "defines": ["HAVE_LIBURING"],
          "libraries": ["<(liburing_lib)"]
        }],
        ["liburing_include!=''", {
          "include_dirs": ["<(liburing_include)"]
        }]
      ]
    }
  ]
}
