// Tells binding.gyp where liburing is for the target architecture, so the addon links it
// statically when it can (then no liburing.so.2 is needed where the binary runs).
//   node liburing.cjs lib <arch>      the static archive, or -luring (shared only), or nothing
//   node liburing.cjs include <arch>  an include directory to add, or nothing (system headers)
// LIBURING_ROOT names a sysroot holding usr/include and usr/lib/<triplet> (a cross build's
// unpacked Debian liburing-dev); without it the host's own /usr is searched.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const TRIPLETS = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ia32: 'i386-linux-gnu' };
const [what, arch = process.arch] = process.argv.slice(2);
const root = process.env.LIBURING_ROOT || '/';
const include = join(root, 'usr/include');
const libDirs = [TRIPLETS[arch] && join(root, 'usr/lib', TRIPLETS[arch]), join(root, 'usr/lib64'), join(root, 'usr/lib')].filter(Boolean);

function find() {
  if (!existsSync(join(include, 'liburing.h'))) return null;
  for (const dir of libDirs) if (existsSync(join(dir, 'liburing.a'))) return { lib: join(dir, 'liburing.a') };
  // A cross build must not pick up the build host's shared library.
  if (root === '/' && arch === process.arch) for (const dir of libDirs) if (existsSync(join(dir, 'liburing.so'))) return { lib: '-luring' };
  return null;
}

const found = find();
if (what === 'lib') process.stdout.write(found ? found.lib : '');
else if (what === 'include') process.stdout.write(found && root !== '/' ? include : '');
else {
  process.stderr.write('usage: node liburing.cjs lib|include [arch]\n');
  process.exit(2);
}
