/**
 * Test helper: runs the built calicoctl (`dist/calicoctl.cjs`, the bundle that ships, so `npm run build` first) as a
 * child process against a given environment and returns its exit status and output.
 */
import { builtPath, runNode, type NodeRun } from '../helpers/run-node.js';

/** Absolute path of the built CLI. */
export const CLI_PATH = builtPath('dist/calicoctl.cjs');

export type CliResult = NodeRun;

export function calicoctl(env: NodeJS.ProcessEnv, args: string[], stdin = ''): Promise<CliResult> {
  return runNode('dist/calicoctl.cjs', args, env, stdin);
}

/** Splits a shell-like command line on spaces (test commands never quote). */
export const words = (line: string): string[] => line.split(' ').filter(Boolean);
