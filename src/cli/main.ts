#!/usr/bin/env node
/**
 * calicoctl entry point: dispatches `calicoctl <command> …` through the command table below and
 * owns the one top-level error handler (CliError/UsageError/DatastoreError → their message on
 * stderr, or stdout for a CliError marked so, exit 1; anything else is a bug and prints its
 * stack).
 *
 * Start-up cost is the point of this module's shape: it imports only the error types, and loads
 * a command's module (and through it the model and the datastore) when that command runs, so
 * `calicoctl --help` and `--version` cost little more than Node itself.
 *
 * Adding a command: write a module exporting its `CommandRun` and add a row to COMMANDS.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DatastoreError } from '../datastore/errors.js';
import { routeProcessWarnings } from '../process-warnings.js';
import { versionLine } from '../version.js';
import type { CommandRun } from './cli-context.js';
import { CliError, UsageError } from './cli-errors.js';

interface CommandEntry {
  name: string;
  /** One line for the top-level usage. */
  synopsis: string;
  load(): Promise<CommandRun>;
}

const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'profile',
    synopsis: 'calicoctl profile <subcommand> [<args>...]   Configure profiles (rules and tags).',
    load: async () => (await import('./profile-command.js')).runProfile,
  },
  {
    name: 'endpoint',
    synopsis: 'calicoctl endpoint <subcommand> [<args>...]  Show endpoints; assign profiles to them.',
    load: async () => (await import('./endpoint-command.js')).runEndpoint,
  },
  {
    name: 'status',
    synopsis: 'calicoctl status [-o json]                   Show each host\'s agent: alive, enforced revision, lag.',
    load: async () => (await import('./status-command.js')).runStatus,
  },
  {
    name: 'policy',
    synopsis: 'calicoctl policy trace --from=SRC --to=DST   Show which rule decides a packet, and why.',
    load: async () => (await import('./policy-command.js')).runPolicy,
  },
  {
    name: 'workload',
    synopsis: 'calicoctl workload <subcommand> [<args>...]  Attach a network namespace as a workload; detach it.',
    load: async () => (await import('./workload-command.js')).runWorkload,
  },
];

function topUsage(): string {
  return [
    'Usage:',
    ...COMMANDS.map((c) => `  ${c.synopsis}`),
    '  calicoctl --version',
    '',
    "See 'calicoctl <command> --help' for a command's options. Any write command takes",
    '--wait[=TIMEOUT] (default 60s): return once every live agent enforces the write.',
  ].join('\n');
}

/** Runs calicoctl with `argv` (without node and script); resolves to the exit status. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const stream = name === undefined ? process.stderr : process.stdout;
    stream.write(`${topUsage()}\n`);
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${versionLine('calicoctl')}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`${topUsage()}\n`);
    return 1;
  }
  const [run, { processContext }, { takeWaitOption, waitForAgents }] = await Promise.all([
    command.load(),
    import('./cli-context.js'),
    import('./wait.js'),
  ]);
  const ctx = processContext(env);
  try {
    const wait = takeWaitOption(args);
    await run(wait.args, ctx);
    const revision = ctx.lastWriteRevision();
    if (wait.timeoutMs !== undefined && revision !== undefined) ctx.out(await waitForAgents(ctx.kv(), revision, wait.timeoutMs));
    return 0;
  } catch (error) {
    if (error instanceof UsageError) process.stderr.write(`${error.usage}\n`);
    else if (error instanceof CliError && error.stdout) process.stdout.write(`${error.message}\n`);
    else if (error instanceof CliError || error instanceof DatastoreError) process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`Unexpected error (a bug in calicoctl): ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  } finally {
    ctx.close();
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  routeProcessWarnings((warning) => process.stderr.write(`calicoctl: warning: ${warning.message}\n`));
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
