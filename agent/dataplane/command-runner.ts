/**
 * Runs dataplane programs (iptables-restore, ipset, ip, sysctl …) and classifies their failures.
 *
 * Invariants:
 * - No shell: argv goes to `spawn` as is, so nothing in it is ever interpreted.
 * - With `netns` set, every command runs as `nsenter --net=/run/netns/<netns> -- argv…`: the agent
 *   process stays where etcd is, only its kernel writes land in the dataplane namespace.
 * - `run` resolves with the exit code of any program that ran to completion (non-zero included);
 *   it rejects with a `CommandError` only when the program could not run or timed out.
 *   `runChecked` turns a non-zero exit into a `CommandError` carrying stderr and the input fed.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { CommandResult, CommandRunner, RunOptions } from './types.js';

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * - `transient`: retrying the same input later may succeed (xtables lock contention, a failure
 *   at COMMIT when another writer raced us, a timeout or a kill).
 * - `rejected`: the tool refused this input (a bad line); re-read the kernel and re-plan.
 * - `terminal`: no retry can help (program missing, not permitted, bad usage).
 */
export type FailureKind = 'transient' | 'rejected' | 'terminal';

export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly argv: readonly string[];
  /** Exit code, or null when the program did not run to completion. */
  readonly code: number | null;
  readonly stderr: string;
  /** The stdin the command was fed (Felix logs the whole restore input on failure). */
  readonly input: string | undefined;
  readonly kind: FailureKind;
  /** Why it failed, without the command: the message's tail. */
  readonly detail: string;
  /** The caller aborted it (RunOptions.signal): no failure of the program's. */
  readonly aborted: boolean;

  constructor(fields: { argv: readonly string[]; code: number | null; stderr: string; input?: string; kind: FailureKind; reason?: string; aborted?: boolean }) {
    const detail = fields.reason ?? firstLine(fields.stderr) ?? 'no error output';
    super(`${fields.argv.join(' ')} failed (${fields.code === null ? 'did not complete' : `exit ${fields.code}`}): ${detail}`);
    this.argv = fields.argv;
    this.code = fields.code;
    this.stderr = fields.stderr;
    this.input = fields.input;
    this.kind = fields.kind;
    this.detail = detail;
    this.aborted = fields.aborted ?? false;
  }

  /** The error of a run its caller aborted (RunOptions.signal). */
  static aborted(argv: readonly string[], input: string | undefined, stderr = ''): CommandError {
    return new CommandError({ argv, code: null, stderr, ...(input !== undefined ? { input } : {}), kind: 'transient', reason: 'aborted', aborted: true });
  }

  get transient(): boolean {
    return this.kind === 'transient';
  }

  get terminal(): boolean {
    return this.kind === 'terminal';
  }
}

function firstLine(text: string): string | undefined {
  return text
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line !== '' && !line.startsWith('Try `'));
}

const TRANSIENT_PATTERNS = [
  /xtables lock/i,
  /Another app is currently holding/i,
  /Resource temporarily unavailable/i,
];
const TERMINAL_PATTERNS = [
  /command not found/i,
  /failed to execute/i,
  /Permission denied/i,
  /Operation not permitted/i,
  /unrecognized option|unknown option|invalid option/i,
];

/** Classifies a non-zero exit from the tool's code, stderr and (for restores) the input fed. */
export function classifyFailure(code: number, stderr: string, input?: string): FailureKind {
  if (code === 126 || code === 127) return 'terminal';
  if (TERMINAL_PATTERNS.some((pattern) => pattern.test(stderr))) return 'terminal';
  if (TRANSIENT_PATTERNS.some((pattern) => pattern.test(stderr))) return 'transient';
  if (code >= 128) return 'transient'; // killed by a signal
  // `iptables-restore: line N failed`: a failure on the COMMIT line means the transaction lost a
  // race with another writer (iptables-nft compares generations at commit), not bad input.
  const failedLine = /line (\d+) failed/.exec(stderr);
  if (failedLine && input !== undefined) {
    const line = input.split('\n')[Number(failedLine[1]) - 1];
    if (line?.trim() === 'COMMIT') return 'transient';
  }
  return 'rejected';
}

