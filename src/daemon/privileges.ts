/** Least privilege: become an unprivileged user once the TUN and raw sockets are open. */
import { readFileSync } from 'node:fs';
import { loadNative } from '../io/native.js';

/** How to make the service's user: the same command the units and doctor give. */
export function createSystemUser(name: string): string {
  return `useradd --system --no-create-home --shell /usr/sbin/nologin ${name}`;
}

function lookup(file: string, name: string, what: 'user' | 'group'): { id: number; gid?: number } {
  if (/^\d+$/.test(name)) return { id: Number(name) };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name) return { id: Number(f[2]), gid: f[3] !== undefined ? Number(f[3]) : undefined };
  }
  const create = what === 'user' ? createSystemUser(name) : `groupadd --system ${name}`;
  throw new Error(`no ${what} named "${name}" in ${file}; create it (${create}) or give a numeric id`);
}

export function resolveUser(name: string): { uid: number; gid: number | undefined } {
  const u = lookup('/etc/passwd', name, 'user');
  return { uid: u.id, gid: u.gid };
}

/**
 * The user and group to drop to, refusing any that is uid 0 once resolved ("00", a second
 * uid-0 name such as toor): dropping to root drops nothing.
 */
export function resolveDropTarget(user: string, group?: string): { uid: number; gid: number } {
  const u = resolveUser(user);
  if (u.uid === 0) throw new Error(`user "${user}" is uid 0 (root): dropping to it drops nothing; name an unprivileged user (${createSystemUser('tun6in4')})`);
  const gid = group !== undefined ? resolveGroup(group) : u.gid;
  if (gid === undefined) throw new Error(`user "${user}" has no primary group; give --group`);
  return { uid: u.uid, gid };
}

export function resolveGroup(name: string): number {
  return lookup('/etc/group', name, 'group').id;
}

/**
 * Drops to `user` (and `group`, default the user's primary group), keeping only CAP_NET_ADMIN and
 * CAP_NET_RAW: enough to reopen the raw socket when the local address changes and to remove our
 * routes at shutdown, nothing else.
 */
export function dropPrivileges(user: string, group?: string): { uid: number; gid: number } {
  const ids = resolveDropTarget(user, group);
  loadNative().dropPrivileges(ids.uid, ids.gid);
  return ids;
}
