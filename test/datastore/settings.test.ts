/** etcd settings from the environment: defaults, legacy variables, TLS, one-line errors. */
import { describe, expect, test } from 'vitest';
import { DatastoreConfigError, etcdSettingsFromEnv } from '../../src/datastore/index.js';

describe('etcdSettingsFromEnv', () => {
  test.each([
    [{}, ['http://127.0.0.1:2379']],
    [{ ETCD_ENDPOINTS: 'http://10.0.0.1:4001, http://10.0.0.2' }, ['http://10.0.0.1:4001', 'http://10.0.0.2:2379']],
    [{ ETCD_AUTHORITY: 'etcd.example:4001' }, ['http://etcd.example:4001']],
    [{ ETCD_AUTHORITY: 'etcd:2379', ETCD_SCHEME: 'HTTPS', ETCD_CA_CERT_FILE: '/ca.pem' }, ['https://etcd:2379']],
    [{ ETCD_ENDPOINTS: 'http://[::1]:2379', ETCD_AUTHORITY: 'ignored:1' }, ['http://[::1]:2379']],
  ])('%j', (env, endpoints) => {
    expect(etcdSettingsFromEnv(env).endpoints).toEqual(endpoints);
  });

  test('TLS files', () => {
    const env = { ETCD_ENDPOINTS: 'https://e:2379', ETCD_CA_CERT_FILE: '/ca', ETCD_CERT_FILE: '/c', ETCD_KEY_FILE: '/k' };
    expect(etcdSettingsFromEnv(env).tls).toEqual({ caCertFile: '/ca', certFile: '/c', keyFile: '/k' });
  });

  test.each([
    [{ ETCD_ENDPOINTS: 'ftp://x' }, 'ETCD_ENDPOINTS: "ftp://x" must use http:// or https://'],
    [{ ETCD_ENDPOINTS: 'not a url' }, 'ETCD_ENDPOINTS: "not a url" is not a URL (expected http://host:port)'],
    [{ ETCD_ENDPOINTS: 'http://a:1,,http://b:2' }, 'ETCD_ENDPOINTS: empty entry in the list'],
    [{ ETCD_ENDPOINTS: 'http://a:1/v2' }, 'ETCD_ENDPOINTS: "http://a:1/v2" must be scheme://host[:port] only'],
    [{ ETCD_SCHEME: 'gopher' }, 'ETCD_SCHEME: "gopher" must be http or https'],
    [{ ETCD_CERT_FILE: '/c' }, 'ETCD_CERT_FILE and ETCD_KEY_FILE must be set together'],
    [{ ETCD_CA_CERT_FILE: '/ca' }, 'etcd TLS files are set but no endpoint uses https://'],
    [{ ETCD_ENDPOINTS: 'http://a:1,https://b:2' }, 'etcd endpoints mix http:// and https://'],
  ])('rejects %j', (env, message) => {
    expect(() => etcdSettingsFromEnv(env)).toThrow(DatastoreConfigError);
    expect(() => etcdSettingsFromEnv(env)).toThrow(message);
  });
});
