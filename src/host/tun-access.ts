/**
 * Who may open /dev/net/tun. Capabilities do not override a device node's mode (only
 * CAP_DAC_OVERRIDE would, and a service keeps just CAP_NET_ADMIN and CAP_NET_RAW), so a node left
 * at devtmpfs's 0600 root:root — no udev to widen it, as in many containers and microVMs — stops
 * an unprivileged daemon that has every capability it needs. This reads the node's owner and mode
 * and says which user is refused and what fixes it.
 */
import { readFileSync, statSync } from 'node:fs';

export const TUN_PATH = '/dev/net/tun';

/** The device node as `ls -l` would show it. */
export interface TunNode {
  path: string;
  uid: number;
  gid: number;
  /** Permission bits only (0o600). */
  mode: number;
  owner: string;
  group: string;
}

/** A user the daemon runs as (or will): the ids the kernel checks the node's mode against. */
export interface TunUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
}

function readLines(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

const nameOf = (file: string, id: number): string => readLines(file).find((f) => Number(f[2]) === id)?.[0] ?? String(id);

/** The node's owner and mode; null when it does not exist (or cannot be looked at). */
export function tunNode(path = TUN_PATH): TunNode | null {
  try {
    const st = statSync(path);
    return { path, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, owner: nameOf('/etc/passwd', st.uid), group: nameOf('/etc/group', st.gid) };
  } catch {
    return null;
  }
}

/** `crw------- root:root (0600)` */
export function formatTunNode(n: TunNode): string {
  const bits = 'rwxrwxrwx'.replace(/./g, (c, i: number) => (n.mode & (0o400 >> i) ? c : '-'));
  return `c${bits} ${n.owner}:${n.group} (${n.mode.toString(8).padStart(4, '0')})`;
}

/** This process as the kernel sees it when it opens the node. */
export function currentTunUser(): TunUser {
  const uid = process.getuid?.() ?? 0;
  return { name: nameOf('/etc/passwd', uid), uid, gid: process.getgid?.() ?? 0, groups: process.getgroups?.() ?? [] };
}

/** A user of /etc/passwd by name (or numeric id), with the groups /etc/group lists it in; null if unknown. */
export function lookupTunUser(name: string): TunUser | null {
  const entry = readLines('/etc/passwd').find((f) => f[0] === name || (/^\d+$/.test(name) && f[2] === name));
  if (!entry && !/^\d+$/.test(name)) return null;
  const uid = entry ? Number(entry[2]) : Number(name);
  const gid = entry ? Number(entry[3]) : uid;
  const userName = entry?.[0] ?? name;
  const groups = readLines('/etc/group')
    .filter((g) => (g[3] ?? '').split(',').includes(userName))
    .map((g) => Number(g[2]));
  return { name: userName, uid, gid, groups };
}

/**
 * Whether the mode lets `user` open the node read-write, as the kernel decides it: owner bits for
 * the owner, else group bits for a member, else the others' bits. Root is let through (it has
 * CAP_DAC_OVERRIDE unless something took it away); POSIX ACLs are not read.
 */
export function modeAllows(n: TunNode, user: TunUser): boolean {
  if (user.uid === 0) return true;
  const shift = user.uid === n.uid ? 6 : user.gid === n.gid || user.groups.includes(n.gid) ? 3 : 0;
  return ((n.mode >> shift) & 0o6) === 0o6;
}

/** What lets `user` open the node; the first is udev's, where the shipped systemd units grant only their group. */
export function tunAccessFix(n: TunNode, user: TunUser): string {
  const fixes = [`give it udev's usual mode: chmod 0666 ${n.path} (the shipped systemd units instead give it to their group, 0660 root:tun6in4, before each start when it is 0600 root:root; see docs/systemd.md)`];
  if (n.gid !== 0 && (n.mode & 0o060) === 0o060) fixes.push(`add ${user.name} to group ${n.group} (systemd: SupplementaryGroups=${n.group})`);
  fixes.push('or start as root and drop with --user (a tunnel added by a later reload then cannot open the device)');
  return fixes.join('; ');
}

/**
 * Why an open of the node was refused with EACCES or EPERM, and the fix. EACCES is its mode;
 * EPERM comes from a device cgroup (a container or a unit not allowing the device), not the mode.
 */
export function tunOpenDenied(errno: 'EACCES' | 'EPERM', n: TunNode | null = tunNode(), user: TunUser = currentTunUser()): { problem: string; fix: string } {
  const who = `${user.name} (uid ${user.uid})`;
  if (errno === 'EPERM') {
    return {
      problem: `a device cgroup refuses ${TUN_PATH} to ${who}`,
      fix: `allow the device (docker/podman: --device ${TUN_PATH}; systemd: DeviceAllow=${TUN_PATH} rw; LXC: lxc.cgroup2.devices.allow = c 10:200 rwm)`,
    };
  }
  if (!n) return { problem: `${TUN_PATH} cannot be looked at by ${who}`, fix: 'make /dev/net searchable and the device readable and writable for this user' };
  return { problem: `${n.path} is ${formatTunNode(n)} and this runs as ${who}; capabilities do not override a device's mode`, fix: tunAccessFix(n, user) };
}

/** `open /dev/net/tun: Permission denied: <why>: <fix>` */
export function tunOpenDeniedMessage(error: string, errno: 'EACCES' | 'EPERM', n?: TunNode | null, user?: TunUser): string {
  const { problem, fix } = tunOpenDenied(errno, n, user);
  return `${error}: ${problem}: ${fix}`;
}
