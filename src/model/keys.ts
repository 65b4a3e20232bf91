/**
 * The Calico v1 etcd key layout: builders for every key we read or write, and `parseKey`, the
 * inverse, for keys under `/calico/v1` and `/calico/felix/v1`.
 *
 * Invariant: a key built here parses back to the same reference; names that are not valid
 * path segments are refused by the callers (see ids.ts), never escaped.
 */
import { ID_PATTERN } from './ids.js';

export const V1_PREFIX = '/calico/v1/';
export const READY_KEY = '/calico/v1/Ready';
export const PROFILES_PREFIX = '/calico/v1/policy/profile/';
export const HOSTS_PREFIX = '/calico/v1/host/';
export const GLOBAL_CONFIG_PREFIX = '/calico/v1/config/';
export const FELIX_STATUS_PREFIX = '/calico/felix/v1/host/';

export interface EndpointRef {
  host: string;
  orchestrator: string;
  workload: string;
  endpointId: string;
}

export const profilePrefix = (profile: string): string => `${PROFILES_PREFIX}${profile}/`;
export const profileRulesKey = (profile: string): string => `${PROFILES_PREFIX}${profile}/rules`;
export const profileTagsKey = (profile: string): string => `${PROFILES_PREFIX}${profile}/tags`;
export const hostPrefix = (host: string): string => `${HOSTS_PREFIX}${host}/`;
export const globalConfigKey = (name: string): string => `${GLOBAL_CONFIG_PREFIX}${name}`;
export const hostConfigKey = (host: string, name: string): string => `${HOSTS_PREFIX}${host}/config/${name}`;
export const poolPrefix = (version: 4 | 6): string => `${V1_PREFIX}ipam/v${version}/pool/`;
export const poolKey = (version: 4 | 6, cidr: string): string => `${poolPrefix(version)}${cidr.replace('/', '-')}`;
/** One key per assigned address (Docker IPAM): created only if absent, so no address is handed out twice. */
export const ipAssignmentPrefix = (version: 4 | 6): string => `${V1_PREFIX}ipam/v${version}/assignment/`;
export const ipAssignmentKey = (version: 4 | 6, ip: string): string => `${ipAssignmentPrefix(version)}${ip}`;

export function endpointKey(ref: EndpointRef): string {
  return `${HOSTS_PREFIX}${ref.host}/workload/${ref.orchestrator}/${ref.workload}/endpoint/${ref.endpointId}`;
}

/** Felix-style status keys written by the agent (not watched by it). */
export const hostStatusKey = (host: string): string => `${FELIX_STATUS_PREFIX}${host}/status`;
export const hostLastReportedKey = (host: string): string => `${FELIX_STATUS_PREFIX}${host}/last_reported_status`;
export const hostStatusPrefix = (host: string): string => `${FELIX_STATUS_PREFIX}${host}/`;
export function endpointStatusKey(ref: EndpointRef): string {
  return `${FELIX_STATUS_PREFIX}${ref.host}/workload/${ref.orchestrator}/${ref.workload}/endpoint/${ref.endpointId}`;
}

export type KeyRef =
  | { kind: 'ready' }
  | { kind: 'profileRules'; profile: string }
  | { kind: 'profileTags'; profile: string }
  | { kind: 'endpoint'; ref: EndpointRef }
  | { kind: 'globalConfig'; name: string }
  | { kind: 'hostConfig'; host: string; name: string }
  | { kind: 'pool'; version: 4 | 6; id: string }
  | { kind: 'endpointStatus'; ref: EndpointRef }
  | { kind: 'other' };

/** Classifies a key; keys we do not model are `other` (Felix ignores them too). */
export function parseKey(key: string): KeyRef {
  if (key === READY_KEY) return { kind: 'ready' };
  if (key.startsWith(FELIX_STATUS_PREFIX)) {
    const s = key.slice(FELIX_STATUS_PREFIX.length).split('/');
    if (s.length === 6 && s[1] === 'workload' && s[4] === 'endpoint') {
      return { kind: 'endpointStatus', ref: { host: s[0]!, orchestrator: s[2]!, workload: s[3]!, endpointId: s[5]! } };
    }
    return { kind: 'other' };
  }
  if (!key.startsWith(V1_PREFIX)) return { kind: 'other' };
  const s = key.slice(V1_PREFIX.length).split('/');
  if (s.some((segment) => segment === '')) return { kind: 'other' };
  if (s.length === 4 && s[0] === 'policy' && s[1] === 'profile') {
    if (s[3] === 'rules') return { kind: 'profileRules', profile: s[2]! };
    if (s[3] === 'tags') return { kind: 'profileTags', profile: s[2]! };
  }
  if (s[0] === 'host' && s.length === 7 && s[2] === 'workload' && s[5] === 'endpoint') {
    return { kind: 'endpoint', ref: { host: s[1]!, orchestrator: s[3]!, workload: s[4]!, endpointId: s[6]! } };
  }
  if (s[0] === 'host' && s.length === 4 && s[2] === 'config') return { kind: 'hostConfig', host: s[1]!, name: s[3]! };
  if (s[0] === 'config' && s.length === 2) return { kind: 'globalConfig', name: s[1]! };
  if (s[0] === 'ipam' && s.length === 4 && (s[1] === 'v4' || s[1] === 'v6') && s[2] === 'pool') {
    return { kind: 'pool', version: s[1] === 'v4' ? 4 : 6, id: s[3]! };
  }
  return { kind: 'other' };
}

/** True when every id segment of an endpoint reference is a valid Calico id. */
export function isValidEndpointRef(ref: EndpointRef): boolean {
  return [ref.orchestrator, ref.workload, ref.endpointId].every((p) => ID_PATTERN.test(p));
}
