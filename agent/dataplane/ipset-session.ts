/**
 * A long-lived interactive `ipset -` process for small ipset updates: a member add or delete
 * costs a line written and a prompt read back (well under a millisecond) instead of starting an
 * `ipset restore` (a fork and exec, several milliseconds). Bulk loads stay on `ipset restore`.
 *
 *   nsenter --net=<ns> -- stdbuf -o0 ipset -     prompts "ipset> " after each line (unbuffered),
 *                                                errors on stderr before the next prompt
 *
 * Invariants:
 * - Batches run one at a time, in the order `apply` was called: the next is written only when
 *   the previous is done (N lines: N more prompts), so every stderr line belongs to the batch in
 *   flight. Any stderr line other than a `Warning:` fails that batch with a CommandError
 *   (`rejected`) carrying the input and the error text.
 *   Like `ipset restore`, a batch is not atomic: the caller re-reads the kernel after a failure.
 * - The process dying fails the batches in flight with a `transient` CommandError; the next
 *   `apply` starts a new process. A process that cannot start at all sets `usable` false (the
 *   caller then keeps to `ipset restore`). `close()` ends it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CommandError, checkNetnsName, netnsPrefix } from './command-runner.js';

const PROMPT = 'ipset> ';
const ARGV = ['ipset', '-'];

interface Batch {
  input: string;
  lines: readonly string[];
  /** Prompt count at which this batch is done (set when it is written). */
  doneAt: number;
  errors: string[];
  resolve: () => void;
  reject: (error: CommandError) => void;
}

export class IpsetSession {
  private child: ChildProcess | undefined;
  private prompts = 0;
  /** Prompts expected once every line written so far has run. */
  private expected = 0;
  private readonly queue: Batch[] = [];
  private inFlight: Batch | undefined;
  private stderrTail = '';
  private stdoutTail = '';

  constructor(private readonly netns?: string) {
    checkNetnsName(netns);
  }

  /** False once the process could not be started at all (no `stdbuf` or `ipset`): use `ipset restore`. */
  usable = true;

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Starts the process now rather than at the first `apply`: forked while the caller's heap is
   * still small, and the first member change does not pay for the start (tens of ms once the
   * agent holds a large ruleset).
   */
  open(): void {
    if (this.child === undefined) this.start();
  }

  /** Runs `input` (ipset commands, one per line); resolves when every line has run without error. */
  apply(input: string): Promise<void> {
    const lines = input.split('\n').filter((line) => line.trim() !== '');
    if (lines.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ input, lines, doneAt: Infinity, errors: [], resolve, reject });
      this.pump();
    });
  }

  /** Writes the next batch when none is in flight. */
  private pump(): void {
    if (this.inFlight !== undefined) return;
    const batch = this.queue.shift();
    if (batch === undefined) return;
    const child = this.child ?? this.start();
    this.inFlight = batch;
    this.expected += batch.lines.length;
    batch.doneAt = this.expected;
    child.stdin!.write(`${batch.lines.join('\n')}\n`);
  }

  async close(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.stdin!.end();
    });
  }

  private start(): ChildProcess {
    const [command, ...args] = [...netnsPrefix(this.netns), 'stdbuf', '-o0', ...ARGV];
    const child = spawn(command!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    // The first prompt comes before any command: count it as expected.
    this.prompts = 0;
    this.expected = 1;
    this.stdoutTail = '';
    this.stderrTail = '';
    child.stdin!.on('error', () => undefined);
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const text = this.stdoutTail + chunk;
      const parts = text.split(PROMPT);
      this.stdoutTail = parts.pop() ?? '';
      this.prompts += parts.length;
      // Errors of a command are written before its prompt; let stderr read in the same poll be seen first.
      setImmediate(() => this.settle());
    });
    child.stderr!.on('data', (chunk: string) => {
      const lines = (this.stderrTail + chunk).split('\n');
      this.stderrTail = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '' || line.startsWith('Warning:')) continue;
        this.inFlight?.errors.push(line.trim());
      }
    });
    const fail = (reason: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      const batches = [...(this.inFlight ? [this.inFlight] : []), ...this.queue.splice(0)];
      this.inFlight = undefined;
      for (const batch of batches) {
        batch.reject(new CommandError({ argv: ARGV, code: null, stderr: batch.errors.join('\n'), input: batch.input, kind: 'transient', reason }));
      }
    };
    child.on('error', (error) => {
      this.usable = false;
      fail(`ipset session could not start: ${error.message}`);
    });
    child.on('exit', (code, signal) => fail(`ipset session exited (${signal ?? `code ${code}`})`));
    return child;
  }

  /** Resolves or rejects the batch in flight once its last prompt has arrived, then writes the next. */
  private settle(): void {
    const batch = this.inFlight;
    if (batch === undefined || this.prompts < batch.doneAt) return;
    this.inFlight = undefined;
    if (batch.errors.length === 0) batch.resolve();
    else batch.reject(new CommandError({ argv: ARGV, code: 1, stderr: batch.errors.join('\n'), input: batch.input, kind: 'rejected' }));
    this.pump();
  }
}
