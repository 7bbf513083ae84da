/**
 * Files the daemon (often root) acts on: its configuration and the broker update key. Whoever
 * can write the configuration decides which file the daemon reads as "the key" and where it sends
 * it, so both must be writable only by their owner, and that owner must be root or the user the
 * daemon runs as; a key must not be readable by others either (its group may read it). Read
 * through one descriptor, so what is checked is what is read.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';

export class UntrustedFileError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'UntrustedFileError';
  }
}

/** Reads `path` (following symlinks: the file at the end is the one checked) if it may be trusted. */
export function readTrustedFile(path: string, kind: 'config' | 'secret'): string {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    const uid = process.getuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== uid) {
      throw new UntrustedFileError(path, `owned by uid ${st.uid}, not by root or this user (uid ${uid}); chown root ${path}`);
    }
    // A key may be readable by its group (root:tun6in4 0640 for a service user), never by others.
    const open = st.mode & (kind === 'secret' ? 0o026 : 0o022);
    if (open) {
      const what = kind === 'secret' ? 'readable by others or writable by group or others' : 'writable by group or others';
      const fix = kind === 'secret' ? 'chmod 600 (or 640 with the service\'s group)' : 'chmod go-w';
      throw new UntrustedFileError(path, `${what} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ${fix} ${path}`);
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
