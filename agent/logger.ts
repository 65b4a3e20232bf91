/**
 * The agent's logger: pino JSON lines on stderr (stdout stays free for `--dry-run` output).
 * Components take a child logger carrying their name (`{component: "syncer"}`), Felix's logCxt.
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { name: 'calico-agent' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
