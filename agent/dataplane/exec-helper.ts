/**
 * A CommandRunner that runs every program through a small long-lived helper process
 * (exec-helper-main.ts) instead of forking the agent itself.
 *
 * Why: Node forks the whole process for each child; at a few hundred MB of RSS that blocks the
 * agent's event loop for tens of ms per `iptables-restore` / `ipset` call (perf-reliability.md
 * B3: ~35 ms per GB). The helper is started before the agent's heap grows and stays small, so each
 * exec costs what it costs from a ~40 MB process.
 *
 * Invariants:
 * - Same contract as createCommandRunner (command-runner.ts): resolves with the exit status of a
 *   program that ran, rejects with a CommandError when it could not run or timed out; the
 *   CommandError carries the caller's argv and input.
 * - The helper dying fails every request in flight with a `transient` CommandError; the next
 *   request starts a new helper. `close()` ends the helper after its requests finish.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommandError, checkNetnsName, type FailureKind } from './command-runner.js';
import { encodeFrame, FrameReader } from './helper-frames.js';
import type { CommandResult, CommandRunner, RunOptions } from './types.js';

/**
 * A request frame's header (helper-frames.ts); its payload, if any, is the program's stdin.
 * `{id, abort: true}` aborts request `id` (its program is killed; it answers `aborted`).
 */
export type HelperRequest =
  | { id: number; argv: readonly string[]; timeoutMs?: number; payloadBytes?: number }
  | { id: number; abort: true };

/** A response frame's header; the payload of a `result` is the program's stdout. */
export type HelperResponse =
  | { id: number; result: Omit<CommandResult, 'stdout'>; payloadBytes?: number }
  | { id: number; error: { code: number | null; stderr: string; kind: FailureKind; reason: string; aborted?: boolean } };

export interface HelperRunner extends CommandRunner {
  /** The helper's pid (undefined while none runs), for tests and diagnostics. */
  readonly pid: number | undefined;
  /** Ends the helper once its requests have answered. */
  close(): Promise<void>;
}

/** The built helper script: beside this module in dist/, or in dist/ when this runs from source. */
function helperScript(): string {
  const sibling = fileURLToPath(new URL('./exec-helper-main.js', import.meta.url));
  if (existsSync(sibling)) return sibling;
  return fileURLToPath(new URL('../../dist/agent/dataplane/exec-helper-main.js', import.meta.url));
}

interface Waiter {
  argv: readonly string[];
  input: string | undefined;
  resolve: (result: CommandResult) => void;
  reject: (error: CommandError) => void;
}

export function createHelperRunner(options: { netns?: string } = {}): HelperRunner {
  checkNetnsName(options.netns);
  let child: ChildProcess | undefined;
  let nextId = 1;
  const waiting = new Map<number, Waiter>();

  const failAll = (reason: string): void => {
    for (const { argv, input, reject } of waiting.values()) {
      reject(new CommandError({ argv, code: null, stderr: '', input, kind: 'transient', reason }));
    }
    waiting.clear();
  };

  const start = (): ChildProcess => {
    const helper = spawn(process.execPath, [helperScript(), options.netns ?? ''], { stdio: ['pipe', 'pipe', 'inherit'] });
    helper.stdin!.on('error', () => undefined);
    const responses = new FrameReader<HelperResponse>((response, stdout) => {
      const waiter = waiting.get(response.id);
      if (waiter === undefined) return;
      waiting.delete(response.id);
      if ('result' in response) waiter.resolve({ ...response.result, stdout: stdout ?? '' });
      else waiter.reject(new CommandError({ argv: waiter.argv, input: waiter.input, ...response.error }));
    });
    helper.stdout!.on('data', (chunk: Buffer) => responses.push(chunk));
    helper.on('exit', (code, signal) => {
      if (child === helper) child = undefined;
      failAll(`exec helper exited (${signal ?? `code ${code}`})`);
    });
    helper.on('error', (error) => {
      if (child === helper) child = undefined;
      failAll(`exec helper failed: ${error.message}`);
    });
    return helper;
  };

  return {
    get pid() {
      return child?.pid;
    },
    run(argv: readonly string[], runOptions: RunOptions = {}): Promise<CommandResult> {
      child ??= start();
      const id = nextId++;
      const { signal } = runOptions;
      if (signal?.aborted) {
        return Promise.reject(CommandError.aborted(argv, runOptions.input));
      }
      const helper = child;
      const header = { id, argv, ...(runOptions.timeoutMs !== undefined ? { timeoutMs: runOptions.timeoutMs } : {}) };
      const onAbort = (): void => void helper.stdin!.write(encodeFrame({ id, abort: true }));
      return new Promise<CommandResult>((resolve, reject) => {
        waiting.set(id, { argv, input: runOptions.input, resolve, reject });
        helper.stdin!.write(encodeFrame(header, runOptions.input));
        signal?.addEventListener('abort', onAbort, { once: true });
      }).finally(() => signal?.removeEventListener('abort', onAbort));
    },
    async close(): Promise<void> {
      const helper = child;
      if (helper === undefined) return;
      child = undefined;
      if (helper.exitCode !== null || helper.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        helper.once('exit', () => resolve());
        helper.stdin!.end();
      });
    },
  };
}
