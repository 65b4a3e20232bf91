/**
 * The exec helper process (see exec-helper.ts): started by the agent at boot, while its heap is
 * still small, it runs every dataplane program for the agent so that each fork copies this small
 * process, not the agent's large one (fork cost grows with the forking process's RSS).
 *
 * Protocol, one JSON object per line: requests on stdin `{id, argv, input?, timeoutMs?}`,
 * answers on stdout `{id, result: CommandResult}` or `{id, error: {...CommandError fields}}`.
 * argv[1] is the namespace (or empty). Requests run concurrently, each answered when its program
 * ends. The helper exits when its stdin closes (the agent stopped or died).
 */
import { createInterface } from 'node:readline';
import { CommandError, createCommandRunner } from './command-runner.js';
import type { HelperRequest, HelperResponse } from './exec-helper.js';

const netns = process.argv[2] || undefined;
const runner = createCommandRunner(netns === undefined ? {} : { netns });
const pending = new Set<Promise<void>>();

function answer(response: HelperResponse): void {
  process.stdout.write(`${JSON.stringify(response)}\n`);
}

async function serve(request: HelperRequest): Promise<void> {
  try {
    const options = { ...(request.input !== undefined ? { input: request.input } : {}), ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}) };
    answer({ id: request.id, result: await runner.run(request.argv, options) });
  } catch (error) {
    const fields =
      error instanceof CommandError
        ? { code: error.code, stderr: error.stderr, kind: error.kind, reason: error.detail }
        : { code: null, stderr: '', kind: 'transient' as const, reason: error instanceof Error ? error.message : String(error) };
    answer({ id: request.id, error: fields });
  }
}

createInterface({ input: process.stdin, crlfDelay: Infinity })
  .on('line', (line) => {
    const job = serve(JSON.parse(line) as HelperRequest);
    pending.add(job);
    void job.finally(() => pending.delete(job));
  })
  .on('close', () => {
    void Promise.allSettled([...pending]).then(() => process.exit(0));
  });
