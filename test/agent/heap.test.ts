/**
 * agent/heap.ts: collectGarbage really runs a full collection (an object reachable only through
 * a WeakRef is gone after it), and compactHeap gives committed heap back after a load that left
 * live objects interleaved with garbage, as the agent's initial sync does.
 */
import { getHeapStatistics } from 'node:v8';
import { expect, test } from 'vitest';
import { collectGarbage, compactHeap } from '../../agent/heap.js';

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
  expect(compaction.committedBefore).toBeLessThanOrEqual(committedBefore);
  expect(compaction.committedAfter).toBeLessThan(compaction.committedBefore);
  expect(live.size).toBe(150_000);
});
