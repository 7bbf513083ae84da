/** Structured logs: JSON lines on stderr (pino), so stdout stays for command output. */
import { pino, type Logger } from 'pino';

export function createLogger(level = process.env.TUN6IN4_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
export type { Logger };
