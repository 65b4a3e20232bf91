#!/usr/bin/env node
/**
 * calico-docker-plugin: a Docker (libnetwork) remote network driver and IPAM driver for Calico,
 * served on one unix socket (`/Plugin.Activate` → NetworkDriver + IpamDriver). Long-running;
 * stops cleanly on SIGTERM/SIGINT (socket removed; veths and endpoints stay, Docker owns their
 * lifecycle and calls Leave/DeleteEndpoint later, also after a plugin restart).
 *
 * Exit codes: 0 clean stop; 1 runtime failure (socket unusable); 2 bad configuration. Every
 * failure prints ONE line `calico-docker-plugin: <reason>` on stderr; JSON logs (pino) go to
 * stderr too.
 */
import { pino } from 'pino';
import { createEtcdClient, etcd3Kv } from '../../src/datastore/client.js';
import { CalicoStore } from '../../src/datastore/index.js';
import { routeProcessWarnings } from '../../src/process-warnings.js';
import { AddressAllocator } from './address-allocator.js';
import { loadPluginConfig, PluginConfigError, PluginHelpRequest, type PluginConfig } from './config.js';
import { dockerNetworkNames } from './docker-networks.js';
import { startPluginServer, type Handler } from './http-server.js';
import { ipamRoutes } from './ipam-driver.js';
import { networkRoutes } from './network-driver.js';

function fail(code: number, reason: string): never {
  process.stderr.write(`calico-docker-plugin: ${reason}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let config: PluginConfig;
  try {
    config = loadPluginConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof PluginHelpRequest) {
      process.stdout.write(`${error.text}\n`);
      return;
    }
    if (error instanceof PluginConfigError) fail(error.exitCode, error.message);
    throw error;
  }
  const log = pino(
    { level: config.logLevel, base: { name: 'calico-docker-plugin' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 2, sync: true }),
  );
  routeProcessWarnings((warning) => log.warn({ code: warning.code, warning: warning.message }, 'node process warning'));

  let etcd;
  try {
    etcd = createEtcdClient(config.etcd);
  } catch (error) {
    fail(2, (error as Error).message);
  }
  const store = new CalicoStore(etcd3Kv(etcd, config.etcd));
  const allocator = new AddressAllocator(etcd, config.etcd, config.hostname, config.defaultPools);
  const routes = new Map<string, Handler>([
    ['/Plugin.Activate', async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] })],
    ...ipamRoutes(allocator),
    ...networkRoutes({
      store,
      networks: dockerNetworkNames(config.docker),
      hostname: config.hostname,
      dataplane: { name: config.dataplaneNetns },
      pluginName: config.pluginName,
    }),
  ]);
  const server = await startPluginServer(config.socketPath, routes, log).catch((error: unknown) =>
    fail(1, `cannot serve on ${config.socketPath}: ${(error as Error).message}`),
  );
  log.info(
    { plugin: config.pluginName, hostname: config.hostname, dataplaneNetns: config.dataplaneNetns, defaultPools: config.defaultPools },
    'calico-docker-plugin ready',
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'signal received; stopping');
    void server.close().then(() => {
      store.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => fail(1, error instanceof Error ? error.message.split('\n')[0]! : String(error)));
