/**
 * The fast hook check's schedule (agent/hook-watch.ts) on a FAKE clock and a FAKE runner (test
 * doubles: time moves only when the test says, and each listing "takes" a set time): one listing
 * per hooked built-in chain and family per check, every interval; a slow check stretches the wait
 * to 10 × its duration; stop() ends a wait at once. The real tools are used in
 * reconciler-netns.test.ts.
 */
import { expect, test } from 'vitest';
import { HookWatch, listCommand, parseChainListing, type HookObserver } from '../../agent/hook-watch.js';
import type { IptablesBackend } from '../../agent/dataplane/iptables-backend.js';
import type { CommandRunner } from '../../agent/dataplane/types.js';
import { silentLogger } from '../../agent/logger.js';
import { FakeClock } from '../helpers/fake-clock.js';

const backend = { mode: 'nft', source: 'configured', binaries: { 4: { save: 'iptables-nft-save', restore: 'iptables-nft-restore' }, 6: { save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' } } } as IptablesBackend;

function setUp(listingMs: number) {
  const clock = new FakeClock();
  const calls: string[] = [];
  const runner: CommandRunner = {
    async run(argv) {
      calls.push(argv.join(' '));
      clock.advance(listingMs);
      const chain = argv[argv.length - 1]!;
      return { code: 0, stdout: `-P ${chain} ACCEPT\n-A ${chain} -m comment --comment "cali:h${chain}" -j cali-${chain}\n`, stderr: '', durationMs: listingMs };
    },
  };
  const observed: string[] = [];
  const observer: HookObserver = { writeToken: () => 0, hooksObserved: (family, table) => (observed.push(`v${family}:${table}`), false) };
  const watch = new HookWatch({ runner, backend, families: [4, 6], observer, log: silentLogger(), intervalMs: 2000, clock });
  return { clock, calls, observed, watch };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('lists each hooked built-in chain per family every interval, and stops at once', async () => {
  const { clock, calls, observed, watch } = setUp(1);
  watch.start();
  clock.advance(1999);
  await settle();
  expect(calls).toEqual([]);
  clock.advance(1);
  await settle();
  expect(calls.filter((c) => c.startsWith('iptables-nft ')).sort()).toEqual([
    'iptables-nft -w -t filter -S FORWARD',
    'iptables-nft -w -t filter -S INPUT',
    'iptables-nft -w -t filter -S OUTPUT',
    'iptables-nft -w -t raw -S PREROUTING',
  ]);
  expect(calls).toHaveLength(8);
  expect(observed.sort()).toEqual(['v4:filter', 'v4:raw', 'v6:filter', 'v6:raw']);
  await watch.stop();
  expect(clock.pendingTimers).toBe(0);
});

test('a slow check stretches the next wait to ten times its duration', async () => {
  const { clock, calls, watch } = setUp(100); // 8 listings, 100 ms each, one after another here: 800 ms
  watch.start();
  clock.advance(2000);
  await settle();
  await settle();
  expect(calls).toHaveLength(8);
  const checkEnded = clock.now();
  clock.advance(7999); // 10 × 800 ms after the check ended, not 2 s
  await settle();
  expect(calls).toHaveLength(8);
  expect(clock.now() - checkEnded).toBe(7999);
  clock.advance(1);
  await settle();
  await settle();
  expect(calls).toHaveLength(16);
  await watch.stop();
});

test('one listing at a time: a check never runs two processes side by side', async () => {
  let inFlight = 0;
  let most = 0;
  const listed: string[] = [];
  const runner: CommandRunner = {
    async run(argv) {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await settle();
      inFlight -= 1;
      const chain = argv[argv.length - 1]!;
      listed.push(`${argv[0]} ${argv[3]} ${chain}`);
      return { code: 0, stdout: `-P ${chain} ACCEPT\n`, stderr: '', durationMs: 1 };
    },
  };
  const observer: HookObserver = { writeToken: () => 0, hooksObserved: () => false };
  const watch = new HookWatch({ runner, backend, families: [4, 6], observer, log: silentLogger(), intervalMs: 2000, clock: new FakeClock() });
  await watch.checkOnce();
  expect(most).toBe(1);
  expect(listed).toEqual([
    'iptables-nft filter INPUT', 'iptables-nft filter FORWARD', 'iptables-nft filter OUTPUT', 'iptables-nft raw PREROUTING',
    'ip6tables-nft filter INPUT', 'ip6tables-nft filter FORWARD', 'ip6tables-nft filter OUTPUT', 'ip6tables-nft raw PREROUTING',
  ]);
});

test('parses a chain listing and names the plain command of a backend', () => {
  expect(parseChainListing('FORWARD', '-P FORWARD DROP\n-A FORWARD -m comment --comment "cali:ab" -j cali-FORWARD\n-A FORWARD -j ACCEPT\n')).toEqual([
    { hash: 'ab', rule: '-m comment --comment "cali:ab" -j cali-FORWARD' },
    { hash: null, rule: '-j ACCEPT' },
  ]);
  expect(listCommand('ip6tables-legacy-save')).toBe('ip6tables-legacy');
  expect(listCommand('iptables-save')).toBe('iptables');
});
