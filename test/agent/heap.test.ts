/**
 * agent/heap.ts: collectGarbage really runs a full collection (an object reachable only through
 * a WeakRef is gone after it), and compactHeap gives committed heap back after a load that left
 * live objects interleaved with garbage, as the agent's initial sync does; QuietCollector
 * collects once per quiet spell (fake clock).
 */
import { getHeapStatistics } from 'node:v8';
import { describe, expect, test } from 'vitest';
import { collectGarbage, compactHeap, QuietCollector, type QuietStep } from '../../agent/heap.js';
import { FakeClock } from '../helpers/fake-clock.js';

test('an unreachable object is collected', async () => {
  let ref: WeakRef<object> | undefined;
  (() => {
    ref = new WeakRef({ payload: new Array(10_000).fill('x') });
  })();
  // WeakRef targets stay alive until the job that created them ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  expect(collectGarbage()).toBe(true);
  expect(ref?.deref()).toBeUndefined();
});

test('compactHeap repeats collections while they give committed heap back, and reports them', async () => {
  // Live records interleaved with three times as much garbage that outlives young-generation
  // collections (held in batches), so both end up in the old generation side by side.
  const live = new Map<number, string[]>();
  let batch: object[] = [];
  for (let i = 0; i < 600_000; i++) {
    if (i % 4 === 0) live.set(i, [`member-${i}`, `profile-${i % 100}`]);
    else batch.push({ text: `garbage-${i}`, values: [i, i + 1, i + 2] });
    if (batch.length >= 100_000) batch = [];
  }
  batch = [];
  const committedBefore = getHeapStatistics().total_heap_size;
  const compaction = await compactHeap();
  expect(compaction.rounds).toBeGreaterThanOrEqual(2);
  // "Before" is the heap as it was when called (it may have grown a page meanwhile), not after a
  // first collection, which frees far more than 4 MiB here.
  expect(Math.abs(compaction.committedBefore - committedBefore)).toBeLessThan(4 * 1024 * 1024);
  expect(compaction.committedBefore - compaction.committedAfter).toBeGreaterThan(4 * 1024 * 1024);
  expect(compaction.committedAfter).toBeLessThan(compaction.committedBefore);
  expect(live.size).toBe(150_000);
});

describe('QuietCollector (fake clock)', () => {
  const setup = () => {
    const clock = new FakeClock();
    const collections: [QuietStep, number][] = [];
    const quiet = new QuietCollector({ clock, quietMs: 8_000, gapMs: 6_000, collect: (step) => collections.push([step, clock.now()]) });
    return { clock, quiet, collections };
  };

  test('releases once the agent has been quiet for quietMs after work, shrinks gapMs later, then does no more', () => {
    const { clock, quiet, collections } = setup();
    const start = clock.now();
    quiet.worked();
    clock.advance(7_999);
    expect(collections).toEqual([]);
    clock.advance(1);
    expect(collections).toEqual([['release', start + 8_000]]);
    clock.advance(60_000);
    expect(collections).toEqual([
      ['release', start + 8_000],
      ['shrink', start + 14_000],
    ]);
  });

  test('each piece of work restarts the quiet spell, also between the two collections', () => {
    const { clock, quiet, collections } = setup();
    for (let i = 0; i < 10; i++) {
      quiet.worked();
      clock.advance(5_000);
    }
    expect(collections).toHaveLength(0);
    clock.advance(3_000);
    expect(collections).toHaveLength(1);
    clock.advance(5_000);
    quiet.worked(); // before the second collection: it is not made, the spell starts over
    clock.advance(7_999);
    expect(collections).toHaveLength(1);
    clock.advance(1);
    expect(collections.map(([step]) => step)).toEqual(['release', 'release']);
    clock.advance(6_000);
    expect(collections.map(([step]) => step)).toEqual(['release', 'release', 'shrink']);
    expect(clock.pendingTimers).toBe(0);
  });

  test('after stop nothing is collected, whatever work is reported', () => {
    const { clock, quiet, collections } = setup();
    quiet.worked();
    clock.advance(8_000);
    quiet.stop();
    quiet.worked();
    clock.advance(60_000);
    expect(collections).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });
});
