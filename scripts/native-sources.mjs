// The hash of everything a native build is made from, recorded in native/prebuilds/MANIFEST.json
// and checked by the tests, so the committed prebuilds cannot silently fall behind the sources.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const NATIVE_SOURCES = ['native/tun6in4.cc', 'native/icmp6.cc', 'native/icmp6.h', 'native/peercred.cc', 'native/binding.gyp', 'native/liburing.cjs'];

export function nativeSourcesHash() {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const h = createHash('sha256');
  for (const f of NATIVE_SOURCES) h.update(f).update('\0').update(readFileSync(root + f)).update('\0');
  return h.digest('hex');
}
