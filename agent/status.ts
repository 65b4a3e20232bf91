/**
 * Status reporting to etcd under `/calico/felix/v1/host/<host>/` (reference §1.2):
 *
 * - Host liveness: `status` = `{"time": "<ISO-8601, seconds, Z>", "uptime": <s>, "first_update": bool}`
 *   written every `intervalMs` (+0–10 % jitter) on a lease of `ttlMs`, so it vanishes when the
 *   agent stops reporting; `last_reported_status` gets the same value without a lease.
 * - Endpoint status: `workload/<orch>/<wl>/endpoint/<ep>` = `{"status": "up"|"down"|"error"}`
 *   for each local endpoint, written only when it changes; deleted when the endpoint goes. The
 *   first sync lists our status subtree and removes statuses of endpoints we do not know.
 *
 * Invariants: reporting never blocks or fails the dataplane; etcd errors are logged and the
 * next update or report retries. Flushes are serialised (one in flight at a time); within one,
 * endpoint statuses are written in transactions of up to 128 changes, a few at a time.
 */
import { performance } from 'node:perf_hooks';
import type { Etcd3, IRequestOp, Lease } from 'etcd3';
import { endpointStatusKey, hostLastReportedKey, hostStatusKey, hostStatusPrefix } from '../src/model/index.js';
import type { Logger } from './logger.js';
import type { EndpointStatus } from './endpoint-plumber.js';

export interface StatusReporterOptions {
  client: Etcd3;
  hostname: string;
  log: Logger;
  /** Host status period; 0 disables host status. Default 30 s. */
  intervalMs?: number;
  /** Lease TTL of the host status key. Default 90 s. */
  ttlMs?: number;
  /** Write per-endpoint statuses. Default true. */
  endpointStatus?: boolean;
  /** Retry delay after a failed endpoint-status flush. Default 1 s. */
  retryMs?: number;
}

/** etcd's default limit of operations in one transaction (--max-txn-ops). */
const TXN_OPS = 128;
const TXN_IN_FLIGHT = 4;

/** An error's message as one line (for warnings; the stack goes to debug). */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!.trim();
}

/** `2016-02-29T14:54:31Z`: UTC, seconds precision, as Felix writes it. */
export function felixTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class StatusReporter {
  private readonly client: Etcd3;
  private readonly hostname: string;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly ttlSeconds: number;
  private readonly endpointStatus: boolean;
  private readonly retryMs: number;
  private readonly startedAt = performance.now();

  private firstReport = true;
  private lease: Lease | undefined;
  private hostTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Status key → value we believe etcd holds. */
  private readonly written = new Map<string, string>();
  private desired: Map<string, string> | undefined;
  private cleanedUp = false;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  private stopped = false;

  constructor(options: StatusReporterOptions) {
    this.client = options.client;
    this.hostname = options.hostname;
    this.log = options.log.child({ component: 'status' });
    this.intervalMs = options.intervalMs ?? 30_000;
    this.ttlSeconds = Math.max(1, Math.ceil((options.ttlMs ?? 90_000) / 1000));
    this.endpointStatus = options.endpointStatus ?? true;
    this.retryMs = options.retryMs ?? 1_000;
  }

  /** Starts periodic host status reports (the first one at once). */
  start(): void {
    if (this.intervalMs <= 0 || this.hostTimer || this.stopped) return;
    const tick = (): void => {
      void this.reportHost().finally(() => {
        if (this.stopped) return;
        this.hostTimer = setTimeout(tick, this.intervalMs * (1 + Math.random() * 0.1));
      });
    };
    tick();
  }

  /** Writes one host status report now. */
  async reportHost(): Promise<void> {
    const value = JSON.stringify({
      time: felixTime(new Date()),
      uptime: Number(((performance.now() - this.startedAt) / 1000).toFixed(3)),
      first_update: this.firstReport,
    });
    const previous = this.lease;
    try {
      const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: false });
      lease.on('lost', () => {});
      await lease.put(hostStatusKey(this.hostname)).value(value);
      this.lease = lease;
      await this.client.put(hostLastReportedKey(this.hostname)).value(value);
      this.firstReport = false;
      // The key now lives on the new lease; revoking the old one deletes nothing.
      if (previous) await previous.revoke().catch(() => {});
    } catch (error) {
      this.log.warn({ reason: oneLine(error) }, 'could not report host status to etcd');
      this.log.debug({ err: error }, 'host status report failure');
    }
  }

  /** Sets the statuses of all local endpoints (by etcd key); writes the differences. */
  update(statuses: ReadonlyMap<string, EndpointStatus>): Promise<void> {
    if (!this.endpointStatus || this.stopped) return Promise.resolve();
    const desired = new Map<string, string>();
    for (const { ref, status } of statuses.values()) desired.set(endpointStatusKey(ref), JSON.stringify({ status }));
    this.desired = desired;
    return this.flush();
  }

  /** Resolves when the writes queued so far are done (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.hostTimer);
    clearTimeout(this.retryTimer);
    await this.settled();
  }

  private flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      do {
        this.flushAgain = false;
        try {
          await this.writeDifferences();
        } catch (error) {
          this.log.warn({ reason: oneLine(error) }, 'could not write endpoint status to etcd; will retry');
          this.log.debug({ err: error }, 'endpoint status write failure');
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => void this.flush(), this.retryMs);
          break;
        }
      } while (this.flushAgain && !this.stopped);
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async writeDifferences(): Promise<void> {
    const desired = this.desired;
    if (!desired) return;
    if (!this.cleanedUp) {
      // Adopt what a previous run wrote: remember it, and remove statuses of unknown endpoints.
      const existing = await this.client.getAll().prefix(`${hostStatusPrefix(this.hostname)}workload/`).strings();
      for (const [key, value] of Object.entries(existing)) this.written.set(key, value);
      this.cleanedUp = true;
    }
    const puts = [...desired].filter(([key, value]) => this.written.get(key) !== value);
    const deletes = [...this.written.keys()].filter((key) => !desired.has(key));
    // Batched: one transaction per TXN_OPS changes, TXN_IN_FLIGHT of them at a time.
    const ops: { key: string; value: string | undefined }[] = [
      ...puts.map(([key, value]) => ({ key, value })),
      ...deletes.map((key) => ({ key, value: undefined })),
    ];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ops.length) {
        const batch = ops.slice(next, next + TXN_OPS);
        next += TXN_OPS;
        const success: IRequestOp[] = batch.map(({ key, value }) =>
          value === undefined
            ? { request_delete_range: { key: Buffer.from(key) } }
            : { request_put: { key: Buffer.from(key), value: Buffer.from(value) } },
        );
        await this.client.kv.txn({ success });
        for (const { key, value } of batch) {
          if (value === undefined) this.written.delete(key);
          else this.written.set(key, value);
        }
      }
    };
    await Promise.all(Array.from({ length: TXN_IN_FLIGHT }, worker));
  }
}
