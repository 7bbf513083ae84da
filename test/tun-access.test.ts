/**
 * Who may open /dev/net/tun, from the node's owner and mode (capabilities do not override it),
 * and the message that names the node, the user and the fix.
 */
import { describe, expect, it } from 'vitest';
import { formatTunNode, lookupTunUser, modeAllows, tunOpenDenied, tunOpenDeniedMessage, type TunNode, type TunUser } from '../src/host/tun-access.js';

const devtmpfs: TunNode = { path: '/dev/net/tun', uid: 0, gid: 0, mode: 0o600, owner: 'root', group: 'root' };
const udev: TunNode = { ...devtmpfs, mode: 0o666 };
const netdev: TunNode = { ...devtmpfs, gid: 108, group: 'netdev', mode: 0o660 };
const service: TunUser = { name: 'tun6in4', uid: 999, gid: 999, groups: [] };

describe('/dev/net/tun access by mode', () => {
  it('formats the node as ls -l does, with the octal mode', () => {
    expect(formatTunNode(devtmpfs)).toBe('crw------- root:root (0600)');
    expect(formatTunNode(udev)).toBe('crw-rw-rw- root:root (0666)');
    expect(formatTunNode(netdev)).toBe('crw-rw---- root:netdev (0660)');
  });

  it('owner bits for the owner, group bits for a member (primary or supplementary), else the others\' bits; root always', () => {
    expect(modeAllows(devtmpfs, service)).toBe(false);
    expect(modeAllows(udev, service)).toBe(true);
    expect(modeAllows(netdev, service)).toBe(false);
    expect(modeAllows(netdev, { ...service, groups: [108] })).toBe(true);
    expect(modeAllows(netdev, { ...service, gid: 108 })).toBe(true);
    expect(modeAllows({ ...devtmpfs, uid: 999 }, service)).toBe(true);
    // read-write is needed: a read-only grant is no grant
    expect(modeAllows({ ...devtmpfs, mode: 0o644 }, service)).toBe(false);
    // the owner's bits decide for the owner even when others may
    expect(modeAllows({ ...devtmpfs, uid: 999, mode: 0o066 }, service)).toBe(false);
    expect(modeAllows(devtmpfs, { name: 'root', uid: 0, gid: 0, groups: [] })).toBe(true);
  });

  it('EACCES: names the node\'s owner and mode, the user, and the fixes (the group one only where the group may open it)', () => {
    const m = tunOpenDeniedMessage('open /dev/net/tun: Permission denied', 'EACCES', devtmpfs, service);
    expect(m).toMatch(/^open \/dev\/net\/tun: Permission denied: \/dev\/net\/tun is crw------- root:root \(0600\) and this runs as tun6in4 \(uid 999\); capabilities do not override a device's mode: give it udev's usual mode: chmod 0666 \/dev\/net\/tun/);
    expect(m).toContain('start as root and drop with --user');
    expect(m).not.toContain('SupplementaryGroups');
    expect(tunOpenDenied('EACCES', netdev, service).fix).toContain('add tun6in4 to group netdev (systemd: SupplementaryGroups=netdev)');
  });

  it('EPERM is a device cgroup, not the mode: says how to allow the device', () => {
    const { problem, fix } = tunOpenDenied('EPERM', udev, service);
    expect(problem).toBe('a device cgroup refuses /dev/net/tun to tun6in4 (uid 999)');
    expect(fix).toContain('--device /dev/net/tun');
    expect(fix).toContain('DeviceAllow=/dev/net/tun rw');
  });

  it('looks users up in /etc/passwd and /etc/group; an unknown name is null', () => {
    expect(lookupTunUser('root')).toMatchObject({ name: 'root', uid: 0, gid: 0 });
    expect(lookupTunUser('no-such-user-tun6in4-test')).toBeNull();
  });
});
