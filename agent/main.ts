#!/usr/bin/env node
/**
 * calico-agent: the per-host policy daemon.
 *
 *   calico-agent                     daemon: list-then-watch etcd, keep the kernel in sync
 *   calico-agent --once              list, program once, exit
 *   calico-agent --once --dry-run    print the restore input that would be applied; change nothing
 *
 * Exit codes: 0 success (or clean stop on SIGTERM/SIGINT); 1 runtime failure (etcd unreachable in
 * --once, dataplane writes still failing after retries and a full rewrite); 2 invalid
 * configuration or usage (including a configured iptables backend that is not installed). Every failure prints ONE line `calico-agent: <reason>` on stderr; JSON
 * logs (pino) also go to stderr, stdout carries only --dry-run output and --help.
 *
 * Stopping never flushes: the rules stay in the kernel, failing closed, until the next agent
 * adopts them. SIGTERM/SIGINT stop promptly at any moment: before the agent has started, at once;
 * after, it stops (etcd, loop, status) for at most STOP_DEADLINE_MS, then exits anyway (a restore
 * already handed to the exec helper still completes there, atomically).
 */
import { ConfigError, InfoRequest, loadConfig, type AgentConfig } from './config.js';
import { formatPlans, runOnce, startAgent } from './agent.js';
import { IptablesBackendError } from './dataplane/iptables-backend.js';
import { createLogger } from './logger.js';
import { routeProcessWarnings } from '../src/process-warnings.js';

/**
 * The launcher's preload (jemalloc, launcher.sh) is for this process: its children (the exec
 * helper, the tools) start without it. An LD_PRELOAD the operator set is left alone.
 */
function keepLauncherPreloadToThisProcess(env: NodeJS.ProcessEnv): void {
  const preloaded = env.CALICO_AGENT_PRELOADED;
  if (preloaded === undefined) return;
  if (env.LD_PRELOAD === preloaded) delete env.LD_PRELOAD;
  delete env.CALICO_AGENT_PRELOADED;
}

/** The longest a signal-initiated stop may take before the process exits regardless. */
const STOP_DEADLINE_MS = 3_000;

function fail(code: number, reason: string): never {
  process.stderr.write(`calico-agent: ${reason}\n`);
  process.exit(code);
}

/** 2 for errors that are the configuration's (a configured backend that is not installed), else 1. */
function exitCodeOf(error: unknown): number {
  return error instanceof IptablesBackendError ? error.exitCode : 1;
}

async function main(): Promise<void> {
  keepLauncherPreloadToThisProcess(process.env);
  let config: AgentConfig;
  try {
    config = loadConfig({ argv: process.argv.slice(2), env: process.env });
  } catch (error) {
    if (error instanceof InfoRequest) {
      process.stdout.write(`${error.text}\n`);
      return;
    }
    if (error instanceof ConfigError) fail(error.exitCode, error.message);
    throw error;
  }
  const log = createLogger(config.logLevel);
  routeProcessWarnings((warning) => log.warn({ code: warning.code, warning: warning.message }, 'node process warning'));

  if (config.once) {
    try {
      const result = await runOnce(config, { log });
      if (result.plans) process.stdout.write(formatPlans(result.plans));
      log.info(
        { revision: result.revision, bytes: result.report?.bytesWritten, restoreCalls: result.report?.restoreCalls, ms: Math.round(result.ms) },
        config.dryRun ? 'dry run complete; nothing changed' : 'dataplane programmed once',
      );
      process.exit(0);
    } catch (error) {
      fail(exitCodeOf(error), (error as Error).message.split('\n')[0] ?? 'failed');
    }
  }

  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  let signalled = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'signal received');
    if (agent === undefined) process.exit(0); // still starting: nothing to stop cleanly yet
    setTimeout(() => {
      log.warn({ ms: STOP_DEADLINE_MS }, 'stop is taking too long; exiting now (the dataplane is left as it is)');
      process.exit(0);
    }, STOP_DEADLINE_MS).unref();
    void agent.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  agent = await startAgent(config, { log }).catch((error: unknown) => fail(exitCodeOf(error), (error as Error).message.split('\n')[0]!));
  try {
    await agent.fatal;
  } catch (error) {
    await agent.stop().catch(() => {});
    fail(1, (error as Error).message.split('\n')[0] ?? 'fatal error');
  }
}

main().catch((error: unknown) => fail(1, error instanceof Error ? error.message.split('\n')[0]! : String(error)));
