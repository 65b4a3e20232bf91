/**
 * The libnetwork NetworkDriver half of the plugin (docker-deploy.md §1.3): each Docker network is
 * the Calico profile of the same name, each container attachment a Calico endpoint.
 *
 * Call by call (endpoints are per container START: a restart brings a new EndpointID):
 * - CreateNetwork: only validates that the network uses Calico IPAM (its gateway is the hint
 *   `0.0.0.0/0` / `::/0` the IPAM driver returns). Nothing is remembered.
 * - CreateEndpoint: looks up the network's name in dockerd, creates the profile `<name>` if it
 *   does not exist (default rules: inbound from tag <name>, outbound all; tags [<name>]; never
 *   overwritten), and writes the endpoint INACTIVE (its traffic dropped) with addresses, MAC,
 *   interface name and `profile_ids: [<name>]`, so Join needs nothing kept in memory.
 * - Join: creates the veth pair in the dataplane namespace (host side `cali`+EndpointID[:11],
 *   peer `tmp`+EndpointID[:11], which Docker moves into the container as `cali0`), then marks
 *   the endpoint active; replies with gateway 169.254.1.1 (+ its /32 connected route) and/or
 *   fe80::ecee:eeff:feee:eeee — always a gateway, or Docker adds docker_gwbridge.
 * - Leave: deletes the pair, then the endpoint. DeleteEndpoint: deletes whatever is left.
 * Per-interface sysctls, host routes and proxy ARP/NDP are the calico-agent's job, as for any
 * endpoint.
 *
 * Endpoint key: `/calico/v1/host/<host>/workload/docker/<EndpointID>/endpoint/<EndpointID>`
 * (libnetwork never tells the plugin the container; the EndpointID is what every call carries).
 *
 * Invariants: every handler is idempotent and derives everything from the request, etcd and
 * dockerd; a Join that fails leaves no veth behind; errors travel in `Err`.
 *
 * Known limit: a container on TWO Calico networks is refused by dockerd itself (the second
 * Join's 169.254.1.1/32 route already exists in the container: "file exists").
 */
import {
  EndpointNotFoundError,
  ProfileExistsError,
  type CalicoStore,
} from '../../src/datastore/index.js';
import {
  canonicalIp,
  canonicalMac,
  cidrVersion,
  ID_PATTERN,
  sha256Hex,
  type EndpointRef,
  type IpVersion,
} from '../../src/model/index.js';
import {
  createHostVethPair,
  deleteHostInterface,
  IPV4_GATEWAY,
  IPV6_GATEWAY,
  linkExists,
  type NamespaceRef,
} from '../../src/cli/workload-veth.js';
import type { NetworkNames } from './docker-networks.js';
import { PluginRequestError, type Handler } from './http-server.js';
import { arrayField, idField, objectField, stringField, type Body } from './request-fields.js';

export const DOCKER_ORCHESTRATOR = 'docker';
/** libnetwork names the interface in the container `<DstPrefix><index>`: cali0. */
export const CONTAINER_INTERFACE_PREFIX = 'cali';
const ID_CHARS_IN_NAMES = 11;
const ANY_NETWORK: Readonly<Record<IpVersion, string>> = { 4: '0.0.0.0/0', 6: '::/0' };

export interface NetworkDriverDeps {
  store: CalicoStore;
  networks: NetworkNames;
  hostname: string;
  /** Where veth pairs are made: the network namespace dockerd runs in. */
  dataplane: NamespaceRef;
  /** The plugin's name, for messages (`--ipam-driver <name>`). */
  pluginName: string;
}

export const hostInterfaceName = (endpointId: string): string => `cali${endpointId.slice(0, ID_CHARS_IN_NAMES)}`;
export const peerInterfaceName = (endpointId: string): string => `tmp${endpointId.slice(0, ID_CHARS_IN_NAMES)}`;

/** A stable, locally administered unicast MAC for a container whose MAC Docker left to us. */
export function containerMac(endpointId: string): string {
  const hex = sha256Hex(endpointId, 10);
  return ['02', ...(hex.match(/../g) ?? [])].join(':');
}

function endpointRef(hostname: string, body: Body): EndpointRef {
  const endpointId = idField(body, 'EndpointID');
  idField(body, 'NetworkID');
  if (!ID_PATTERN.test(endpointId)) throw new PluginRequestError(`EndpointID ${JSON.stringify(endpointId)} is not a valid id`);
  return { host: hostname, orchestrator: DOCKER_ORCHESTRATOR, workload: endpointId, endpointId };
}

/** `Interface.Address`/`AddressIPv6` (`ip/len` or empty) as the endpoint's host nets. */
function hostNets(text: string, version: IpVersion): string[] {
  if (text === '') return [];
  const ip = canonicalIp(text.split('/')[0]!);
  if (ip === undefined || cidrVersion(ip) !== version) throw new PluginRequestError(`${JSON.stringify(text)} is not an IPv${version} address`);
  return [`${ip}/${version === 4 ? 32 : 128}`];
}

function createNetwork(deps: NetworkDriverDeps, body: Body): unknown {
  idField(body, 'NetworkID');
  const ipamData: [IpVersion, Body[]][] = [
    [4, arrayField(body, 'IPv4Data')],
    [6, arrayField(body, 'IPv6Data')],
  ];
  for (const [version, entries] of ipamData) {
    for (const entry of entries) {
      if (stringField(entry, 'Gateway') !== ANY_NETWORK[version]) {
        throw new PluginRequestError(
          `Calico networks need Calico IPAM: create the network with --ipam-driver ${deps.pluginName} (and no --gateway)`,
        );
      }
    }
  }
  return {};
}

