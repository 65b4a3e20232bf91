#!/usr/bin/env node
/**
 * calicoctl entry point: dispatches `calicoctl <command> …` through the command table below and
 * owns the one top-level error handler (CliError/UsageError/DatastoreError → one message on
 * stderr, exit 1; anything else is a bug and prints its stack).
 *
 * Adding a command: implement `Command` (cli-context.ts) in its own module and add it to
 * COMMANDS.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DatastoreError } from '../datastore/index.js';
import { CliError, processContext, UsageError, type Command } from './cli-context.js';
import { endpointCommand } from './endpoint-command.js';
import { profileCommand } from './profile-command.js';
import { routeProcessWarnings } from '../process-warnings.js';
import { workloadCommand } from './workload-command.js';

export { CliError, UsageError, resolveHostname, type CliContext, type Command } from './cli-context.js';

const COMMANDS: readonly Command[] = [profileCommand, endpointCommand, workloadCommand];

function topUsage(): string {
  return ['Usage:', ...COMMANDS.map((c) => `  ${c.synopsis}`), '', "See 'calicoctl <command> --help' for a command's options."].join(
    '\n',
  );
}

/** Runs calicoctl with `argv` (without node and script); resolves to the exit status. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const stream = name === undefined ? process.stderr : process.stdout;
    stream.write(`${topUsage()}\n`);
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`${topUsage()}\n`);
    return 1;
  }
  const ctx = processContext(env);
  try {
    await command.run(args, ctx);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) process.stderr.write(`${error.usage}\n`);
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
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
}
