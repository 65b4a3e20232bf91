/**
 * When the reconciler checks the kernel against its writers' caches (after Felix's post-write
 * checks): periodically (every `refreshIntervalMs`; with `refreshFloorMs` as often as that floor
 * while a read costs at most 2.5 % of the time, so a small dataplane is re-checked every few
 * seconds and a large one less often), and after every write on a doubling schedule that
 * starts at a floor of max(`postWriteCheckMinMs`, 2 × (peak read + peak write duration)) and stops
 * past `postWriteCheckMaxMs` until the next write. The peaks decay by 10 % per new sample, so the
 * floor follows the recent durations (a large table reads slowly: checks are spaced further apart).
 *
 * A background read that overlapped our own writes cannot be trusted: it is retried after the
 * floor, doubling; after UNTRUSTED_READS_BEFORE_IN_PASS such reads in a row (a write stream that
 * never pauses), or after a read that failed, the next check reads inside a pass (`inPass`), so
 * the kernel is always checked eventually.
 *
 * A background read may be aborted by our next write (`mayPreempt`) while the kernel was checked
 * within the last `refreshIntervalMs` (else `postWriteCheckMaxMs`); an aborted read is retried
 * after the floor, doubling per abort in a row (a read started only to be killed still costs a
 * burst of CPU), without escalating. Past that age a read runs to its end even if it slows a
 * write: under a write stream that never pauses, at most one write per interval pays for it.
 *
 * Invariants: pure bookkeeping on the injected clock; nothing here reads or writes the kernel.
 */
import type { Clock } from './scheduler.js';

/**
 * Verification reads overlapping our writes in a row before the next one runs inside a pass. The
 * recheck delay doubles from the post-write floor meanwhile, so under a write stream that never
 * pauses the kernel is still checked within about 31 floors.
 */
export const UNTRUSTED_READS_BEFORE_IN_PASS = 5;
/** With a refresh floor, a periodic read comes no sooner than this many times its duration (≤ 2.5 % of the time). */
export const READ_DUTY_FACTOR = 40;
/** A duration peak keeps this share of itself per new sample (unless the sample is higher). */
const PEAK_KEEP = 0.9;

export interface VerificationScheduleOptions {
  /** Periodic check, at the latest this long after the last one; 0 disables. */
  refreshIntervalMs: number;
  /**
   * When set, the periodic check comes as often as every `refreshFloorMs`, while reads stay
   * cheap: every max(refreshFloorMs, READ_DUTY_FACTOR × peak read), capped at refreshIntervalMs.
   */
  refreshFloorMs?: number;
  postWriteCheckMinMs: number;
  postWriteCheckMaxMs: number;
}

export class VerificationSchedule {
  private peakReadMs = 0;
  private peakWriteMs = 0;
  private lastVerifiedAt = -Infinity;
  private postWriteCheckAt: number | null = null;
  private postWriteInterval: number;
  private untrustedReads = 0;
  private preemptedReads = 0;
  private retryAt = -Infinity;
  private readInPass = false;

  constructor(
    private readonly clock: Clock,
    private readonly opts: VerificationScheduleOptions,
  ) {
    this.postWriteInterval = opts.postWriteCheckMinMs;
  }

  /** Delay of the first check after a write. */
  get floorMs(): number {
    return Math.max(this.opts.postWriteCheckMinMs, 2 * (this.peakReadMs + this.peakWriteMs));
  }

  /** The next check should read the kernel inside a pass (not in the background). */
  get inPass(): boolean {
    return this.readInPass;
  }

  /** The current periodic interval (0: no periodic checks). */
  get refreshMs(): number {
    const max = this.opts.refreshIntervalMs;
    if (max <= 0 || this.opts.refreshFloorMs === undefined) return max;
    return Math.min(max, Math.max(this.opts.refreshFloorMs, READ_DUTY_FACTOR * this.peakReadMs));
  }

  /** When the next check is due: periodic or post-write, but not before a retry's delay. */
  dueAt(): number {
    const periodic = this.refreshMs > 0 ? this.lastVerifiedAt + this.refreshMs : Infinity;
    return Math.max(Math.min(periodic, this.postWriteCheckAt ?? Infinity), this.retryAt);
  }

  /** A read of the kernel took `ms`. */
  readTook(ms: number): void {
    this.peakReadMs = Math.max(ms, this.peakReadMs * PEAK_KEEP);
  }

  /** Writes took `ms`: the post-write checks start over from the floor. */
  wrote(ms: number): void {
    this.peakWriteMs = Math.max(ms, this.peakWriteMs * PEAK_KEEP);
    this.postWriteInterval = this.floorMs;
    this.postWriteCheckAt = this.clock.now() + this.postWriteInterval;
  }

  /** A trusted check of the whole kernel, started at `startedAt`, is done. */
  verified(startedAt: number): void {
    this.lastVerifiedAt = this.clock.now();
    this.untrustedReads = 0;
    this.preemptedReads = 0;
    this.retryAt = -Infinity;
    this.readInPass = false;
    if (this.postWriteCheckAt !== null && startedAt >= this.postWriteCheckAt) {
      this.postWriteInterval *= 2;
      this.postWriteCheckAt = this.postWriteInterval <= this.opts.postWriteCheckMaxMs ? this.lastVerifiedAt + this.postWriteInterval : null;
    }
  }

  /** A background read overlapped our writes: retry later, inside a pass after too many in a row. */
  untrusted(): void {
    this.untrustedReads += 1;
    this.retryAt = this.clock.now() + this.floorMs * 2 ** (this.untrustedReads - 1);
    if (this.untrustedReads >= UNTRUSTED_READS_BEFORE_IN_PASS) this.readInPass = true;
  }

  /** Our writes may abort a background read started now: the kernel was checked recently enough. */
  get mayPreempt(): boolean {
    // The interval, not the floor: reads started at the floor's pace stay preemptible.
    const maxUnverifiedMs = this.opts.refreshIntervalMs > 0 ? this.opts.refreshIntervalMs : this.opts.postWriteCheckMaxMs;
    return this.clock.now() - this.lastVerifiedAt < maxUnverifiedMs;
  }

  /**
   * A background read was aborted by our write after running `ranMs`: retried after the floor,
   * doubling per abort in a row. A read takes at least as long as it ran, so the peak is raised
   * to that (without decay): a schedule that underestimated reads (a first read of a kernel still
   * empty) spaces its checks out instead of starting reads only to abort them.
   */
  preempted(ranMs: number): void {
    this.peakReadMs = Math.max(this.peakReadMs, ranMs);
    this.preemptedReads += 1;
    this.retryAt = this.clock.now() + this.floorMs * 2 ** (this.preemptedReads - 1);
  }

  /** A background read failed: the next check reads inside a pass. */
  failed(): void {
    this.readInPass = true;
  }
}
