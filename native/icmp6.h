// The ICMPv6 socket for router advertisements (icmp6.cc): what tun6in4.cc registers.
#pragma once
#include <napi.h>

void RegisterIcmp6(Napi::Env env, Napi::Object exports);
