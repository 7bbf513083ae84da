/**
 * Files the daemon (often root) acts on: its configuration and the broker update key. Whoever
 * can write the configuration decides which file the daemon reads as "the key" and where it sends
 * it, so both must be writable only by their owner, and that owner must be root or the user the
 * daemon runs as; a key must not be readable by others either, and by its group only when that is
 * the daemon's own group. Like sshd's StrictModes, every directory above the file must be owned by
 * root or this user and writable by no one else (a root-owned sticky directory such as /tmp is
 * fine: nobody else can rename what is in it), since whoever can write a directory can swap the
 * file in it. That holds for each directory the path passes through, the ones holding a symbolic
 * link on the way included: whoever can write such a directory can point the link elsewhere. A key is opened with O_NOFOLLOW: a symlink planted as the key file could otherwise
 * name any file root can read (/etc/shadow is root-owned and group-readable). Everything is
 * checked on the descriptor that is read, so what is checked is what is read.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';

export class UntrustedFileError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'UntrustedFileError';
  }
}

export interface TrustedFileOptions {
  /**
   * Groups whose members may read a secret (its group-read bit): the daemon's own group. Default
   * this process's group; a daemon that will drop to another group adds that one.
   */
  groups?: readonly number[];
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** A directory another user could write (or own), as a problem, or null. */
function directoryProblem(dir: string, uid: number): string | null {
  const st = lstatSync(dir);
  if (st.uid !== 0 && st.uid !== uid) {
    return `directory ${dir} is owned by uid ${st.uid}, not by root or this user (uid ${uid}), who could replace the file; chown root ${dir}, or move the file`;
  }
  const sticky = (st.mode & 0o1000) !== 0 && st.uid === 0;
  if (st.mode & 0o022 && !sticky) {
    return `directory ${dir} is writable by group or others (mode ${octal(st.mode)}), who could replace the file; chmod go-w ${dir}, or move the file`;
  }
  return null;
}

/** Symbolic links followed on one path before giving up, as the kernel's own limit. */
const MAX_LINKS = 40;

/**
 * The first directory on the way to `file` that another user could write, as a problem, or null.
 * The path is walked as the kernel resolves it, from / down: every directory passed through is
 * checked, the one holding a symbolic link included (whoever can write it can point the link
 * elsewhere), and then the directories the link leads through. `file` itself is the caller's
 * to check (on the descriptor it reads); a symlink there (a config's) is followed the same way.
 */
function pathProblem(file: string, uid: number): string | null {
  const todo = (isAbsolute(file) ? file : `${process.cwd()}/${file}`).split('/').filter((c) => c !== '' && c !== '.');
  let dir = '/';
  let problem = directoryProblem(dir, uid);
  let links = 0;
  while (problem === null && todo.length > 0) {
    const name = todo.shift()!;
    if (name === '..') {
      dir = dirname(dir);
      continue;
    }
    const next = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const st = lstatSync(next);
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return `${next}: more than ${MAX_LINKS} symbolic links on the way; point the path at the file itself`;
      const target = readlinkSync(next);
      todo.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
      if (isAbsolute(target)) dir = '/';
      continue;
    }
    if (todo.length === 0) break; // the file itself
    problem = directoryProblem(next, uid);
    dir = next;
  }
  return problem;
}

/** Reads `path` if it may be trusted; a config may be reached through a symlink (the target is checked), a secret may not. */
export function readTrustedFile(path: string, kind: 'config' | 'secret', opts: TrustedFileOptions = {}): string {
  const uid = process.getuid?.() ?? 0;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (kind === 'secret' ? constants.O_NOFOLLOW : 0) | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP' && kind === 'secret') {
      throw new UntrustedFileError(path, 'is a symbolic link; a key file is read only as itself: point keyFile at the real file');
    }
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UntrustedFileError(path, 'is not a regular file; point it at the file itself');
    if (st.uid !== 0 && st.uid !== uid) {
      throw new UntrustedFileError(path, `owned by uid ${st.uid}, not by root or this user (uid ${uid}); chown root ${path}`);
    }
    if (kind === 'secret') {
      const groups = opts.groups ?? [process.getgid?.() ?? 0];
      if (st.mode & 0o027) {
        throw new UntrustedFileError(path, `readable by others or writable by group or others (mode ${octal(st.mode)}); chmod 600 (or 640 with the service's group) ${path}`);
      }
      if (st.mode & 0o040 && !groups.includes(st.gid)) {
        throw new UntrustedFileError(
          path,
          `readable by group ${st.gid}, which is not the daemon's (${groups.join(', ')}): only the service's own group may read a key; chmod 600 ${path}, or chgrp it to the daemon's group`,
        );
      }
    } else if (st.mode & 0o022) {
      throw new UntrustedFileError(path, `writable by group or others (mode ${octal(st.mode)}); chmod go-w ${path}`);
    }
    const dirProblem = pathProblem(path, uid);
    if (dirProblem) throw new UntrustedFileError(path, dirProblem);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
