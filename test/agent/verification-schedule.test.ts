/**
 * When the kernel is checked, on a FAKE clock: periodic checks, post-write checks from the
 * adaptive floor doubling up to the cap, untrusted reads retried with doubling delays and moved
 * inside a pass after too many in a row, a failed read moved inside a pass at once, and which
 * reads our writes may preempt.
 */
import { describe, expect, test } from 'vitest';
import { READ_DUTY_FACTOR, UNTRUSTED_READS_BEFORE_IN_PASS, VerificationSchedule } from '../../agent/verification-schedule.js';
import { FakeClock } from '../helpers/fake-clock.js';

const options = { refreshIntervalMs: 60_000, postWriteCheckMinMs: 50, postWriteCheckMaxMs: 1_000 };

describe('VerificationSchedule', () => {
  test('periodic: due refreshIntervalMs after the last verification; never when disabled', () => {
    const clock = new FakeClock();
    const schedule = new VerificationSchedule(clock, options);
    expect(schedule.dueAt()).toBe(-Infinity); // never verified: due now
    schedule.verified(clock.now());
    expect(schedule.dueAt()).toBe(clock.now() + 60_000);
    expect(new VerificationSchedule(clock, { ...options, refreshIntervalMs: 0 }).dueAt()).toBe(Infinity);
  });

  test('after a write: first check after the floor (2 × peak read + write), then doubling until the cap', () => {
    const clock = new FakeClock();
    const schedule = new VerificationSchedule(clock, options);
    schedule.verified(clock.now());
    schedule.readTook(100);
    schedule.wrote(20);
    expect(schedule.floorMs).toBe(240);
    const writtenAt = clock.now();
    expect(schedule.dueAt()).toBe(writtenAt + 240);
    const checks: number[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(schedule.dueAt() - clock.now());
      checks.push(clock.now() - writtenAt);
      schedule.verified(clock.now());
    }
    // 240, then +480, +960; 1,920 is past the cap: back to the periodic check.
    expect(checks.slice(0, 3)).toEqual([240, 720, 1_680]);
    expect(checks[3]! - checks[2]!).toBe(60_000);
    // Peaks decay by 10 % per sample: a fast read lowers the floor slowly.
    schedule.readTook(1);
    expect(schedule.floorMs).toBe(2 * (90 + 20));
  });

  test('untrusted reads are retried after doubling delays, then inside a pass; a verification resets', () => {
    const clock = new FakeClock();
    const schedule = new VerificationSchedule(clock, { ...options, refreshIntervalMs: 0 });
    schedule.readTook(100);
    schedule.wrote(0);
    const floor = schedule.floorMs;
    clock.advance(floor); // the post-write check is due; each read of it overlaps a write of ours
    for (let i = 1; i < UNTRUSTED_READS_BEFORE_IN_PASS; i++) {
      schedule.untrusted();
      expect(schedule.dueAt()).toBe(clock.now() + floor * 2 ** (i - 1));
      expect(schedule.inPass).toBe(false);
    }
    schedule.untrusted();
    expect(schedule.inPass).toBe(true);
    schedule.verified(clock.now());
    expect(schedule.inPass).toBe(false);
    schedule.failed();
    expect(schedule.inPass).toBe(true);
  });

  test('reads may be preempted while the kernel was verified within the interval; a preempted read is retried after the floor, doubling', () => {
    const clock = new FakeClock();
    const schedule = new VerificationSchedule(clock, options);
    expect(schedule.mayPreempt).toBe(false); // never verified yet
    schedule.verified(clock.now());
    schedule.readTook(100);
    schedule.wrote(0);
    clock.advance(schedule.floorMs); // the post-write check is due; our next write preempts it
    expect(schedule.mayPreempt).toBe(true);
    schedule.preempted(10);
    expect(schedule.dueAt()).toBe(clock.now() + schedule.floorMs);
    schedule.preempted(10);
    expect(schedule.dueAt()).toBe(clock.now() + 2 * schedule.floorMs);
    expect(schedule.inPass).toBe(false);
    clock.advance(options.refreshIntervalMs - schedule.floorMs - 1);
    expect(schedule.mayPreempt).toBe(true);
    clock.advance(1);
    expect(schedule.mayPreempt).toBe(false);
  });

  test('a preempted read raises the read estimate to the time it ran, so an underestimate spaces out further checks', () => {
    const clock = new FakeClock();
    const schedule = new VerificationSchedule(clock, { ...options, refreshFloorMs: 1_000 });
    schedule.readTook(5); // the first read, of a kernel still empty
    schedule.verified(clock.now());
    schedule.wrote(20);
    const floorBefore = schedule.floorMs;
    const refreshBefore = schedule.refreshMs;
    schedule.preempted(1_500); // the next read had run 1.5 s when our write aborted it
    expect(schedule.floorMs).toBe(Math.max(options.postWriteCheckMinMs, 2 * (1_500 + 20)));
    expect(schedule.floorMs).toBeGreaterThan(floorBefore);
    expect(schedule.refreshMs).toBe(Math.min(options.refreshIntervalMs, READ_DUTY_FACTOR * 1_500));
    expect(schedule.refreshMs).toBeGreaterThan(refreshBefore);
    expect(schedule.dueAt()).toBe(clock.now() + schedule.floorMs);
    // A shorter abort later does not lower it: a read runs at least as long as it ran.
    schedule.preempted(100);
    expect(schedule.floorMs).toBe(Math.max(options.postWriteCheckMinMs, 2 * (1_500 + 20)));
  });
});

describe('refresh floor', () => {
  test('with a floor, periodic checks come as often as the floor while a read costs at most 1/40 of the time, never later than the interval', () => {
    const clock = new FakeClock();
    const schedule = new VerificationSchedule(clock, { ...options, refreshFloorMs: 5_000 });
    const started = clock.now();
    schedule.readTook(30); // a small dataplane
    schedule.verified(started);
    expect(schedule.refreshMs).toBe(5_000);
    expect(schedule.dueAt()).toBe(clock.now() + 5_000);
    schedule.readTook(750); // a medium one: 40 × 0.75 s
    expect(schedule.refreshMs).toBe(30_000);
    // Reads at the floor's pace stay preemptible by our writes (the kernel was verified within the interval).
    clock.advance(30_000);
    expect(schedule.mayPreempt).toBe(true);
    schedule.readTook(10_000); // huge: capped at the interval
    expect(schedule.refreshMs).toBe(60_000);
    // Without a floor the interval is fixed, whatever reads cost.
    const fixed = new VerificationSchedule(clock, options);
    fixed.readTook(30);
    expect(fixed.refreshMs).toBe(60_000);
  });
});
