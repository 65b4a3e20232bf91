/**
 * etcd connection settings from the environment, shared by calicoctl, the agent and the Docker
 * plugin.
 *
 * - `ETCD_ENDPOINTS`: comma-separated URLs (`http://host:port`, `https://…`); default
 *   `http://127.0.0.1:2379`.
 * - Legacy, used only when `ETCD_ENDPOINTS` is unset: `ETCD_AUTHORITY` (`host:port`) and
 *   `ETCD_SCHEME` (`http`|`https`).
 * - TLS: `ETCD_CA_CERT_FILE`, `ETCD_CERT_FILE`, `ETCD_KEY_FILE` (cert and key go together).
 * - Authentication (etcd `auth enable`): `ETCD_USERNAME` and `ETCD_PASSWORD` (together). The
 *   least-privilege roles for each command are in `deploy/scripts/etcd-roles.sh`.
 *
 * Invariant: a returned settings object has at least one endpoint, each a normalised
 * `scheme://host:port` URL; anything else throws `DatastoreConfigError` with a one-line message.
 */
import { DatastoreConfigError } from './errors.js';

export interface EtcdTlsFiles {
  caCertFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface EtcdSettings {
  endpoints: string[];
  tls: EtcdTlsFiles;
  /** etcd user and password, when etcd authentication is on. */
  auth?: { username: string; password: string };
}

export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function normaliseEndpoint(text: string, source: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DatastoreConfigError(`${source}: ${JSON.stringify(text)} is not a URL (expected http://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DatastoreConfigError(`${source}: ${JSON.stringify(text)} must use http:// or https://`);
  }
  if (!url.hostname || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new DatastoreConfigError(`${source}: ${JSON.stringify(text)} must be scheme://host[:port] only`);
  }
  const port = url.port || '2379';
  return `${url.protocol}//${url.hostname}:${port}`;
}

export function etcdSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): EtcdSettings {
  const tls: EtcdTlsFiles = {};
  const ca = nonEmpty(env.ETCD_CA_CERT_FILE);
  const cert = nonEmpty(env.ETCD_CERT_FILE);
  const key = nonEmpty(env.ETCD_KEY_FILE);
  if (ca) tls.caCertFile = ca;
  if (cert) tls.certFile = cert;
  if (key) tls.keyFile = key;
  if ((cert === undefined) !== (key === undefined)) {
    throw new DatastoreConfigError('ETCD_CERT_FILE and ETCD_KEY_FILE must be set together');
  }

  const endpointsText = nonEmpty(env.ETCD_ENDPOINTS);
  let endpoints: string[];
  if (endpointsText !== undefined) {
    const items = endpointsText.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) throw new DatastoreConfigError('ETCD_ENDPOINTS: empty entry in the list');
    endpoints = items.map((s) => normaliseEndpoint(s, 'ETCD_ENDPOINTS'));
  } else {
    const authority = nonEmpty(env.ETCD_AUTHORITY);
    const scheme = nonEmpty(env.ETCD_SCHEME)?.toLowerCase();
    if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
      throw new DatastoreConfigError(`ETCD_SCHEME: ${JSON.stringify(scheme)} must be http or https`);
    }
    if (authority === undefined && scheme === undefined) {
      endpoints = [DEFAULT_ETCD_ENDPOINT];
    } else {
      const text = `${scheme ?? 'http'}://${authority ?? '127.0.0.1:2379'}`;
      endpoints = [normaliseEndpoint(text, 'ETCD_AUTHORITY')];
    }
  }
  const usesHttps = endpoints.some((e) => e.startsWith('https:'));
  if (!usesHttps && (tls.caCertFile || tls.certFile)) {
    // Certificates only make sense over TLS; refusing beats silently talking plaintext.
    throw new DatastoreConfigError('etcd TLS files are set but no endpoint uses https://');
  }
  if (usesHttps && endpoints.some((e) => e.startsWith('http:'))) {
    throw new DatastoreConfigError('etcd endpoints mix http:// and https://');
  }
  const username = nonEmpty(env.ETCD_USERNAME);
  const password = env.ETCD_PASSWORD;
  if ((username === undefined) !== (password === undefined || password === '')) {
    throw new DatastoreConfigError('ETCD_USERNAME and ETCD_PASSWORD must be set together');
  }
  return username === undefined ? { endpoints, tls } : { endpoints, tls, auth: { username, password: password! } };
}
