/**
 * calico-docker-plugin configuration: flags, then environment, then built-in defaults.
 *
 *   --socket=PATH            CALICO_DOCKER_PLUGIN_SOCKET   /run/docker/plugins/calico.sock
 *   --docker-host=URL        DOCKER_HOST                   unix:///var/run/docker.sock
 *   --hostname=NAME          CALICO_HOSTNAME               the system host name
 *   --dataplane-netns=NS     CALICO_AGENT_DATAPLANE_NETNS  the plugin's own namespace
 *   --default-pool-v4=CIDR   CALICO_DOCKER_DEFAULT_POOL_V4 none
 *   --default-pool-v6=CIDR   CALICO_DOCKER_DEFAULT_POOL_V6 none
 *   --log-level=LEVEL        CALICO_DOCKER_PLUGIN_LOG_LEVEL info
 *   etcd: the datastore's ETCD_* variables (settings.ts).
 *
 * The plugin name Docker uses is the socket's file name without `.sock` (docker-deploy.md §1.1).
 * The dataplane namespace is where Join creates veth pairs: it must be the network namespace
 * dockerd runs in (Docker moves the peer from there into the container).
 *
 * Invariant: `loadPluginConfig` never exits or prints; every problem is one PluginConfigError
 * whose message is a single line naming the option and what is expected.
 */
import { existsSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { etcdSettingsFromEnv, type EtcdSettings } from '../../src/datastore/index.js';
import { canonicalCidr, cidrVersion, HOST_PATTERN, maskedCidr, type IpVersion } from '../../src/model/index.js';
import { versionLine } from '../../src/version.js';

export type PluginLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
const LOG_LEVELS: readonly PluginLogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** How to reach dockerd: a unix socket path, or host and port for tcp://. */
export type DockerEndpoint = { socketPath: string } | { host: string; port: number };

export interface PluginConfig {
  socketPath: string;
  /** The plugin name Docker knows (socket file name without `.sock`). */
  pluginName: string;
  docker: DockerEndpoint;
  hostname: string;
  dataplaneNetns: string | undefined;
  /** Pools used when etcd holds no Calico pool of that family. */
  defaultPools: Record<IpVersion, string | undefined>;
  logLevel: PluginLogLevel;
  etcd: EtcdSettings;
}

export class PluginConfigError extends Error {
  readonly exitCode = 2;
}

/** `--help` or `--version`: print `text` and exit 0. */
export class PluginHelpRequest {
  constructor(readonly text: string) {}
}

export const PLUGIN_HELP = [
  'Usage: calico-docker-plugin [options]',
  '',
  'A Docker (libnetwork) remote network driver and IPAM driver for Calico: each Docker network is',
  'a profile of the same name, each container an endpoint. Serves HTTP on a unix socket; use it as',
  '`docker network create --driver <name> --ipam-driver <name> <network>`, where <name> is the',
  'socket file name without .sock.',
  '',
  'Options (environment variable in brackets):',
  '  --socket=PATH            [CALICO_DOCKER_PLUGIN_SOCKET] default /run/docker/plugins/calico.sock',
  '  --docker-host=URL        [DOCKER_HOST] unix:///path or tcp://host:port; default unix:///var/run/docker.sock',
  '  --hostname=NAME          [CALICO_HOSTNAME] this host in etcd; default the system host name',
  '  --dataplane-netns=NS     [CALICO_AGENT_DATAPLANE_NETNS] namespace dockerd runs in; default the current one',
  '  --default-pool-v4=CIDR   [CALICO_DOCKER_DEFAULT_POOL_V4] pool used while etcd has no IPv4 pool',
  '  --default-pool-v6=CIDR   [CALICO_DOCKER_DEFAULT_POOL_V6] pool used while etcd has no IPv6 pool',
  '  --log-level=LEVEL        [CALICO_DOCKER_PLUGIN_LOG_LEVEL] trace|debug|info|warn|error|silent; default info',
  '  --help, --version',
  '  etcd: ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE',
].join('\n');

const OPTIONS = {
  socket: { type: 'string' },
  'docker-host': { type: 'string' },
  hostname: { type: 'string' },
  'dataplane-netns': { type: 'string' },
  'default-pool-v4': { type: 'string' },
  'default-pool-v6': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

function pick(flag: string | undefined, env: string | undefined): string | undefined {
  const value = flag ?? env;
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

export function parseDockerHost(text: string, source: string): DockerEndpoint {
  if (text.startsWith('unix://')) {
    const socketPath = text.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw new PluginConfigError(`${source}: ${JSON.stringify(text)} must be unix:///absolute/path`);
    return { socketPath };
  }
  const tcp = /^tcp:\/\/([^:/\s]+):(\d{1,5})\/?$/.exec(text);
  if (tcp && Number(tcp[2]) <= 65535) return { host: tcp[1]!, port: Number(tcp[2]) };
  throw new PluginConfigError(`${source}: ${JSON.stringify(text)} is not unix:///path or tcp://host:port`);
}

function parsePool(text: string | undefined, version: IpVersion, source: string): string | undefined {
  if (text === undefined) return undefined;
  const canonical = canonicalCidr(text);
  if (canonical === undefined || !text.includes('/') || cidrVersion(canonical) !== version || maskedCidr(canonical) !== canonical) {
    throw new PluginConfigError(`${source}: ${JSON.stringify(text)} is not an IPv${version} network CIDR (e.g. ${version === 4 ? '198.51.100.0/24' : '2001:db8:d::/64'})`);
  }
  return canonical;
}

export function loadPluginConfig(argv: readonly string[], env: NodeJS.ProcessEnv): PluginConfig {
  let values: Partial<Record<keyof typeof OPTIONS, string | boolean>>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new PluginConfigError(`${(error as Error).message.split('\n')[0]} (see --help)`);
  }
  if (values.help) throw new PluginHelpRequest(PLUGIN_HELP);
  if (values.version) throw new PluginHelpRequest(versionLine('calico-docker-plugin'));
  const flag = (name: keyof typeof OPTIONS): string | undefined => values[name] as string | undefined;

  const socketPath = pick(flag('socket'), env.CALICO_DOCKER_PLUGIN_SOCKET) ?? '/run/docker/plugins/calico.sock';
  if (!socketPath.startsWith('/') || !socketPath.endsWith('.sock')) {
    throw new PluginConfigError(`--socket: ${JSON.stringify(socketPath)} must be an absolute path ending in .sock`);
  }
  const dockerHost = pick(flag('docker-host'), env.DOCKER_HOST) ?? 'unix:///var/run/docker.sock';
  const hostname = pick(flag('hostname'), env.CALICO_HOSTNAME) ?? osHostname();
  if (!HOST_PATTERN.test(hostname)) throw new PluginConfigError(`--hostname: ${JSON.stringify(hostname)} is not a valid host name`);
  const dataplaneNetns = pick(flag('dataplane-netns'), env.CALICO_AGENT_DATAPLANE_NETNS);
  if (dataplaneNetns !== undefined && (!/^[a-zA-Z0-9_.-]{1,64}$/.test(dataplaneNetns) || !existsSync(`/run/netns/${dataplaneNetns}`))) {
    throw new PluginConfigError(`--dataplane-netns: network namespace ${JSON.stringify(dataplaneNetns)} does not exist (see 'ip netns list')`);
  }
  const logLevel = (pick(flag('log-level'), env.CALICO_DOCKER_PLUGIN_LOG_LEVEL) ?? 'info') as PluginLogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new PluginConfigError(`--log-level: expected one of ${LOG_LEVELS.join('|')}`);
  let etcd: EtcdSettings;
  try {
    etcd = etcdSettingsFromEnv(env);
  } catch (error) {
    throw new PluginConfigError((error as Error).message);
  }
  return {
    socketPath,
    pluginName: basename(socketPath, '.sock'),
    docker: parseDockerHost(dockerHost, '--docker-host'),
    hostname,
    dataplaneNetns,
    defaultPools: {
      4: parsePool(pick(flag('default-pool-v4'), env.CALICO_DOCKER_DEFAULT_POOL_V4), 4, '--default-pool-v4'),
      6: parsePool(pick(flag('default-pool-v6'), env.CALICO_DOCKER_DEFAULT_POOL_V6), 6, '--default-pool-v6'),
    },
    logLevel,
    etcd,
  };
}
