/**
 * When the reconciler's passes run (after Kubernetes' BoundedFrequencyRunner): requests are
 * coalesced into one pending pass; passes start at least `minIntervalMs` apart (start to start);
 * a pass can also be due at a set time for a named reason (retry-after: a plumbing retry); a
 * verification read is due at a time the caller computes. `next()` says what is due now or how
 * long to wait; `sleep()` waits on the injected clock and is cut short by `request()`/`wake()`.
 *
 * Invariants: all time comes from the injected Clock (tests drive a fake one: no sleeps, no
 * wall time); nothing here runs a pass or touches the kernel; a request is never lost: it stays
 * pending until `passStarted()` consumes it.
 */
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** Waits `ms` on `clock`. */
export function clockSleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}

export type Decision =
  | { action: 'pass'; reasons: readonly string[] }
  | { action: 'verify' }
  | { action: 'wait'; ms: number };

export class Scheduler {
  private requested = false;
  private lastStart = -Infinity;
  /** Reason → when a pass becomes due for it. */
  private readonly deadlines = new Map<string, number>();
  private wakeUp: (() => void) | undefined;

  constructor(
    readonly clock: Clock,
    private readonly minIntervalMs: number,
  ) {}

  /** A pass is wanted as soon as the minimum interval allows; wakes a sleeping loop. */
  request(): void {
    this.requested = true;
    this.wake();
  }

  get pending(): boolean {
    return this.requested;
  }

  /** A pass becomes due at `at` for `reason` (null: no longer). */
  passAt(reason: string, at: number | null): void {
    if (at === null) this.deadlines.delete(reason);
    else this.deadlines.set(reason, at);
    this.wake();
  }

  /** When the next pass is due (Infinity: none wanted). */
  passDueAt(): number {
    let due = this.requested ? this.lastStart + this.minIntervalMs : Infinity;
    for (const at of this.deadlines.values()) due = Math.min(due, at);
    return due;
  }

  /**
   * What to do now: a pass when one is due (its reasons: `requested` and/or the deadlines
   * reached), else a verification when `verifyDueAt` has come, else wait until the earlier.
   */
  next(verifyDueAt: number): Decision {
    const now = this.clock.now();
    const passDue = this.passDueAt();
    if (passDue <= now) {
      const reasons = [...(this.requested && this.lastStart + this.minIntervalMs <= now ? ['requested'] : [])];
      for (const [reason, at] of this.deadlines) if (at <= now) reasons.push(reason);
      return { action: 'pass', reasons };
    }
    if (verifyDueAt <= now) return { action: 'verify' };
    return { action: 'wait', ms: Math.min(passDue, verifyDueAt) - now };
  }

  /**
   * A pass starts now: the request is consumed, and the deadlines of `served` (the reasons this
   * pass handles); other deadlines stay due.
   */
  passStarted(served: readonly string[] = []): void {
    this.lastStart = this.clock.now();
    this.requested = false;
    for (const reason of served) this.deadlines.delete(reason);
  }

  /** Sleeps up to `ms` on the clock; `request()`, `passAt()` or `wake()` end it early. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let cancel: () => void = () => {};
      const done = (): void => {
        cancel();
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      this.wakeUp = done;
      if (Number.isFinite(ms)) cancel = this.clock.setTimer(done, Math.max(0, ms));
    });
  }

  /** Ends a `sleep()` in progress. */
  wake(): void {
    this.wakeUp?.();
  }
}
