/**
 * calico-agent configuration: command-line flags, environment and an optional config file,
 * validated with zod into one immutable `AgentConfig`.
 *
 * Precedence, highest first: flag > environment > config file > built-in default. Every option
 * has exactly one flag (`--refresh-interval`), one environment variable
 * (`CALICO_AGENT_REFRESH_INTERVAL`; the hostname is `CALICO_HOSTNAME`, etcd settings keep the
 * datastore's `ETCD_*` names) and one config-file key (the flag name without dashes prefix:
 * `refresh-interval`; `refresh_interval` and `refreshInterval` are accepted too).
 *
 * The config file (`--config` / `CALICO_AGENT_CONFIG`) is either a JSON object or ini-style
 * `key = value` lines (`#`/`;` comments, `[sections]` ignored, keys case-insensitive).
 *
 * Invariants: `loadConfig` never exits or prints; a bad value throws one `ConfigError` whose
 * message is a single line naming the option, where it came from and what is expected. The
 * caller exits with `ConfigError.exitCode` (2, the usage-error code). Config is read once: to
 * change it, restart the agent (Felix's "die and restart" policy).
 */
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import type { EndpointToHostAction, PortSpec } from '../compiler/types.js';
import { etcdSettingsFromEnv } from '../src/datastore/settings.js';
import type { EtcdSettings } from '../src/datastore/settings.js';
import { HOST_PATTERN } from '../src/model/index.js';
import { versionLine } from '../src/version.js';

export type IptablesBackendChoice = 'auto' | 'legacy' | 'nft';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AgentConfig {
  hostname: string;
  /** etcd endpoints and TLS files (the datastore's `ETCD_*` handling, after flags and file). */
  etcd: EtcdSettings;
  interfacePrefix: string;
  iptablesBackend: IptablesBackendChoice;
  /** Periodic full read-back and repair of our kernel state; 0 disables. */
  refreshIntervalMs: number;
  /** The read-back's floor (verification-schedule.ts): as often as this while reads are cheap. */
  refreshMinIntervalMs: number;
  /** The fast hook check's interval (hook-watch.ts); 0 disables it. */
  hookCheckIntervalMs: number;
  /** Minimum time between two applies (bursts of etcd events coalesce into one apply). */
  minApplyIntervalMs: number;
  /** Health, metrics and status HTTP listener; `null` disables it. */
  healthListen: ListenAddress | null;
  logLevel: LogLevel;
  /** `undefined` keeps the compiler's default. */
  endpointToHostAction: EndpointToHostAction | undefined;
  failsafeInboundHostPorts: readonly PortSpec[] | undefined;
  failsafeOutboundHostPorts: readonly PortSpec[] | undefined;
  /** Run every dataplane command inside this network namespace (`ip netns exec`). */
  dataplaneNetns: string | undefined;
  /** How long etcd may be unreachable before the agent reports not-ready. */
  etcdGracePeriodMs: number;
  /** Host liveness report period (`/calico/felix/v1/host/<host>/status`); 0 disables. */
  reportingIntervalMs: number;
  reportingTtlMs: number;
  endpointStatusReporting: boolean;
  ipv6: boolean;
  /** `--once`: list, program, exit. */
  once: boolean;
  /** `--once --dry-run`: print the restore input that would be applied, change nothing. */
  dryRun: boolean;
}

/** A configuration problem; `message` is one line for the operator. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `--help` or `--version` was asked for: print `text` to stdout and exit 0. */
export class InfoRequest {
  constructor(readonly text: string) {}
}

// ---------------------------------------------------------------------------------------------
// Value schemas: string in (or JSON scalar from a config file), typed value out.

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const durationSchema = z.union([z.number(), z.string()]).transform((input, ctx) => {
  const text = String(input).trim();
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!match) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 60s, 500ms or 2m (a bare number is seconds)' });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 's']!);
});

const booleanSchema = z.union([z.boolean(), z.string()]).transform((input, ctx) => {
  if (typeof input === 'boolean') return input;
  const text = input.trim().toLowerCase();
  if (['true', '1', 'yes', 'y', 't', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'n', 'f', 'off'].includes(text)) return false;
  ctx.addIssue({ code: 'custom', message: 'expected true or false' });
  return z.NEVER;
});

const listenSchema = z.string().transform((input, ctx): ListenAddress | null => {
  const text = input.trim();
  if (text.toLowerCase() === 'none') return null;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'expected HOST:PORT (e.g. 127.0.0.1:9099) or none' });
    return z.NEVER;
  }
  return { host: match[1] ?? match[2]!, port };
});

