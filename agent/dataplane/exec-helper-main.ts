/**
 * The exec helper process (see exec-helper.ts): started by the agent at boot, while its heap is
 * still small, it runs every dataplane program for the agent so that each fork copies this small
 * process, not the agent's large one (fork cost grows with the forking process's RSS).
 *
 * Protocol, frames of helper-frames.ts: requests on stdin `{id, argv, timeoutMs?}` with stdin as
 * payload (or `{id, abort: true}`: kill request id's program), answers on stdout
 * `{id, result: {code, stderr, durationMs}}` with stdout as payload, or
 * `{id, error: {...CommandError fields}}`.
 * argv[1] is the namespace (or empty). Requests run concurrently, each answered when its program
 * ends. The helper exits when its stdin closes (the agent stopped or died).
 */
import { CommandError, createCommandRunner } from './command-runner.js';
import type { HelperRequest, HelperResponse } from './exec-helper.js';
import { encodeFrame, FrameReader } from './helper-frames.js';

const netns = process.argv[2] || undefined;
const runner = createCommandRunner(netns === undefined ? {} : { netns });
const pending = new Set<Promise<void>>();
/** Requests running, by id: aborting one kills its program. */
const running = new Map<number, AbortController>();

function answer(response: HelperResponse, stdout?: string): void {
  process.stdout.write(encodeFrame(response, stdout === '' ? undefined : stdout));
}

async function serve(request: Extract<HelperRequest, { argv: readonly string[] }>, input: string | undefined): Promise<void> {
  const abort = new AbortController();
  running.set(request.id, abort);
  try {
    const options = {
      ...(input !== undefined ? { input } : {}),
      ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
      signal: abort.signal,
    };
    const { stdout, ...result } = await runner.run(request.argv, options);
    answer({ id: request.id, result }, stdout);
  } catch (error) {
    const fields =
      error instanceof CommandError
        ? { code: error.code, stderr: error.stderr, kind: error.kind, reason: error.detail, aborted: error.aborted }
        : { code: null, stderr: '', kind: 'transient' as const, reason: error instanceof Error ? error.message : String(error) };
    answer({ id: request.id, error: fields });
  } finally {
    running.delete(request.id);
  }
}

const requests = new FrameReader<HelperRequest>((request, input) => {
  if ('abort' in request) {
    running.get(request.id)?.abort();
    return;
  }
  const job = serve(request, input);
  pending.add(job);
  void job.finally(() => pending.delete(job));
});
process.stdin
  .on('data', (chunk: Buffer) => requests.push(chunk))
  .on('end', () => {
    void Promise.allSettled([...pending]).then(() => process.exit(0));
  });
