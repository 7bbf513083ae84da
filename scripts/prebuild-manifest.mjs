// Writes native/prebuilds/MANIFEST.json: for each prebuilt binary its hash, size and the newest
// glibc/libstdc++ symbol versions it needs (read with objdump -T), plus the hash of the sources
// it was built from, so a test can tell when the sources moved on without a new prebuild.
//   node scripts/prebuild-manifest.mjs <prebuilds dir> <node headers dir>
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nativeSourcesHash } from './native-sources.mjs';

const [outDir, nodedir] = process.argv.slice(2);
const OBJDUMP = { x64: 'objdump', arm64: 'aarch64-linux-gnu-objdump' };
const CXX = { x64: 'g++', arm64: 'aarch64-linux-gnu-g++' };

function newest(symbols, prefix) {
  const versions = [...symbols.matchAll(new RegExp(`\\b${prefix}_([0-9.]+)\\b`, 'g'))].map((m) => m[1].split('.').map(Number));
  versions.sort((a, b) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  });
  return versions.length ? `${prefix}_${versions.at(-1).join('.')}` : null;
}

const binaries = {};
for (const tuple of readdirSync(outDir).filter((d) => d.startsWith('linux-')).sort()) {
  const arch = tuple.slice('linux-'.length);
  for (const file of readdirSync(join(outDir, tuple)).filter((f) => f.endsWith('.node'))) {
    const path = join(outDir, tuple, file);
    const bytes = readFileSync(path);
    const symbols = execFileSync(OBJDUMP[arch], ['-T', path], { encoding: 'utf8' });
    const needed = execFileSync(OBJDUMP[arch], ['-p', path], { encoding: 'utf8' });
    binaries[`${tuple}/${file}`] = {
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: statSync(path).size,
      needs: {
        glibc: newest(symbols, 'GLIBC'),
        libstdcxx: newest(symbols, 'GLIBCXX'),
        cxxabi: newest(symbols, 'CXXABI'),
        shared: [...needed.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]),
      },
      compiler: execFileSync(CXX[arch], ['--version'], { encoding: 'utf8' }).split('\n')[0],
    };
  }
}

const liburing = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'liburing-dev'], { encoding: 'utf8' });
const manifest = {
  sources: nativeSourcesHash(),
  nodeHeaders: readFileSync(join(nodedir, 'include/node/node_version.h'), 'utf8').match(/#define NODE_(MAJOR|MINOR|PATCH)_VERSION (\d+)/g).map((l) => l.split(' ')[2]).join('.'),
  napiVersion: 8,
  liburing: `Debian liburing-dev ${liburing} (static)`,
  binaries,
};
writeFileSync(join(outDir, 'MANIFEST.json'), `${JSON.stringify(manifest, null, 2)}\n`);
