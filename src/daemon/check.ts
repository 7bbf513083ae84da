/**
 * `tun6in4 check`: what `up` would refuse in a configuration file and the files it names, found
 * without touching the system — no TUN, no socket, no namespace, no route. What depends on the
 * host at start (a `local` address it has, a free `dev` name) is left to `up` and `doctor`, since a
 * file is often checked before that host is ready; a `local` this host does not have is only a
 * note, since it is the usual mistake behind a 1:1 NAT. Only files are read: the configuration, each
 * update key file (under the same trusted-file rules as the daemon, its contents dropped at once),
 * and /etc/passwd and /etc/group for the users and groups it names; and the host's addresses.
 */
import { networkInterfaces } from 'node:os';
import { configFormatOf, ConfigFileError, loadDaemonConfig, parseDaemonConfigText, type ConfigFormat, type DaemonConfig } from './config.js';
import { readUpdateKey, UpdateKeyError } from './broker-update.js';
import { resolveDropTarget, resolveGroup, resolveUser } from './privileges.js';
import { readBrokerApiFiles } from './brokers.js';

export interface ConfigCheck {
  file: string;
  format: ConfigFormat;
  config: DaemonConfig;
  /** Update key files that were read and hold a key (the key itself is not kept). */
  keyFiles: string[];
  /** What `up` would refuse on this host as it is now, though the file may be meant for later. */
  notes: string[];
}

/** The 1:1 NAT case: a `local` written as the public IPv4, which only the NAT has. */
function localNotes(config: DaemonConfig): string[] {
  const here = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address)));
  return config.tunnels
    .filter(({ spec }) => spec.local !== 'auto' && !here.has(spec.local))
    .map(
      ({ name, spec }) =>
        `tunnels.${name}.local: ${spec.local} is not an address of this host now, so \`up\` here would refuse it; behind a 1:1 NAT (a cloud VM's public IPv4) use local = "auto"`,
    );
}

/** Validates a configuration file and what it refers to; throws ConfigFileError naming the field and the fix. */
export function checkDaemonConfig(path: string): ConfigCheck {
  return checkLoaded(loadDaemonConfig(path), path, configFormatOf(path));
}

/**
 * The same checks of configuration text that is in no file yet (what `import --check` made);
 * `name` stands for the file's path in messages, and relative key files are beside it.
 */
export function checkDaemonConfigText(text: string, format: ConfigFormat, name: string): ConfigCheck {
  return checkLoaded(parseDaemonConfigText(text, format, name), name, format);
}

function checkLoaded(config: DaemonConfig, file: string, format: ConfigFormat): ConfigCheck {
  // The daemon resolves these only after its tunnels are up (or, for the socket's group, just
  // before): a typo would surface after the host was already changed.
  const lookups: Array<[string, string | undefined, (n: string) => unknown]> = [
    ['user', config.user, resolveUser],
    ['group', config.group, resolveGroup],
    ['control.group', config.control.group, resolveGroup],
  ];
  for (const [field, name, resolve] of lookups) {
    if (name === undefined) continue;
    try {
      resolve(name);
    } catch (e) {
      throw new ConfigFileError(field, (e as Error).message);
    }
  }
  let keyGroups: number[] = [];
  if (config.user !== undefined) {
    try {
      keyGroups = [resolveDropTarget(config.user, config.group).gid];
    } catch (e) {
      throw new ConfigFileError('user', (e as Error).message.replace('give --group', 'give group as well'));
    }
  }
  const keyFiles: string[] = [];
  for (const { name, spec } of config.tunnels) {
    if (!spec.update) continue;
    try {
      readUpdateKey(spec.update.keyFile, keyGroups);
    } catch (e) {
      if (e instanceof UpdateKeyError) throw new ConfigFileError(`tunnels.${name}.update.keyFile`, `${e.keyFile}: ${e.detail}`);
      throw e;
    }
    keyFiles.push(spec.update.keyFile);
  }
  // a broker's token and TLS files, as `up` reads them (their contents dropped at once)
  for (const b of config.brokers ?? []) readBrokerApiFiles(b, keyGroups);
  return { file, format, config, keyFiles, notes: localNotes(config) };
}
