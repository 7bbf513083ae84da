#!/usr/bin/python3
"""Runs a command under a seccomp filter that lets io_uring rings be set up but refuses
io_uring_enter with EPERM, as a container's profile can: the ring looks usable until the first
batch. Debian's python3-seccomp (libseccomp's own bindings).
    deny_io_uring.py COMMAND [ARG...]"""
import errno
import os
import sys

import seccomp

f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(errno.EPERM), "io_uring_enter")
f.load()
os.execvp(sys.argv[1], sys.argv[1:])
