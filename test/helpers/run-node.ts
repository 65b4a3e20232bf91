/**
 * Test helper: runs a command, or one of the built entry points (`dist/…`, so `npm run build`
 * first), as a child process with a given environment and stdin; resolves to its exit status,
 * output and pid.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface NodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A run of any command, with the child's pid. */
export interface CommandRun extends NodeRun {
  pid: number;
}

/** Absolute path of a built file, e.g. `builtPath('dist/agent/main.js')`. */
export function builtPath(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url));
}

/** Runs `command` with `args`, `env`, `stdin` (and `cwd`); resolves to its exit status, output and pid. */
export function runCommand(command: string, args: readonly string[], env: NodeJS.ProcessEnv, stdin = '', cwd?: string): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! }));
    child.stdin.end(stdin);
  });
}

export async function runNode(script: string, args: readonly string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<NodeRun> {
  const { code, stdout, stderr } = await runCommand(process.execPath, [builtPath(script), ...args], env, stdin);
  return { code, stdout, stderr };
}
