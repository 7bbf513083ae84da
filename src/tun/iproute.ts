/**
 * iproute2's `ip`: interface set-up where the addon has no rtnetlink calls (or
 * TUN6IN4_INTERFACE_SETUP=iproute2 asks for it), and the queries doctor, the advertiser and the lab
 * make. It is on every Linux host with networking, and each step is a command an operator can run
 * by hand.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * `ip` by absolute path, found once: after a privilege drop the daemon's children inherit
 * CAP_NET_ADMIN, so which program runs must not depend on PATH.
 */
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

export class IpCommandError extends Error {
  constructor(readonly args: string[], readonly stderr: string) {
    super(`ip ${args.join(' ')}: ${stderr.trim() || 'failed'}`);
    this.name = 'IpCommandError';
  }
}

/** Runs `ip …args`; throws IpCommandError with ip's own message on failure. */
export async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run(IP, args, { encoding: 'utf8' });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; code?: string; message: string };
    if (err.code === 'ENOENT') throw new IpCommandError(args, 'the ip command (Debian package iproute2) is not installed');
    throw new IpCommandError(args, err.stderr ?? err.message);
  }
}

export async function linkExists(name: string): Promise<boolean> {
  try {
    await ip(['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}
