/** `tun6in4 import`: a kernel-sit configuration in, the tun6in4 configuration out (library: src/import). */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import { ConfigFileError } from '../daemon/config.js';
import { checkImported, importFiles, writeKeyFile, type ImportFormat, type ImportInput } from '../import/index.js';

export interface ImportFlags {
  format?: ImportFormat;
  keyFile?: string;
  check?: boolean;
}

/** Prints the configuration on stdout; what needs the user's attention goes to stderr. */
export function runImportCommand(files: string[], flags: ImportFlags): void {
  if (!files.length && process.stdin.isTTY) throw new Error('import: name the files to read, or - to read a pasted block from standard input');
  const inputs: ImportInput[] = (files.length ? files : ['-']).map((f) => ({ file: f === '-' ? 'stdin' : f, text: readInput(f) }));
  // absolute in the configuration: a relative keyFile there means beside the configuration file,
  // which is wherever stdout ends up, not where the key was written
  const keyFile = flags.keyFile === undefined ? undefined : resolve(flags.keyFile);
  const result = importFiles(inputs, { format: flags.format, keyFile, hostAddresses: hostIpv4Addresses() });
  const warn = (line: string) => process.stderr.write(`tun6in4 import: ${line}\n`);
  for (const t of result.tunnels.filter((x) => x.localNotHere)) {
    const { value, from } = t.localNotHere!;
    warn(`${t.name}: local ${value} (${from.file}:${from.line}) is not an address of this host, so the configuration says local = "auto" (on a 1:1-NAT cloud VM the broker's "Client IPv4 Address" is the public one, which the host never holds); if the file is for another host that holds ${value}, write it back`);
  }
  const keyed = result.tunnels.filter((t) => t.secret);
  if (flags.keyFile) {
    const t = result.tunnels.find((x) => x.updateEnabled);
    if (t) {
      let written: { replaced: boolean; mode: number };
      try {
        written = writeKeyFile(flags.keyFile, t.secret!);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (!code) throw new Error(`--key-file ${(e as Error).message}`);
        throw new Error(`--key-file ${flags.keyFile}: cannot write it (${code}); ${code === 'ENOENT' ? 'create its directory first' : 'check the path and its permissions'}`);
      }
      const mode = written.mode.toString(8).padStart(4, '0');
      warn(`${t.name}: the broker update key from ${t.secret!.from.file}:${t.secret!.from.line} was written to ${flags.keyFile} (mode ${mode}${written.replaced ? ', replacing the file that was there' : ''}); the configuration names that file`);
    } else {
      warn(`--key-file ${flags.keyFile}: the input holds no complete broker update (tunnel id, username and key); nothing was written there`);
    }
  } else {
    for (const t of keyed) {
      warn(`${t.name}: ${t.secret!.from.file}:${t.secret!.from.line} holds the broker update key, which never goes into the configuration; re-run with --key-file /etc/tun6in4/${t.name}.key to write it there (mode 0600) and enable the update`);
    }
  }
  process.stdout.write(result.toml);
  if (flags.check) {
    try {
      const check = checkImported(result);
      const n = check.config.tunnels.length;
      warn(`check: ok (${n} tunnel${n === 1 ? '' : 's'}); nothing on this host was changed`);
    } catch (e) {
      if (e instanceof ConfigFileError) throw new ConfigFileError(`the imported configuration does not pass check: ${e.path}`, e.detail);
      throw e;
    }
  }
}

/** This host's IPv4 addresses (of this network namespace), for a local the source names. */
function hostIpv4Addresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));
}

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${file}: cannot read it (${code ?? (e as Error).message}); ${code === 'ENOENT' ? 'check the path' : 'check the file'}`);
  }
}
