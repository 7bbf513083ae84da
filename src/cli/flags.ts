/** Flag parsing helpers: turn flag text into typed option values, naming the flag on error. */
import { InvalidArgumentError } from 'commander';

/** Library option field → the CLI flag that sets it. */
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
  icmpRate: '--icmp-rate',
  icmpBurst: '--icmp-burst',
  dev: '--dev',
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

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
