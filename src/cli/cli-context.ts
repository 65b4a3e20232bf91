/**
 * What every calicoctl command shares: the host name resolution, option splitting, and the
 * lazily opened datastore (the error types are in cli-errors.ts).
 *
 * Invariants: commands never call process.exit; they write through `ctx.out` and signal failure
 * by throwing `CliError` (message → stderr, exit 1) or `UsageError` (usage → stderr, exit 1).
 * The etcd client is created on first use, so `--help` and syntax errors need no etcd.
 */
import { hostname as osHostname } from 'node:os';
import { CalicoStore, etcdSettingsFromEnv, gatewayKv, GatewayUnusableError, withFallback, type EtcdKv } from '../datastore/index.js';
import { HOST_PATTERN } from '../model/index.js';
import { CliError, UsageError } from './cli-errors.js';

export { CliError, UsageError } from './cli-errors.js';

export interface CliContext {
  env: NodeJS.ProcessEnv;
  /** Writes text to stdout (the caller supplies newlines). */
  out(text: string): void;
  /** The datastore, opened on first call and closed by main when the command ends. */
  store(): CalicoStore;
  /** The etcd calls under the store (the same connection), for what is not profiles or endpoints. */
  kv(): EtcdKv;
  /** The etcd revision of the command's last write through the store (undefined: none). */
  lastWriteRevision(): number | undefined;
  /** All of stdin as text. */
  readStdin(): Promise<string>;
}

/** A command's entry point (main.ts loads its module only when the command is run). */
export type CommandRun = (args: string[], ctx: CliContext) => Promise<void>;

/**
 * This host's name as the datastore knows it: the `--hostname` value, else `CALICO_HOSTNAME`,
 * else the OS host name.
 */
export function resolveHostname(flagValue: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const name = flagValue ?? (env.CALICO_HOSTNAME?.trim() || osHostname());
  if (!HOST_PATTERN.test(name)) throw new CliError(`Invalid hostname ${JSON.stringify(name)}.`);
  return name;
}

export interface ParsedOptions {
  positionals: string[];
  flags: Set<string>;
  values: Map<string, string>;
}

/**
 * Separates options from positionals. `flags` take no value (`--detailed`); `valued` take one
 * (`--at=3` or `--at 3`). Options may appear anywhere; `--` ends option parsing. An unknown
 * option or a repeated one is a usage error.
 */
export function splitOptions(
  args: readonly string[],
  spec: { flags?: readonly string[]; valued?: readonly string[] },
  usage: string,
): ParsedOptions {
  const result: ParsedOptions = { positionals: [], flags: new Set(), values: new Map() };
  const flags = new Set(spec.flags ?? []);
  const valued = new Set(spec.valued ?? []);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      result.positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      // `-10` is a (bad) port list or position, not an option: let the checks report it.
      result.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if (flags.has(name) && eq < 0) {
      if (result.flags.has(name)) throw new UsageError(usage);
      result.flags.add(name);
    } else if (valued.has(name)) {
      let value: string | undefined;
      if (eq >= 0) value = arg.slice(eq + 1);
      else value = args[++i];
      if (value === undefined || result.values.has(name)) throw new UsageError(usage);
      result.values.set(name, value);
    } else {
      throw new UsageError(usage);
    }
  }
  return result;
}

/** Creates the real context for a process: stdout, stdin and an etcd-backed store. */
export function processContext(env: NodeJS.ProcessEnv): CliContext & { close(): void } {
  let kv: EtcdKv | undefined;
  let store: CalicoStore | undefined;
  const openKv = (): EtcdKv => {
    if (!kv) {
      const settings = etcdSettingsFromEnv(env);
      // etcd's JSON gateway (fast to load); gRPC only where the gateway cannot serve.
      const fallback = async () => {
        const { createEtcdClient, etcd3Kv } = await import('../datastore/client.js');
        return etcd3Kv(createEtcdClient(settings), settings);
      };
      kv = withFallback(gatewayKv(settings), (error) => error instanceof GatewayUnusableError, fallback);
    }
    return kv;
  };
  return {
    env,
    out: (text) => {
      process.stdout.write(text);
    },
    store: () => (store ??= new CalicoStore(openKv())),
    kv: openKv,
    lastWriteRevision: () => store?.lastWriteRevision,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    close: () => kv?.close(),
  };
}

/** Greedy word wrap at `width` columns (Python `textwrap.fill`), used for paragraph messages. */
export function wrapParagraph(text: string, width = 80): string {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (current && current.length + 1 + word.length > width) {
      lines.push(current);
      current = word;
    } else {
      current = current ? `${current} ${word}` : word;
    }
  }
  if (current) lines.push(current);
  return lines.join('\n');
}
