/**
 * collectGarbage (agent/heap.ts) really runs a full collection: an object reachable only through
 * a WeakRef is gone after it.
 */
import { expect, test } from 'vitest';
import { collectGarbage } from '../../agent/heap.js';

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
