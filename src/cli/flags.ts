/** Flag parsing helpers: turn flag text into typed option values, naming the flag on error. */
import { InvalidArgumentError } from 'commander';

/** Library / config-file field → the `tun6in4 run` flag that sets it. */
export const FLAG_FOR_FIELD: Record<string, string> = {
  mode: '--mode',
  local: '--local',
  remote: '--remote',
  address: '--address',
  peer: '--peer',
  routed: '--routed',
  relay: '--relay',
  role: '--role',
  sixrdPrefix: '--6rd-prefix',
  ipv4MaskLen: '--ipv4-mask-len',
  sixrdIpv4Prefix: '--6rd-ipv4-prefix',
  sixrdDhcp: '--6rd-dhcp',
  mtu: '--mtu',
  encap: '--encap',
  encapDport: '--encap-dport',
  encapPort: '--encap-port',
  encapCsum: '--encap-csum',
  pmtu: '--pmtu',
  ttl: '--ttl',
  tos: '--tos',
  allowNonGlobal: '--allow-nonglobal',
  clampMss: '--clamp-mss',
  icmpRate: '--icmp-rate',
  icmpBurst: '--icmp-burst',
  dev: '--dev',
  offload: '--no-offload',
  ioUring: '--no-io-uring',
  defaultRouteMetric: '--default-route-metric',
  keepalive: '--keepalive',
  url: '--update-url',
  insecureHttp: '--update-insecure-http',
  tunnelId: '--tunnel-id',
  username: '--username',
  keyFile: '--update-key-file',
  control: '--control',
  metrics: '--metrics-listen',
  listen: '--metrics-listen',
  user: '--user',
  group: '--group',
};

/** A bad `run` flag: the message starts with the flag's name. */
export class FlagError extends Error {
  constructor(readonly flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'FlagError';
  }

  /**
   * `run` validates its flags as a one-tunnel config file; a config path such as
   * `tunnels.tun0.update.keyFile` names the flag by its last part, `tunnels.tun0.mtu` by the field.
   */
  static fromConfigPath(path: string, detail: string): FlagError {
    const parts = path.split('.');
    const field = parts.length > 2 ? parts[parts.length - 1] : parts[0];
    return new FlagError(FLAG_FOR_FIELD[field] ?? FLAG_FOR_FIELD[parts[2] ?? ''] ?? path, detail);
  }
}

export function integer(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number.');
  return Number(text);
}

export function integerOrInherit(text: string): number | 'inherit' {
  if (text === 'inherit') return 'inherit';
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number or "inherit".');
  return Number(text);
}

export function secondsOrOff(text: string): number | 'off' {
  if (text === 'off') return 'off';
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('expected seconds (1 or more) or "off".');
  return Number(text);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
