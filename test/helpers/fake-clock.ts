/**
 * Test helper: a FAKE clock (a test double for time) for code that takes an injected Clock
 * (agent/scheduler.ts): time moves only when the test calls `advance`, and timers fire in order.
 */
import type { Clock } from '../../agent/scheduler.js';

/** Time moves only when the test says so; timers fire in time order. */
export class FakeClock implements Clock {
  private time = 1_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 0;

  now(): number {
    return this.time;
  }
  setTimer(fn: () => void, ms: number): () => void {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fn, id });
    return () => {
      this.timers = this.timers.filter((timer) => timer.id !== id);
    };
  }
  /** Moves time forward, firing every timer that comes due, in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((timer) => timer.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((timer) => timer !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = until;
  }
  get pendingTimers(): number {
    return this.timers.length;
  }
}
