/**
 * `--wait[=TIMEOUT]` (any calicoctl write command): after the command's write at etcd revision
 * R, return only when every live agent publishes a dataplane revision ≥ R, i.e. its kernel
 * enforces the write; print how long that took. On timeout, fail naming the hosts behind.
 *
 * "Live" is the agent's leased status key (src/datastore/agent-status.ts): an agent stopped for
 * less than its status TTL is still waited for (and named on timeout); one whose lease lapsed is
 * stale and not waited for. A command that wrote nothing has nothing to wait for.
 */
import { readHostStatuses, type EtcdKv } from '../datastore/index.js';
import { CliError } from './cli-errors.js';

export const DEFAULT_WAIT_MS = 60_000;
const POLL_MS = 25;

/** Takes `--wait` / `--wait=TIMEOUT` out of `args`; TIMEOUT as `30s`, `500ms`, `2m` or seconds. */
export function takeWaitOption(args: readonly string[]): { args: string[]; timeoutMs: number | undefined } {
  let timeoutMs: number | undefined;
  const rest: string[] = [];
  for (const arg of args) {
    if (arg === '--wait') timeoutMs = DEFAULT_WAIT_MS;
    else if (arg.startsWith('--wait=')) timeoutMs = parseTimeout(arg.slice('--wait='.length));
    else rest.push(arg);
  }
  return { args: rest, timeoutMs };
}

function parseTimeout(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!match) throw new CliError(`Invalid --wait timeout ${JSON.stringify(text)}: expected e.g. 30s, 500ms or 2m.`);
  const unit = match[2] ?? 's';
  return Number(match[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : 60_000);
}

/** Waits until every live agent enforces `revision`; resolves with the line to print. */
export async function waitForAgents(kv: EtcdKv, revision: number, timeoutMs: number): Promise<string> {
  const started = performance.now();
  for (;;) {
    const live = (await readHostStatuses(kv)).filter((host) => host.alive);
    const behind = live.filter((host) => (host.dataplane?.revision ?? 0) < revision);
    const seconds = ((performance.now() - started) / 1000).toFixed(3);
    if (behind.length === 0) {
      return live.length === 0
        ? `No live agents to wait for (etcd revision ${revision}).\n`
        : `Enforced by ${live.length} live agent${live.length === 1 ? '' : 's'} after ${seconds} s (etcd revision ${revision}).\n`;
    }
    if (performance.now() - started >= timeoutMs) {
      const names = behind.map((host) => `${host.host} (at revision ${host.dataplane?.revision ?? 'unknown'})`).join(', ');
      throw new CliError(`Timed out after ${seconds} s waiting for etcd revision ${revision} to be enforced: ${names}.`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
