/**
 * The one thing the plugin asks dockerd: the NAME of a network, given the NetworkID libnetwork
 * sends (libnetwork never sends names; Calico's Go plugin did the same NetworkInspect). The name
 * is the profile of every endpoint on that network.
 *
 * Invariant: failures come back as PluginRequestErrors with one line saying what to check.
 */
import Docker from 'dockerode';
import type { DockerEndpoint } from './config.js';
import { PluginRequestError } from './http-server.js';

export interface NetworkNames {
  networkName(networkId: string): Promise<string>;
}

const DOCKER_TIMEOUT_MS = 10_000;

function describe(endpoint: DockerEndpoint): string {
  return 'socketPath' in endpoint ? `unix://${endpoint.socketPath}` : `tcp://${endpoint.host}:${endpoint.port}`;
}

export function dockerNetworkNames(endpoint: DockerEndpoint): NetworkNames {
  const docker = new Docker({ ...endpoint, timeout: DOCKER_TIMEOUT_MS });
  return {
    async networkName(networkId) {
      try {
        const info = (await docker.getNetwork(networkId).inspect()) as { Name?: unknown };
        if (typeof info.Name !== 'string' || info.Name === '') throw new PluginRequestError(`dockerd returned no name for network ${networkId}`);
        return info.Name;
      } catch (error) {
        if (error instanceof PluginRequestError) throw error;
        const status = (error as { statusCode?: number }).statusCode;
        if (status === 404) throw new PluginRequestError(`network ${networkId} is unknown to dockerd at ${describe(endpoint)}`);
        const reason = (error as Error).message.split('\n')[0];
        throw new PluginRequestError(`cannot look up network ${networkId} in dockerd at ${describe(endpoint)} (${reason}); check --docker-host`);
      }
    },
  };
}