async function createEndpoint(deps: NetworkDriverDeps, body: Body): Promise<unknown> {
  const ref = endpointRef(deps.hostname, body);
  const networkId = idField(body, 'NetworkID');
  const iface = objectField(body, 'Interface');
  const ipv4Nets = hostNets(stringField(iface, 'Address'), 4);
  const ipv6Nets = hostNets(stringField(iface, 'AddressIPv6'), 6);
  if (ipv4Nets.length + ipv6Nets.length === 0) throw new PluginRequestError('the endpoint has no address (is the IPAM driver Calico?)');
  const dockerMac = stringField(iface, 'MacAddress');
  const mac = dockerMac === '' ? containerMac(ref.endpointId) : canonicalMac(dockerMac);
  if (mac === undefined) throw new PluginRequestError(`MacAddress ${JSON.stringify(dockerMac)} is not a MAC address`);

  const profile = await deps.networks.networkName(networkId);
  if (!ID_PATTERN.test(profile)) throw new PluginRequestError(`network name ${JSON.stringify(profile)} cannot be a Calico profile name`);
  try {
    await deps.store.createProfile(profile);
  } catch (error) {
    // Already there (made by calicoctl, or by another host's plugin a moment ago): keep it as it is.
    if (!(error instanceof ProfileExistsError)) throw error;
  }
  await deps.store.putEndpoint(ref, {
    state: 'inactive',
    name: hostInterfaceName(ref.endpointId),
    mac,
    profile_ids: [profile],
    ipv4_nets: ipv4Nets,
    ipv6_nets: ipv6Nets,
    ipv4_gateway: ipv4Nets.length > 0 ? IPV4_GATEWAY : null,
    ipv6_gateway: ipv6Nets.length > 0 ? IPV6_GATEWAY : null,
  });
  return { Interface: dockerMac === '' ? { MacAddress: mac } : {} };
}

async function join(deps: NetworkDriverDeps, body: Body): Promise<unknown> {
  const ref = endpointRef(deps.hostname, body);
  const stored = (await deps.store.listEndpoints({ host: ref.host })).find(
    (e) => e.ref.orchestrator === ref.orchestrator && e.ref.workload === ref.workload && e.ref.endpointId === ref.endpointId,
  );
  if (!stored?.endpoint) throw new PluginRequestError(`endpoint ${ref.endpointId} is missing or invalid in etcd (no CreateEndpoint seen?)`);
  const hasV4 = stored.endpoint.ipv4_nets.length > 0;
  const hasV6 = stored.endpoint.ipv6_nets.length > 0;
  const hostInterface = hostInterfaceName(ref.endpointId);
  const peer = peerInterfaceName(ref.endpointId);
  // A repeated Join replaces the pair (the peer of the first one may already be in a container).
  if (await linkExists(deps.dataplane, hostInterface)) await deleteHostInterface(deps.dataplane, hostInterface);
  if (await linkExists(deps.dataplane, peer)) await deleteHostInterface(deps.dataplane, peer);
  await createHostVethPair(deps.dataplane, hostInterface, peer, hasV6);
  try {
    await deps.store.updateEndpoint(ref, (raw) => ({ ...raw, state: 'active' }));
  } catch (error) {
    await deleteHostInterface(deps.dataplane, hostInterface).catch(() => undefined);
    if (error instanceof EndpointNotFoundError) throw new PluginRequestError(`endpoint ${ref.endpointId} was deleted during Join`);
    throw error;
  }
  return {
    InterfaceName: { SrcName: peer, DstPrefix: CONTAINER_INTERFACE_PREFIX },
    ...(hasV4 ? { Gateway: IPV4_GATEWAY } : {}),
    ...(hasV6 ? { GatewayIPv6: IPV6_GATEWAY } : {}),
    StaticRoutes: hasV4 ? [{ Destination: `${IPV4_GATEWAY}/32`, RouteType: 1, NextHop: '' }] : [],
    DisableGatewayService: false,
  };
}

async function leave(deps: NetworkDriverDeps, body: Body): Promise<unknown> {
  const ref = endpointRef(deps.hostname, body);
  await deleteHostInterface(deps.dataplane, hostInterfaceName(ref.endpointId));
  await deps.store.deleteEndpoint(ref);
  return {};
}

async function deleteEndpoint(deps: NetworkDriverDeps, body: Body): Promise<unknown> {
  const ref = endpointRef(deps.hostname, body);
  await deleteHostInterface(deps.dataplane, hostInterfaceName(ref.endpointId));
  await deps.store.deleteEndpoint(ref);
  return {};
}

export function networkRoutes(deps: NetworkDriverDeps): Map<string, Handler> {
  const empty = async (): Promise<unknown> => ({});
  return new Map<string, Handler>([
    ['/NetworkDriver.GetCapabilities', async () => ({ Scope: 'local', ConnectivityScope: 'local' })],
    ['/NetworkDriver.CreateNetwork', async (body) => createNetwork(deps, body)],
    [
      '/NetworkDriver.DeleteNetwork',
      async (body) => {
        idField(body, 'NetworkID');
        return {}; // the profile stays: it holds policy users may have edited
      },
    ],
    ['/NetworkDriver.CreateEndpoint', (body) => createEndpoint(deps, body)],
    ['/NetworkDriver.DeleteEndpoint', (body) => deleteEndpoint(deps, body)],
    ['/NetworkDriver.EndpointOperInfo', async () => ({ Value: {} })],
    ['/NetworkDriver.Join', (body) => join(deps, body)],
    ['/NetworkDriver.Leave', (body) => leave(deps, body)],
    ['/NetworkDriver.ProgramExternalConnectivity', empty],
    ['/NetworkDriver.RevokeExternalConnectivity', empty],
    ['/NetworkDriver.DiscoverNew', empty],
    ['/NetworkDriver.DiscoverDelete', empty],
  ]);
}
