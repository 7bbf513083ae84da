/** Structured logs on stderr (stdout stays for command output): JSON lines, readable on a terminal. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * On a terminal: `status` and `counters` are for programs (the JSON log keeps them whole); a
 * person reads the `up` and `down` summaries, the latter on the message's own line.
 */
const PRETTY = { sync: true, colorize: true, ignore: 'hostname,status,counters,down,signal', messageFormat: '{msg}{if down} ({signal}): {down}{end}' };

/** `out`: where to write, and whether a person reads it there (default stderr, pretty if a terminal). */
export function createLogger(level = process.env.TUN6IN4_LOG_LEVEL ?? 'info', out: { tty?: boolean; stream?: NodeJS.WritableStream } = {}): Logger {
  const opts = { level, base: { pid: process.pid } };
  if (out.tty ?? process.stderr.isTTY) return pino(opts, pretty({ ...PRETTY, destination: out.stream ?? 2 }));
  return pino(opts, out.stream ?? pino.destination({ dest: 2, sync: true }));
}
export type { Logger };
