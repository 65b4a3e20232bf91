/**
 * DataplaneStatusPublisher on a FAKE clock with a recording write (no etcd: what is under test is
 * when and what it writes): the first change goes out at once, later ones are coalesced to the
 * latest state at most once per interval, identical states are not rewritten, and a failed
 * write is retried with the state current at the retry.
 */
import { describe, expect, test } from 'vitest';
import { DataplaneStatusPublisher } from '../../agent/dataplane-status.js';
import { silentLogger } from '../../agent/logger.js';
import type { DataplaneStatus } from '../../src/model/index.js';
import { FakeClock } from '../helpers/fake-clock.js';

const state = (revision: number): DataplaneStatus => ({ revision, applied_at: 't', last_error: null, endpoints: { up: 1, down: 0, error: 0 } });

function harness(fail: () => boolean = () => false) {
  const clock = new FakeClock();
  const writes: { key: string; revision: number; at: number }[] = [];
  const publisher = new DataplaneStatusPublisher({
    hostname: 'h1',
    log: silentLogger(),
    minIntervalMs: 100,
    clock,
    write: async (key, value) => {
      if (fail()) throw new Error('etcd down');
      writes.push({ key, revision: (JSON.parse(value) as DataplaneStatus).revision, at: clock.now() });
    },
  });
  return { clock, writes, publisher };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('DataplaneStatusPublisher', () => {
  test('first change at once; a burst coalesces to its latest state, one write per interval', async () => {
    const { clock, writes, publisher } = harness();
    publisher.publish(state(5));
    await flush();
    expect(writes).toEqual([{ key: '/calico/agent/v1/dataplane/h1', revision: 5, at: 1000 }]);
    for (const revision of [6, 7, 8]) publisher.publish(state(revision));
    await flush();
    expect(writes).toHaveLength(1);
    clock.advance(99);
    await flush();
    expect(writes).toHaveLength(1);
    clock.advance(1);
    await flush();
    expect(writes.map((w) => [w.revision, w.at])).toEqual([[5, 1000], [8, 1100]]);
    publisher.publish(state(8));
    clock.advance(500);
    await flush();
    expect(writes).toHaveLength(2);
    await publisher.stop();
  });

  test('a failed write is retried after the interval with the newest state', async () => {
    let failing = true;
    const { clock, writes, publisher } = harness(() => failing);
    publisher.publish(state(5));
    await flush();
    expect(writes).toEqual([]);
    publisher.publish(state(6));
    failing = false;
    clock.advance(100);
    await flush();
    expect(writes.map((w) => w.revision)).toEqual([6]);
    await publisher.stop();
    publisher.publish(state(7));
    clock.advance(1000);
    await flush();
    expect(writes.map((w) => w.revision)).toEqual([6]);
  });
});
