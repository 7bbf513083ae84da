/** Structured logs on stderr (stdout stays for command output): JSON lines, readable on a terminal. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export function createLogger(level = process.env.TUN6IN4_LOG_LEVEL ?? 'info'): Logger {
  const opts = { level, base: { pid: process.pid } };
  if (process.stderr.isTTY) return pino(opts, pretty({ destination: 2, sync: true, colorize: true, ignore: 'hostname,status' }));
  return pino(opts, pino.destination({ dest: 2, sync: true }));
}
export type { Logger };
