/**
 * Test helper: runs one of the built entry points (`dist/…`, so `npm run build` first) as a
 * child process with a given environment and stdin; resolves to its exit status and output.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface NodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Absolute path of a built file, e.g. `builtPath('dist/agent/main.js')`. */
export function builtPath(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url));
}

export function runNode(script: string, args: readonly string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [builtPath(script), ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}
