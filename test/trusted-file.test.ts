/**
 * Issue 22 item 8: the files a root daemon reads (its configuration, the broker update key). A
 * key reached through a symlink, readable by a group that is not the daemon's, or in a directory
 * another user can write is refused with the fix; a user that resolves to uid 0 is no privilege
 * drop. The ownership cases plant files as another user (`nobody`) and so need root.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readUpdateKey, UpdateKeyError } from '../src/daemon/broker-update.js';
import { checkDaemonConfig } from '../src/daemon/check.js';
import { ConfigFileError, parseDaemonConfig } from '../src/daemon/config.js';
import { resolveDropTarget, resolveUser } from '../src/daemon/privileges.js';
import { runDoctor } from '../src/doctor/doctor.js';
import { readTrustedFile, UntrustedFileError } from '../src/daemon/trusted-file.js';
import { rootOrSkip } from './helpers/netlab.js';

const NOBODY = 65534;
const KEY = 'a-broker-update-key';
const isRoot = process.getuid?.() === 0;

const refusal = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
};

describe('update key files (as sshd\'s StrictModes)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-trusted-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a key file that is a symlink is refused, even to a file that would pass (/etc/shadow is root-owned, group-readable)', () => {
    const shadowLike = join(dir, 'shadow');
    writeFileSync(shadowLike, 'root:$y$secret:19000::::::\n', { mode: 0o600 });
    const link = join(dir, 'he.key');
    symlinkSync(shadowLike, link);
    const e = refusal(() => readUpdateKey(link));
    expect(e).toBeInstanceOf(UpdateKeyError);
    expect(e.message).toMatch(/he\.key: is a symbolic link; a key file is read only as itself/);
    expect(e.message).not.toContain('secret');
  });

  it('a key readable by a group that is not the daemon\'s is refused; by the daemon\'s own (or the one it drops to) it is read', () => {
    const k = join(dir, 'group.key');
    writeFileSync(k, `${KEY}\n`, { mode: 0o640 });
    chmodSync(k, 0o640);
    const mine = process.getgid!();
    expect(readUpdateKey(k)).toBe(KEY);
    if (!isRoot) return;
    chownSync(k, 0, 42); // shadow's group on Debian: a group the daemon is not in
    expect(refusal(() => readUpdateKey(k)).message).toMatch(new RegExp(`readable by group 42, which is not the daemon's \\(${mine}\\).*chmod 600`));
    expect(readUpdateKey(k, [42])).toBe(KEY);
    chmodSync(k, 0o600); // group-read off: any group is fine
    expect(readUpdateKey(k)).toBe(KEY);
  });

  it('a device or FIFO is not a key file', () => {
    expect(refusal(() => readTrustedFile('/dev/null', 'secret')).message).toMatch(/not a regular file/);
  });

  it('a config may be a symlink (the file it leads to is checked)', () => {
    const real = join(dir, 'real.toml');
    writeFileSync(real, 'x = 1\n', { mode: 0o644 });
    symlinkSync(real, join(dir, 'link.toml'));
    expect(readTrustedFile(join(dir, 'link.toml'), 'config')).toBe('x = 1\n');
  });
});

describe('a path through symbolic links to directories: every directory on the way is checked', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-trusted-links-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const keyIn = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d, { mode: 0o755 });
    writeFileSync(join(d, 'he.key'), `${KEY}\n`, { mode: 0o600 });
    return d;
  };

  it('a world-writable directory holding a symlink to the key\'s directory is refused: anyone could repoint the link', () => {
    const safe = keyIn('safe');
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    symlinkSync(safe, join(open, 'etc'));
    const e = refusal(() => readUpdateKey(join(open, 'etc', 'he.key')));
    expect(e.message).toMatch(new RegExp(`directory ${open} is writable by group or others \\(mode 0777\\).*chmod go-w ${open}`));
    // the same for a configuration reached that way
    writeFileSync(join(safe, 'c.toml'), 'x = 1\n', { mode: 0o644 });
    expect(refusal(() => readTrustedFile(join(open, 'etc', 'c.toml'), 'config')).message).toMatch(/directory .*open is writable by group or others/);
  });

  it('a symlink (relative, in a safe directory) to a world-writable directory is refused, naming where it leads', () => {
    const ww = keyIn('ww');
    chmodSync(ww, 0o777);
    symlinkSync('ww', join(dir, 'via'));
    expect(refusal(() => readUpdateKey(join(dir, 'via', 'he.key'))).message).toMatch(new RegExp(`directory ${ww} is writable by group or others \\(mode 0777\\)`));
  });

  it('symlinked directories whose every directory is safe pass, ".." through a link included', () => {
    const real = keyIn('real');
    symlinkSync(real, join(dir, 'alias'));
    expect(readUpdateKey(join(dir, 'alias', 'he.key'))).toBe(KEY);
    expect(readUpdateKey(join(dir, 'alias', '..', 'real', 'he.key'))).toBe(KEY);
  });
});

describe.runIf(rootOrSkip())('files in directories another user can write', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-trusted-dirs-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a root-owned 0600 key in a directory nobody owns is refused: nobody could swap it', () => {
    const theirs = join(dir, 'nobodys');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, NOBODY, NOBODY);
    const k = join(theirs, 'he.key');
    writeFileSync(k, `${KEY}\n`, { mode: 0o600 });
    expect(refusal(() => readUpdateKey(k)).message).toMatch(new RegExp(`directory ${theirs} is owned by uid ${NOBODY}, not by root or this user.*chown root`));
    // The same goes for the configuration, which names the key file.
    const conf = join(theirs, 'tun6in4.toml');
    writeFileSync(conf, 'x = 1\n', { mode: 0o644 });
    expect(refusal(() => readTrustedFile(conf, 'config'))).toBeInstanceOf(UntrustedFileError);
  });

  it('a group-writable directory higher up is refused; a root-owned sticky one (/tmp) is not', () => {
    const gw = join(dir, 'gw');
    mkdirSync(join(gw, 'etc'), { recursive: true, mode: 0o755 });
    chmodSync(gw, 0o775);
    const k = join(gw, 'etc', 'he.key');
    writeFileSync(k, `${KEY}\n`, { mode: 0o600 });
    expect(refusal(() => readUpdateKey(k)).message).toMatch(new RegExp(`directory ${gw} is writable by group or others \\(mode 0775\\).*chmod go-w`));
    chmodSync(gw, 0o1777);
    expect(readUpdateKey(k)).toBe(KEY);
  });

  it('check reports it under the key\'s field', () => {
    const theirs = join(dir, 'check');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, NOBODY, NOBODY);
    const k = join(theirs, 'he.key');
    writeFileSync(k, `${KEY}\n`, { mode: 0o600 });
    const conf = join(dir, 'c.json');
    const he = { mode: '6in4', local: 'auto', remote: '198.51.100.1', address: '2001:db8:1::2/64', update: { tunnelId: '1', username: 'u', keyFile: k } };
    writeFileSync(conf, JSON.stringify({ tunnels: { he } }), { mode: 0o600 });
    const e = refusal(() => checkDaemonConfig(conf));
    expect(e).toBeInstanceOf(ConfigFileError);
    expect((e as ConfigFileError).path).toBe('tunnels.he.update.keyFile');
  });
});

describe('the privilege drop refuses every alias of uid 0', () => {
  it('"00" and "000" in a file or --user are refused like "root" and "0"', () => {
    for (const user of ['root', '0', '00', '000']) {
      expect(() => parseDaemonConfig({ tunnels: { t: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true } }, user })).toThrow(/dropping privileges to root drops nothing/);
    }
  });

  it('a name that resolves to uid 0 is refused once resolved; an unprivileged one passes', () => {
    expect(() => resolveDropTarget('00')).toThrow(/user "00" is uid 0 \(root\): dropping to it drops nothing/);
    expect(() => resolveDropTarget('root')).toThrow(/uid 0/);
    expect(resolveDropTarget('nobody')).toEqual({ uid: NOBODY, gid: NOBODY });
  });
});

describe('one way to create the service user', () => {
  it('the daemon\'s messages, doctor and both units give the same useradd', async () => {
    const units = ['tun6in4.service', 'tun6in4@.service'].map((u) => /useradd [^\n]*/.exec(readFileSync(new URL(`../contrib/${u}`, import.meta.url), 'utf8'))![0]);
    const command = 'useradd --system --no-create-home --shell /usr/sbin/nologin';
    expect(units).toEqual([`${command} tun6in4`, `${command} tun6in4`]);
    expect(() => resolveUser('no-such-user-t6')).toThrow(`create it (${command} no-such-user-t6)`);
    expect(() => resolveDropTarget('root')).toThrow(`(${command} tun6in4)`);
    expect(() => parseDaemonConfig({ tunnels: { t: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true } }, user: 'root' })).toThrow(`(${command} tun6in4)`);
    const doctor = (await runDoctor({ user: 'no-such-user-t6' })).find((f) => f.check === '/dev/net/tun for user no-such-user-t6');
    expect(doctor?.fix).toContain(`${command} no-such-user-t6`);
  });
});