/** What the agent needs when the kernel (or nsenter) refuses it for lack of privilege. */
export const PRIVILEGE_HINT = 'calico-agent needs root, or CAP_NET_ADMIN (and CAP_SYS_ADMIN with --dataplane-netns)';
const PRIVILEGE_PATTERNS = [/Operation not permitted/i, /Permission denied/i, /you must be root/i];

/** Runs argv and throws a classified CommandError on a non-zero exit. */
export async function runChecked(runner: CommandRunner, argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const result = await runner.run(argv, options);
  if (result.code !== 0) {
    const denied = PRIVILEGE_PATTERNS.some((pattern) => pattern.test(result.stderr));
    throw new CommandError({
      argv,
      code: result.code,
      stderr: result.stderr,
      input: options.input,
      kind: classifyFailure(result.code, result.stderr, options.input),
      ...(denied ? { reason: `${firstLine(result.stderr) ?? 'not permitted'} (${PRIVILEGE_HINT})` } : {}),
    });
  }
  return result;
}

export interface CommandRunnerOptions {
  /** Name of a network namespace under /run/netns in which every command runs. */
  netns?: string;
  /** Timeout for commands that do not give their own (default 60 s). */
  defaultTimeoutMs?: number;
}

/** Throws unless `netns` is a plain namespace name (no path, nothing an argv could misread). */
export function checkNetnsName(netns: string | undefined): void {
  if (netns !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(netns)) {
    throw new Error(`invalid network namespace name ${JSON.stringify(netns)}`);
  }
}

/** The argv prefix that runs a program in network namespace `netns` (none without one). */
export function netnsPrefix(netns: string | undefined): string[] {
  checkNetnsName(netns);
  return netns === undefined ? [] : ['nsenter', `--net=/run/netns/${netns}`, '--'];
}

export function createCommandRunner(options: CommandRunnerOptions = {}): CommandRunner {
  const prefix = netnsPrefix(options.netns);
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;

  return {
    run(argv, runOptions = {}) {
      const full = [...prefix, ...argv];
      const timeoutMs = runOptions.timeoutMs ?? defaultTimeoutMs;
      return new Promise<CommandResult>((resolve, reject) => {
        const [command, ...args] = full;
        if (command === undefined) {
          reject(new CommandError({ argv, code: null, stderr: '', input: runOptions.input, kind: 'terminal', reason: 'empty command' }));
          return;
        }
        const { signal } = runOptions;
        if (signal?.aborted) {
          reject(CommandError.aborted(argv, runOptions.input));
          return;
        }
        const started = performance.now();
        const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let timedOut = false;
        let aborted = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        const onAbort = (): void => {
          aborted = true;
          child.kill('SIGKILL');
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
        child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
        child.on('error', (error: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const missing = error.code === 'ENOENT';
          reject(
            new CommandError({
              argv,
              code: null,
              stderr: Buffer.concat(err).toString('utf8'),
              input: runOptions.input,
              kind: missing || error.code === 'EACCES' ? 'terminal' : 'transient',
              reason: missing ? `command not found: ${command}` : error.message,
            }),
          );
        });
        child.on('close', (code, exitSignal) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const stderr = Buffer.concat(err).toString('utf8');
          if (aborted) {
            reject(CommandError.aborted(argv, runOptions.input, stderr));
            return;
          }
          if (timedOut) {
            reject(new CommandError({ argv, code: null, stderr, input: runOptions.input, kind: 'transient', reason: `timed out after ${timeoutMs} ms` }));
            return;
          }
          resolve({
            code: code ?? 128 + (exitSignal ? constants.signals[exitSignal] : 0),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr,
            durationMs: performance.now() - started,
          });
        });
        // The program may exit without reading all its input (e.g. a usage error): not our error.
        child.stdin.on('error', () => undefined);
        child.stdin.end(runOptions.input ?? '');
      });
    },
  };
}