const portListSchema = z.union([z.string(), z.array(z.string())]).transform((input, ctx): PortSpec[] => {
  const text = Array.isArray(input) ? input.join(',') : input;
  if (text.trim() === '' || text.trim().toLowerCase() === 'none') return [];
  const ports: PortSpec[] = [];
  for (const item of text.split(',')) {
    const match = /^(tcp|udp):(\d{1,5})$/i.exec(item.trim());
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected a list like tcp:22,udp:68 (bad item ${JSON.stringify(item.trim())})` });
      return z.NEVER;
    }
    ports.push({ protocol: match[1]!.toLowerCase() as 'tcp' | 'udp', port });
  }
  return ports;
});

const choiceSchema = <T extends string>(choices: readonly T[], fold: (s: string) => string) =>
  z.string().transform((input, ctx): T => {
    const value = fold(input.trim());
    if (!(choices as readonly string[]).includes(value)) {
      ctx.addIssue({ code: 'custom', message: `expected one of ${choices.join(', ')}` });
      return z.NEVER;
    }
    return value as T;
  });

const patternSchema = (pattern: RegExp, expected: string) =>
  z.string().transform((input, ctx) => {
    if (!pattern.test(input)) {
      ctx.addIssue({ code: 'custom', message: expected });
      return z.NEVER;
    }
    return input;
  });

const textSchema = z.union([z.string(), z.number()]).transform(String);

/** One configurable option: its flag name (also the config-file key), env var, schema, default. */
interface OptionSpec<T> {
  env: string;
  schema: z.ZodType<T, unknown>;
  fallback: () => T;
  description: string;
}

const option = <T>(env: string, schema: z.ZodType<T, unknown>, fallback: () => T, description: string): OptionSpec<T> => ({
  env,
  schema,
  fallback,
  description,
});

/** The options table: flag name → spec. Order is the order of `--help`. */
const OPTIONS = {
  hostname: option('CALICO_HOSTNAME', patternSchema(HOST_PATTERN, 'expected a host name without "/" or spaces'),
    () => osHostname(), 'this host\'s name in etcd (default: the system host name)'),
  'etcd-endpoints': option('ETCD_ENDPOINTS', textSchema, () => undefined as string | undefined,
    'comma-separated etcd URLs (or ETCD_AUTHORITY/ETCD_SCHEME)'),
  'etcd-ca-cert-file': option('ETCD_CA_CERT_FILE', textSchema, () => undefined as string | undefined, 'etcd CA certificate file'),
  'etcd-cert-file': option('ETCD_CERT_FILE', textSchema, () => undefined as string | undefined, 'etcd client certificate file'),
  'etcd-key-file': option('ETCD_KEY_FILE', textSchema, () => undefined as string | undefined, 'etcd client key file'),
  'interface-prefix': option('CALICO_AGENT_INTERFACE_PREFIX',
    patternSchema(/^[a-zA-Z0-9_-]{1,10}$/, 'expected 1-10 characters of [a-zA-Z0-9_-]'), () => 'cali',
    'workload interface name prefix (default cali)'),
  'iptables-backend': option('CALICO_AGENT_IPTABLES_BACKEND', choiceSchema(['auto', 'legacy', 'nft'] as const, (s) => s.toLowerCase()),
    () => 'auto' as IptablesBackendChoice, 'auto, legacy or nft (default auto)'),
  'refresh-interval': option('CALICO_AGENT_REFRESH_INTERVAL', durationSchema, () => 60_000,
    'periodic read-back and repair of our chains and sets; 0 disables (default 60s)'),
  'refresh-min-interval': option('CALICO_AGENT_REFRESH_MIN_INTERVAL', durationSchema, () => 4_000,
    'the read-back comes as often as this while a read costs at most 2.5% of the time (default 4s)'),
  'hook-check-interval': option('CALICO_AGENT_HOOK_CHECK_INTERVAL', durationSchema, () => 2_000,
    'fast check that our hooks are still first in the built-in chains; 0 disables (default 2s)'),
  'min-apply-interval': option('CALICO_AGENT_MIN_APPLY_INTERVAL', durationSchema, () => 30,
    'minimum time between two applies; bursts coalesce (default 30ms)'),
  'health-listen': option('CALICO_AGENT_HEALTH_LISTEN', listenSchema, () => ({ host: '127.0.0.1', port: 9099 }) as ListenAddress | null,
    'HOST:PORT of /liveness, /readiness, /metrics, /status; none disables (default 127.0.0.1:9099)'),
  'log-level': option('CALICO_AGENT_LOG_LEVEL',
    choiceSchema(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const, (s) => (s.toLowerCase() === 'warning' ? 'warn' : s.toLowerCase())),
    () => 'info' as LogLevel, 'trace, debug, info, warn, error, fatal or silent (default info)'),
  'endpoint-to-host-action': option('CALICO_AGENT_ENDPOINT_TO_HOST_ACTION',
    choiceSchema(['DROP', 'RETURN', 'ACCEPT'] as const, (s) => s.toUpperCase()),
    () => undefined as EndpointToHostAction | undefined, 'DROP, RETURN or ACCEPT for workload → host traffic (default DROP)'),
  'failsafe-inbound-host-ports': option('CALICO_AGENT_FAILSAFE_INBOUND_HOST_PORTS', portListSchema,
    () => undefined as PortSpec[] | undefined, 'e.g. tcp:22,udp:68 or none (default: Felix\'s list)'),
  'failsafe-outbound-host-ports': option('CALICO_AGENT_FAILSAFE_OUTBOUND_HOST_PORTS', portListSchema,
    () => undefined as PortSpec[] | undefined, 'e.g. udp:53,udp:67 or none (default: Felix\'s list)'),
  'dataplane-netns': option('CALICO_AGENT_DATAPLANE_NETNS',
    patternSchema(/^[a-zA-Z0-9_.-]{1,64}$/, 'expected a network namespace name (ip netns list)'),
    () => undefined as string | undefined, 'run every iptables/ipset/ip command inside this network namespace'),
  'etcd-grace-period': option('CALICO_AGENT_ETCD_GRACE_PERIOD', durationSchema, () => 30_000,
    'report not-ready after etcd is unreachable this long (default 30s)'),
  'reporting-interval': option('CALICO_AGENT_REPORTING_INTERVAL', durationSchema, () => 30_000,
    'host status report period; 0 disables (default 30s)'),
  'reporting-ttl': option('CALICO_AGENT_REPORTING_TTL', durationSchema, () => 90_000, 'host status TTL (default 90s)'),
  'endpoint-status': option('CALICO_AGENT_ENDPOINT_STATUS', booleanSchema, () => true,
    'write per-endpoint status to etcd (default true)'),
  ipv6: option('CALICO_AGENT_IPV6', booleanSchema, () => true, 'program IPv6 (ip6tables, inet6 sets) (default true)'),
} satisfies Record<string, OptionSpec<unknown>>;

type OptionName = keyof typeof OPTIONS;
type OptionValues = { [K in OptionName]: z.output<(typeof OPTIONS)[K]['schema']> };

const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];
const ETCD_OPTIONS: OptionName[] = ['etcd-endpoints', 'etcd-ca-cert-file', 'etcd-cert-file', 'etcd-key-file'];

export const CONFIG_FILE_ENV = 'CALICO_AGENT_CONFIG';

export function usage(): string {
  const line = (flag: string, text: string): string => `  ${flag.padEnd(31)} ${text}`;
  const lines = [
    'Usage: calico-agent [--once [--dry-run]] [--config FILE] [options]',
    '',
    'Programs this host\'s iptables chains and ipsets from Calico v1 profiles and endpoints in etcd.',
    '',
    line('--once', 'list etcd, program the dataplane, exit (0 on success)'),
    line('--dry-run', 'with --once: print the restore input that would be applied; change nothing'),
    line('--config FILE', `JSON or ini-style config file [${CONFIG_FILE_ENV}]`),
    ...OPTION_NAMES.map((name) => line(`--${name}`, `${OPTIONS[name].description} [${OPTIONS[name].env}]`)),
    '  --help, --version',
    '',
    'Precedence: flag > environment > config file > default. Exit codes: 0 ok, 1 runtime failure,',
    '2 invalid configuration or usage.',
  ];
  return lines.join('\n');
}

/** Normalises a config-file key: `refreshInterval`, `refresh_interval`, `Refresh-Interval` → `refresh-interval`. */
function normaliseKey(key: string): string {
  return key
    .trim()
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/_/g, '-')
    .toLowerCase();
}

type FileValues = Map<string, unknown>;

function parseConfigFile(path: string, text: string): FileValues {
  const values: FileValues = new Map();
  const add = (rawKey: string, value: unknown, where: string): void => {
    const key = normaliseKey(rawKey);
    if (!(OPTION_NAMES as string[]).includes(key)) {
      throw new ConfigError(`config file ${path}: unknown option ${JSON.stringify(rawKey)}${where}`);
    }
    values.set(key, value);
  };
  if (text.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`config file ${path}: invalid JSON (${(e as Error).message.replace(/\s+/g, ' ')})`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${path}: expected a JSON object`);
    }
    for (const [key, value] of Object.entries(parsed)) add(key, value, '');
    return values;
  }
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';') || /^\[.*\]$/.test(line)) return;
    const eq = line.search(/[=:]/);
    if (eq <= 0) throw new ConfigError(`config file ${path}: line ${index + 1}: expected "key = value"`);
    add(line.slice(0, eq).trim(), line.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'), ` (line ${index + 1})`);
  });
  return values;
}

