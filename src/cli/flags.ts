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
  mtu: '--mtu',
  pmtu: '--pmtu',
  ttl: '--ttl',
  tos: '--tos',
  allowNonGlobal: '--allow-nonglobal',
  clampMss: '--clamp-mss',
  icmpRate: '--icmp-rate',
  icmpBurst: '--icmp-burst',
  dev: '--dev',
  offload: '--offload',
  defaultRouteMetric: '--default-route-metric',
  keepalive: '--keepalive',
  url: '--update-url',
  tunnelId: '--tunnel-id',
  username: '--username',
  keyFile: '--update-key-file',
  control: '--control',
  metrics: '--metrics-listen',
  listen: '--metrics-listen',
  user: '--user',
  group: '--group',
};

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
