/**
 * `tun6in4 doctor -c FILE`: what each `[broker.NAME]` of the file needs of this host, before `up`
 * finds out: its address, a route of its own for each pool, IPv6 forwarding, a store it can
 * write, its transport's socket, and its API's address, certificate and token.
 */
import { accessSync, constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import type { BrokerConfig } from '../brokerd/options.js';
import { ip } from '../tun/iproute.js';
import { defaultRouteSource } from '../tun/interface.js';
import type { Finding } from './finding.js';

type Add = (f: Finding) => void;

/** The host checks doctor.ts already has, for the same question about a broker. */
export interface BrokerCheckHelpers {
  localIsOurs(local: string, add: Add, what: string): Promise<void>;
  fouPort(local: string, port: number, add: Add, what: string): void;
}

export async function checkBroker(b: BrokerConfig, add: Add, h: BrokerCheckHelpers): Promise<void> {
  const what = `broker.${b.name}`;
  let local = b.local;
  if (local === 'auto') {
    try {
      local = await defaultRouteSource();
      add({ check: `${what}.local`, level: 'ok', detail: `"auto" is ${local}, the address of the IPv4 default route` });
    } catch (e) {
      add({ check: `${what}.local`, level: 'fail', detail: `"auto": ${(e as Error).message}`, fix: 'give local the IPv4 clients send to' });
      local = '';
    }
  } else {
    await h.localIsOurs(local, add, `${what}.local`);
  }
  await checkPools(b, add, what);
  checkForwarding(add, what);
  checkStore(b.store, add, what);
  if (b.transport === 'fou' && b.port !== undefined) h.fouPort(local, b.port, add, `${what}.port`);
  if (b.api) await checkApi(b, add, what);
}

/** A pool another route already covers exactly takes packets from the broker's TUN, or gives them to it. */
async function checkPools(b: BrokerConfig, add: Add, what: string): Promise<void> {
  const dev = b.dev ?? `t6b-${b.name}`;
  for (const pool of b.pools) {
    let routes = '';
    try {
      routes = await ip(['-6', '-o', 'route', 'show', 'exact', pool]);
    } catch (e) {
      add({ check: `${what}.pools`, level: 'warn', detail: `cannot read routes: ${(e as Error).message}` });
      return;
    }
    const other = routes.split('\n').filter((l) => l.trim() !== '' && !l.includes(` dev ${dev} `));
    add(
      other.length === 0
        ? { check: `${what}.pools`, level: 'ok', detail: `no route for ${pool} yet: up routes it into ${dev}` }
        : {
            check: `${what}.pools`,
            level: 'fail',
            detail: `${pool} is routed already: ${other[0].trim()}`,
            fix: `remove that route (ip -6 route del ${pool}), or leave ${pool} out of pools: the broker must be the only way to it`,
          },
    );
  }
}

/** A broker routes between its clients and the rest: without IPv6 forwarding, only the host itself reaches them. */
function checkForwarding(add: Add, what: string): void {
  let on = false;
  try {
    on = readFileSync('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8').trim() === '1';
  } catch {
    // no /proc/sys: say it is off, with the fix
  }
  add(
    on
      ? { check: `${what} IPv6 forwarding`, level: 'ok', detail: 'on: clients reach beyond this host, and it beyond them' }
      : {
          check: `${what} IPv6 forwarding`,
          level: 'fail',
          detail: 'off: this host answers its clients, but forwards nothing between them and the rest of the IPv6 Internet',
          fix: 'sysctl -w net.ipv6.conf.all.forwarding=1 (and the same line in /etc/sysctl.d/90-tun6in4.conf)',
        },
  );
}

/** The store's directory must be writable by the daemon (SQLite adds its WAL and lock beside the file). */
function checkStore(store: string, add: Add, what: string): void {
  const dir = dirname(store);
  if (!existsSync(dir)) {
    add({ check: `${what}.store`, level: 'fail', detail: `${dir} does not exist`, fix: `create it for the daemon's user (install -d -o tun6in4 -m 0750 ${dir}; the shipped units' StateDirectory=tun6in4 makes /var/lib/tun6in4)` });
    return;
  }
  try {
    accessSync(dir, fsConstants.W_OK);
    if (existsSync(store)) accessSync(store, fsConstants.R_OK | fsConstants.W_OK);
    add({ check: `${what}.store`, level: 'ok', detail: existsSync(store) ? `${store} is there and writable` : `${dir} is writable: up creates ${store}` });
  } catch (e) {
    add({ check: `${what}.store`, level: 'fail', detail: `${(e as NodeJS.ErrnoException).code ?? 'EACCES'}: this user cannot write ${existsSync(store) ? store : dir}`, fix: `make ${dir} the daemon user's (chown tun6in4 ${dir}), or put store under /var/lib/tun6in4` });
  }
}

/** The API's address must be free and bindable here; its certificate, key and token readable. */
async function checkApi(b: BrokerConfig, add: Add, what: string): Promise<void> {
  const api = b.api!;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(api.listen);
  if (m) {
    const [host, port] = [m[1], Number(m[2])];
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const s = createServer();
      s.once('error', (e) => resolve(e as NodeJS.ErrnoException));
      s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(null)));
    });
    if (!err) add({ check: `${what}.api.listen`, level: 'ok', detail: `${api.listen} is free to listen on` });
    else {
      const fix =
        err.code === 'EADDRINUSE'
          ? `another process listens there (ss -ltnp 'sport = :${port}'); stop it or choose another port`
          : err.code === 'EACCES'
            ? `ports below 1024 need CAP_NET_BIND_SERVICE: listen on a higher port (8443), or add the capability to the unit's AmbientCapabilities= and CapabilityBoundingSet=`
            : err.code === 'EADDRNOTAVAIL'
              ? `${host} is not an address of this host: listen on one it has`
              : 'choose an address and port this host can listen on';
      add({ check: `${what}.api.listen`, level: 'fail', detail: `${api.listen}: ${err.code ?? err.message}`, fix });
    }
  }
  for (const [key, file] of [['cert', api.cert], ['key', api.key], ['tokenFile', api.tokenFile]] as const) {
    if (file === undefined) continue;
    try {
      accessSync(file, fsConstants.R_OK);
      add({ check: `${what}.api.${key}`, level: 'ok', detail: `${file} is readable` });
    } catch (e) {
      add({ check: `${what}.api.${key}`, level: 'fail', detail: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, fix: `put the file there, readable by the daemon's user only (chmod 0600; chown tun6in4)` });
    }
  }
}
