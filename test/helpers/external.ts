/**
 * Independent peers for cross-checks: scapy (Debian python3-scapy, under /usr/bin/python3)
 * builds and parses packets; tshark dissects pcaps we write. `npm test` installs both.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCAPY_TOOL = fileURLToPath(new URL('../interop/scapy_tool.py', import.meta.url));
const DEBIAN_PYTHON = '/usr/bin/python3';

export function scapy<T>(request: object): T {
  try {
    const out = execFileSync(DEBIAN_PYTHON, [SCAPY_TOOL], { input: JSON.stringify(request), encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    return JSON.parse(out) as T;
  } catch (e) {
    throw new Error(`scapy is needed for this test (Debian python3-scapy; npm test installs it): ${(e as Error).message}`);
  }
}

/** Writes raw IP packets (LINKTYPE_RAW) as a classic pcap file. */
export function writePcap(path: string, packets: Buffer[]): void {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(101, 20);
  const records = packets.map((p, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(p.length, 8);
    r.writeUInt32LE(p.length, 12);
    return Buffer.concat([r, p]);
  });
  writeFileSync(path, Buffer.concat([header, ...records]));
}

export interface TsharkFrame {
  [field: string]: string;
}

/** Dissects packets with tshark, returning the requested fields per frame. */
export function tshark(packets: Buffer[], fields: string[], prefs: string[] = []): TsharkFrame[] {
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-tshark-'));
  try {
    const file = join(dir, 'packets.pcap');
    writePcap(file, packets);
    const args = ['-n', '-r', file, '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=;'];
    for (const p of prefs) args.push('-o', p);
    for (const f of fields) args.push('-e', f);
    const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out
      .split('\n')
      .filter((l) => l.length > 0)
      .map((line) => {
        const values = line.split('|');
        const frame: TsharkFrame = {};
        fields.forEach((f, i) => (frame[f] = values[i] ?? ''));
        return frame;
      });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
