/**
 * Publishes the revision this host's kernel reflects (src/model/dataplane-status.ts) after each
 * apply, for `calicoctl status` and `--wait`.
 *
 * Invariants:
 * - The first change after a quiet spell is written at once (a `--wait` caller sees it within
 *   one etcd round trip of the apply); later ones are coalesced to at most one write per
 *   `minIntervalMs`, always the latest state. One write is in flight at a time.
 * - A failed write is logged and retried after `minIntervalMs` with the state current then;
 *   publishing never blocks or fails the dataplane.
 * - Identical states are not rewritten.
 */
import { dataplaneStatusKey, type DataplaneStatus } from '../src/model/index.js';
import type { Logger } from './logger.js';
import { oneLine } from './status.js';
import { systemClock, type Clock } from './scheduler.js';

/** Writes one status value (the agent: an etcd put of the host's key). */
export type StatusWrite = (key: string, value: string) => Promise<void>;

export interface DataplaneStatusPublisherOptions {
  hostname: string;
  write: StatusWrite;
  log: Logger;
  /** Minimum spacing of writes (default 100 ms: at most 10 per second per host). */
  minIntervalMs?: number;
  clock?: Clock;
}

export class DataplaneStatusPublisher {
  private readonly key: string;
  private readonly write: StatusWrite;
  private readonly log: Logger;
  private readonly minIntervalMs: number;
  private readonly clock: Clock;
  private pending: string | undefined;
  private written: string | undefined;
  private lastWriteAt = -Infinity;
  private inFlight: Promise<void> | undefined;
  private cancelTimer: (() => void) | undefined;
  private stopped = false;

  constructor(options: DataplaneStatusPublisherOptions) {
    this.key = dataplaneStatusKey(options.hostname);
    this.write = options.write;
    this.log = options.log.child({ component: 'dataplane-status' });
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.clock = options.clock ?? systemClock;
  }

  publish(status: DataplaneStatus): void {
    if (this.stopped) return;
    const value = JSON.stringify(status);
    if (value === this.written && this.pending === undefined) return;
    this.pending = value;
    this.kick();
  }

  /** Resolves when nothing is pending or in flight (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    await this.settled();
  }

  private kick(): void {
    if (this.inFlight || this.cancelTimer || this.pending === undefined || this.stopped) return;
    const wait = this.lastWriteAt + this.minIntervalMs - this.clock.now();
    if (wait > 0) {
      this.cancelTimer = this.clock.setTimer(() => {
        this.cancelTimer = undefined;
        this.kick();
      }, wait);
      return;
    }
    const value = this.pending;
    this.pending = undefined;
    this.lastWriteAt = this.clock.now();
    this.inFlight = this.write(this.key, value)
      .then(
        () => {
          this.written = value;
        },
        (error: unknown) => {
          this.log.warn({ reason: oneLine(error) }, 'could not publish the dataplane status to etcd; will retry');
          this.pending ??= value;
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.kick();
      });
  }
}
