/**
 * The fast hook check: every `intervalMs` (default 2 s) it lists only the built-in chains that
 * carry our hooks (`ip[6]tables -S <chain>` for filter INPUT/FORWARD/OUTPUT and raw PREROUTING,
 * per family) and hands them to the reconciler, which repairs at once a hook that another program
 * removed or displaced (e.g. `-I FORWARD 1 -j ACCEPT` ahead of ours). The full read-back of our
 * chains and sets stays on its slower schedule (--refresh-interval).
 *
 * Invariants: checks never overlap (the next waits for the previous), nor do the listings of one
 * check (one process at a time); checks take at most a tenth of the time (the wait is at least
 * 10 × the last check's duration); a check that overlaps one of our own writes to a table is not
 * judged (the reconciler compares write tokens); a failing list is logged at debug and retried at
 * the next tick, never fatal; `stop()` ends the loop.
 */
import type { BuiltinRule, IpFamily, TableName } from '../compiler/index.js';
import { runChecked } from './dataplane/command-runner.js';
import type { IptablesBackend } from './dataplane/iptables-backend.js';
import { extractHash, HOOKED_BUILTINS } from './dataplane/iptables.js';
import type { CommandRunner } from './dataplane/types.js';
import type { Logger } from './logger.js';
import { systemClock, type Clock } from './scheduler.js';

export interface HookObserver {
  writeToken(family: IpFamily, table: TableName): number;
  hooksObserved(family: IpFamily, table: TableName, builtins: ReadonlyMap<string, readonly BuiltinRule[]>, token: number): boolean;
}

export interface HookWatchOptions {
  runner: CommandRunner;
  backend: IptablesBackend;
  families: readonly IpFamily[];
  observer: HookObserver;
  log: Logger;
  intervalMs: number;
  clock?: Clock;
}

/** The `ip[6]tables` command of a backend (its save command without `-save`). */
export function listCommand(saveBinary: string): string {
  return saveBinary.replace(/-save$/, '');
}

/** Parses `ip[6]tables -S <chain>` output into the chain's rules (`-P` policy lines skipped). */
export function parseChainListing(chain: string, text: string): BuiltinRule[] {
  const head = `-A ${chain} `;
  return text
    .split('\n')
    .filter((line) => line.startsWith(head))
    .map((line) => {
      const rule = line.slice(head.length).trimEnd();
      return { hash: extractHash(rule), rule };
    });
}

export class HookWatch {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly clock: Clock;
  /** Ends the current wait early (stop). */
  private wake: (() => void) | undefined;

  constructor(private readonly opts: HookWatchOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    if (this.opts.intervalMs <= 0 || this.loop) return;
    this.loop = (async () => {
      let lastMs = 0;
      while (!this.stopped) {
        // At most a tenth of the time checking: legacy iptables reads the whole table to list one
        // chain, so on a large ruleset its checks space out (nft lists a chain in ~10 ms).
        await this.sleep(Math.max(this.opts.intervalMs, 10 * lastMs));
        if (this.stopped) break;
        const started = this.clock.now();
        await this.checkOnce();
        lastMs = this.clock.now() - started;
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.wake = undefined;
        resolve();
      };
      const cancel = this.clock.setTimer(done, ms);
      this.wake = () => {
        cancel();
        done();
      };
    });
  }

  /**
   * One check of every family and table; resolves to the (family, table) pairs repaired. The
   * listings run one at a time: side by side they took two cores' worth of CPU for a moment,
   * slowing a restore that happened to run then (rule-change outliers on a 2-core host).
   */
  async checkOnce(): Promise<string[]> {
    const repaired: string[] = [];
    for (const family of this.opts.families) {
      for (const table of Object.keys(HOOKED_BUILTINS) as TableName[]) {
        const token = this.opts.observer.writeToken(family, table);
        try {
          const builtins = new Map<string, BuiltinRule[]>();
          for (const chain of HOOKED_BUILTINS[table]) {
            if (this.stopped) return repaired;
            const { stdout } = await runChecked(this.opts.runner, [listCommand(this.opts.backend.binaries[family].save), '-w', '-t', table, '-S', chain]);
            builtins.set(chain, parseChainListing(chain, stdout));
          }
          if (this.opts.observer.hooksObserved(family, table, builtins, token)) repaired.push(`v${family}:${table}`);
        } catch (error) {
          this.opts.log.debug({ err: error, family: `v${family}`, table }, 'hook check failed; retried at the next tick');
        }
      }
    }
    return repaired;
  }
}
