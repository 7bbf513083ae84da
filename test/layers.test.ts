/**
 * The layer rules of docs/architecture.md, checked on the source: each folder of src/ imports only
 * the folders its row allows (io only packet's arena allocator), and the pure ones (packet, encap)
 * no I/O module. A new folder, or an import that points up, fails here until the rule and its row
 * in the docs say why.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** Each folder of src/ and the folders it may import; the table of docs/architecture.md. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  packet: [],
  io: ['packet'],
  encap: ['packet'],
  tun: ['io', 'packet'],
  transport: ['io', 'packet'],
  engine: ['encap', 'io', 'packet', 'transport', 'tun'],
  advertise: ['encap', 'io', 'packet', 'tun'],
  broker: ['encap', 'packet'],
  host: ['advertise', 'broker', 'encap', 'engine', 'io', 'packet', 'transport', 'tun'],
  brokerd: ['broker', 'encap', 'engine', 'host', 'io', 'packet', 'transport', 'tun'],
  daemon: ['advertise', 'broker', 'brokerd', 'encap', 'engine', 'host', 'io', 'packet', 'transport', 'tun'],
  doctor: ['advertise', 'broker', 'brokerd', 'encap', 'engine', 'host', 'io', 'packet', 'transport', 'tun'],
  import: ['advertise', 'broker', 'brokerd', 'daemon', 'encap', 'engine', 'host', 'io', 'packet', 'transport', 'tun'],
  lab: ['advertise', 'broker', 'brokerd', 'daemon', 'encap', 'engine', 'host', 'io', 'packet', 'transport', 'tun'],
  cli: ['advertise', 'broker', 'brokerd', 'daemon', 'doctor', 'encap', 'engine', 'host', 'import', 'io', 'lab', 'packet', 'transport', 'tun'],
};

/** Modules that do I/O, which the pure folders never import. */
const IO_MODULES = /^(node:)?(fs|fs\/promises|net|dgram|child_process|http|https|http2|tls|dns|worker_threads|cluster|readline)$/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every module a file names: static imports and exports, `import type`, and dynamic `import()`. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)'([^']+)'/gm)) found.push(m[1]);
  return found;
}

const folderOf = (file: string): string => relative(SRC, file).split(sep)[0];

const files = sources(SRC).filter((f) => relative(SRC, f).includes(sep)); // the entries and deprecated.ts, at the top, may import any folder
const edges = files.flatMap((file) =>
  specifiers(readFileSync(file, 'utf8')).map((spec) => ({
    file: relative(SRC, file),
    from: folderOf(file),
    spec,
    to: spec.startsWith('.') ? folderOf(resolve(dirname(file), spec)) : null,
  })),
);

describe('layer rules (docs/architecture.md)', () => {
  it('every folder of src/ has a row', () => {
    expect([...new Set(files.map(folderOf))].sort()).toEqual(Object.keys(MAY_IMPORT).sort());
  });

  it('the scan sees imports between folders (it is not reading nothing)', () => {
    expect(edges.some((e) => e.from === 'engine' && e.to === 'encap')).toBe(true);
    expect(edges.some((e) => e.from === 'cli' && e.to === 'daemon')).toBe(true);
  });

  it('router advertisements are a room of their own: host starts them from src/advertise, which knows nothing of host or engine', () => {
    expect(edges.some((e) => e.from === 'host' && e.to === 'advertise')).toBe(true);
    expect(edges.filter((e) => e.from === 'advertise' && (e.to === 'host' || e.to === 'engine' || e.to === 'transport')).map((e) => e.file)).toEqual([]);
    expect(files.some((f) => relative(SRC, f) === join('host', 'advertiser.ts'))).toBe(false);
  });

  it('no folder imports one its row does not allow (no upward arrow)', () => {
    const upward = edges
      .filter((e) => e.to !== null && e.to !== e.from && !(MAY_IMPORT[e.from] ?? []).includes(e.to))
      .map((e) => `${e.file} imports ${e.spec} (${e.from} -> ${e.to})`);
    expect(upward).toEqual([]);
  });

  it('src/io takes only the arena allocator from src/packet (the slot arenas it makes are packet arenas)', () => {
    const fromPacket = edges.filter((e) => e.from === 'io' && e.to === 'packet').map((e) => `${e.file} imports ${e.spec}`);
    expect(fromPacket.filter((e) => !e.endsWith('/packet/arena.js'))).toEqual([]);
  });

  it('src/packet, src/encap and src/broker import no I/O module: pure logic, testable without root', () => {
    const io = edges.filter((e) => (e.from === 'packet' || e.from === 'encap' || e.from === 'broker') && e.to === null && IO_MODULES.test(e.spec));
    expect(io.map((e) => `${e.file} imports ${e.spec}`)).toEqual([]);
  });
});
