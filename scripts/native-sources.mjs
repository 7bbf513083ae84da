// The files a native build is made from (binding.gyp, its sources list, the headers beside them
// and liburing.cjs), and their hash, recorded in native/prebuilds/MANIFEST.json and checked by
// the tests, so the committed prebuilds cannot silently fall behind the sources. The package test
// holds the npm tarball to the same list, so a build from the package has everything it needs.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function nativeSources() {
  const gyp = JSON.parse(readFileSync(`${root}native/binding.gyp`, 'utf8'));
  const sources = gyp.targets.flatMap((t) => t.sources);
  const headers = readdirSync(`${root}native`).filter((f) => f.endsWith('.h'));
  return ['binding.gyp', 'liburing.cjs', ...sources, ...headers.sort()].map((f) => `native/${f}`);
}

export const NATIVE_SOURCES = nativeSources();

export function nativeSourcesHash() {
  const h = createHash('sha256');
  for (const f of NATIVE_SOURCES) h.update(f).update('\0').update(readFileSync(root + f)).update('\0');
  return h.digest('hex');
}