function readConfigFile(path: string, readFile: (path: string) => string): FileValues {
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`cannot read config file ${path}: ${err.code ?? err.message}`);
  }
  return parseConfigFile(path, text);
}

export interface LoadConfigInput {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Injected for tests; defaults to reading UTF-8 from disk. */
  readFile?: (path: string) => string;
}

function parseFlags(argv: readonly string[]) {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    once: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    help: { type: 'boolean' },
    version: { type: 'boolean' },
    config: { type: 'string' },
  };
  for (const name of OPTION_NAMES) options[name] = { type: 'string' };
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (e) {
    const message = (e as Error).message.split(/\.\s/)[0]!.replace(/\.$/, '');
    throw new ConfigError(`${message} (see --help)`);
  }
}

/**
 * Resolves the configuration. Throws `ConfigError` (one line) on any bad value, `InfoRequest`
 * for `--help` / `--version`.
 */
export function loadConfig(input: LoadConfigInput): AgentConfig {
  const { argv, env } = input;
  const readFile = input.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const flags = parseFlags(argv);
  if (flags.help) throw new InfoRequest(usage());
  if (flags.version) throw new InfoRequest(versionLine('calico-agent'));

  const configPath = (flags.config as string | undefined) ?? env[CONFIG_FILE_ENV];
  const file: FileValues = configPath ? readConfigFile(configPath, readFile) : new Map();

  const resolve = <K extends OptionName>(name: K): OptionValues[K] => {
    const spec = OPTIONS[name];
    const candidates: { value: unknown; source: string; where?: string }[] = [
      { value: flags[name], source: `--${name}` },
      { value: env[spec.env], source: spec.env },
      { value: file.get(name), source: name, where: ` in ${configPath ?? ''}` },
    ];
    const chosen = candidates.find((c) => c.value !== undefined);
    if (!chosen) return spec.fallback() as OptionValues[K];
    const parsed = spec.schema.safeParse(chosen.value);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? 'invalid value';
      throw new ConfigError(`invalid ${chosen.source} ${JSON.stringify(chosen.value)}${chosen.where ?? ''}: ${reason}`);
    }
    return parsed.data as OptionValues[K];
  };

  const values = Object.fromEntries(OPTION_NAMES.map((name) => [name, resolve(name)])) as OptionValues;

  const once = flags.once === true;
  const dryRun = flags['dry-run'] === true;
  if (dryRun && !once) throw new ConfigError('--dry-run requires --once');
  if (values['min-apply-interval'] > 10_000) {
    throw new ConfigError(`invalid min-apply-interval ${values['min-apply-interval']}ms: expected at most 10s`);
  }
  if (values['reporting-interval'] > 0 && values['reporting-ttl'] <= values['reporting-interval']) {
    throw new ConfigError('invalid reporting-ttl: must be longer than reporting-interval');
  }

  // etcd: flags and file values override the process environment; the datastore parses the result.
  const etcdEnv: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(env)) if (key.startsWith('ETCD_')) etcdEnv[key] = value;
  for (const name of ETCD_OPTIONS) {
    const fromFlag = flags[name] as string | undefined;
    const fromFile = file.get(name);
    const chosen = fromFlag ?? env[OPTIONS[name].env] ?? (fromFile === undefined ? undefined : String(fromFile));
    if (chosen !== undefined) etcdEnv[OPTIONS[name].env] = chosen;
    // An explicit endpoint list wins over the legacy ETCD_AUTHORITY/ETCD_SCHEME pair.
    if (name === 'etcd-endpoints' && fromFlag !== undefined) {
      delete etcdEnv.ETCD_AUTHORITY;
      delete etcdEnv.ETCD_SCHEME;
    }
  }

  let etcd: EtcdSettings;
  try {
    etcd = etcdSettingsFromEnv(etcdEnv);
  } catch (e) {
    throw new ConfigError(`invalid etcd settings: ${(e as Error).message}`);
  }

  return {
    hostname: values.hostname,
    etcd,
    interfacePrefix: values['interface-prefix'],
    iptablesBackend: values['iptables-backend'],
    refreshIntervalMs: values['refresh-interval'],
    refreshMinIntervalMs: values['refresh-min-interval'],
    hookCheckIntervalMs: values['hook-check-interval'],
    minApplyIntervalMs: values['min-apply-interval'],
    healthListen: values['health-listen'],
    logLevel: values['log-level'],
    endpointToHostAction: values['endpoint-to-host-action'],
    failsafeInboundHostPorts: values['failsafe-inbound-host-ports'],
    failsafeOutboundHostPorts: values['failsafe-outbound-host-ports'],
    dataplaneNetns: values['dataplane-netns'],
    etcdGracePeriodMs: values['etcd-grace-period'],
    reportingIntervalMs: values['reporting-interval'],
    reportingTtlMs: values['reporting-ttl'],
    endpointStatusReporting: values['endpoint-status'],
    ipv6: values.ipv6,
    once,
    dryRun,
  };
}
