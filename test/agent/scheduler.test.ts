/**
 * The pass scheduler on a FAKE clock (a test double for time: no sleeps, no wall time): minimum
 * interval start to start, coalescing, named deadlines (retry-after), verification when nothing
 * else is due, and sleeps cut short by requests.
 */
import { describe, expect, test } from 'vitest';
import { Scheduler, clockSleep } from '../../agent/scheduler.js';
import { FakeClock } from '../helpers/fake-clock.js';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Scheduler', () => {
  test('idle: nothing due, the wait is until the verification', () => {
    const scheduler = new Scheduler(new FakeClock(), 30);
    expect(scheduler.next(Infinity)).toEqual({ action: 'wait', ms: Infinity });
    expect(scheduler.next(1_500)).toEqual({ action: 'wait', ms: 500 });
  });

  test('a request runs at once after idle; the next waits out the interval from the last start; requests coalesce', () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler(clock, 30);
    scheduler.request();
    expect(scheduler.next(Infinity)).toEqual({ action: 'pass', reasons: ['requested'] });
    scheduler.passStarted();
    clock.advance(10);
    scheduler.request();
    scheduler.request();
    scheduler.request();
    expect(scheduler.next(Infinity)).toEqual({ action: 'wait', ms: 20 });
    clock.advance(20);
    expect(scheduler.next(Infinity)).toEqual({ action: 'pass', reasons: ['requested'] });
    scheduler.passStarted();
    expect(scheduler.pending).toBe(false);
    expect(scheduler.next(Infinity)).toEqual({ action: 'wait', ms: Infinity });
  });

  test('a long pass does not delay the next: the interval counts from the start', () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler(clock, 30);
    scheduler.request();
    scheduler.passStarted();
    clock.advance(100); // the pass took 100 ms
    scheduler.request();
    expect(scheduler.next(Infinity)).toEqual({ action: 'pass', reasons: ['requested'] });
  });

  test('deadlines: due at their time, not held by the interval, consumed only by a pass that serves them', () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler(clock, 30);
    scheduler.passAt('plumbing-retry', clock.now() + 1_000);
    expect(scheduler.next(Infinity)).toEqual({ action: 'wait', ms: 1_000 });
    clock.advance(1_000);
    scheduler.request();
    expect(scheduler.next(Infinity)).toEqual({ action: 'pass', reasons: ['requested', 'plumbing-retry'] });
    // A datastore pass that does not serve the retry leaves it due.
    scheduler.passStarted();
    expect(scheduler.next(Infinity)).toEqual({ action: 'pass', reasons: ['plumbing-retry'] });
    scheduler.passStarted(['plumbing-retry']);
    expect(scheduler.next(Infinity)).toEqual({ action: 'wait', ms: Infinity });
    scheduler.passAt('plumbing-retry', clock.now() + 5);
    scheduler.passAt('plumbing-retry', null);
    expect(scheduler.next(Infinity)).toEqual({ action: 'wait', ms: Infinity });
  });

  test('a verification runs when it is due and no pass is', () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler(clock, 30);
    expect(scheduler.next(clock.now())).toEqual({ action: 'verify' });
    scheduler.request();
    expect(scheduler.next(clock.now())).toEqual({ action: 'pass', reasons: ['requested'] });
  });

  test('sleep() ends on the clock, or early on request(); an infinite sleep sets no timer', async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler(clock, 30);
    let woke = false;
    void scheduler.sleep(50).then(() => (woke = true));
    clock.advance(49);
    await settle();
    expect(woke).toBe(false);
    clock.advance(1);
    await settle();
    expect(woke).toBe(true);

    woke = false;
    void scheduler.sleep(Infinity).then(() => (woke = true));
    expect(clock.pendingTimers).toBe(0);
    scheduler.request();
    await settle();
    expect(woke).toBe(true);

    woke = false;
    void scheduler.sleep(10_000).then(() => (woke = true));
    scheduler.passAt('x', clock.now() + 5);
    await settle();
    expect(woke).toBe(true);
    expect(clock.pendingTimers).toBe(0); // the cut-short sleep's timer was cancelled
  });

  test('clockSleep waits on the injected clock', async () => {
    const clock = new FakeClock();
    let done = false;
    void clockSleep(clock, 100).then(() => (done = true));
    clock.advance(99);
    await settle();
    expect(done).toBe(false);
    clock.advance(1);
    await settle();
    expect(done).toBe(true);
  });
});
