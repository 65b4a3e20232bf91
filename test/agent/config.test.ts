import { describe, expect, test } from 'vitest';
import { ConfigError, InfoRequest, loadConfig, type LoadConfigInput } from '../../agent/config.js';

const noFile = (path: string): string => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};
const load = (input: Partial<LoadConfigInput> & { files?: Record<string, string> } = {}) =>
  loadConfig({
    argv: input.argv ?? [],
    env: input.env ?? {},
    readFile: input.files ? (path) => input.files![path] ?? noFile(path) : noFile,
  });

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  test('every option has a sensible default', () => {
    const config = load({ env: { CALICO_HOSTNAME: 'h1' } });
    expect(config).toMatchObject({
      hostname: 'h1',
      interfacePrefix: 'cali',
      iptablesBackend: 'auto',
      refreshIntervalMs: 60_000,
      refreshMinIntervalMs: 4_000,
      hookCheckIntervalMs: 2_000,
      healthListen: { host: '127.0.0.1', port: 9099 },
      logLevel: 'info',
      endpointToHostAction: undefined,
      failsafeInboundHostPorts: undefined,
      dataplaneNetns: undefined,
      etcdGracePeriodMs: 30_000,
      once: false,
      dryRun: false,
    });
    expect(config.etcd.endpoints).toEqual(['http://127.0.0.1:2379']);
  });
});

describe('precedence: flag > env > file > default', () => {
  const files = { '/etc/agent.cfg': '[agent]\nrefresh-interval = 30s\ninterface_prefix = tap\nlog-level=debug\n' };

  test('file beats default', () => {
    const config = load({ argv: ['--config', '/etc/agent.cfg'], files });
    expect(config.refreshIntervalMs).toBe(30_000);
    expect(config.interfacePrefix).toBe('tap');
    expect(config.logLevel).toBe('debug');
  });

  test('env beats file, flag beats env', () => {
    const config = load({
      argv: ['--config', '/etc/agent.cfg', '--refresh-interval', '5s'],
      env: { CALICO_AGENT_REFRESH_INTERVAL: '10s', CALICO_AGENT_INTERFACE_PREFIX: 'veth' },
      files,
    });
    expect(config.refreshIntervalMs).toBe(5_000);
    expect(config.interfacePrefix).toBe('veth');
    expect(config.logLevel).toBe('debug');
  });

  test('config file named by CALICO_AGENT_CONFIG, JSON form, camelCase keys', () => {
    const config = load({
      env: { CALICO_AGENT_CONFIG: '/a.json' },
      files: { '/a.json': '{"healthListen": "none", "failsafeInboundHostPorts": "tcp:22,udp:68", "ipv6": false}' },
    });
    expect(config.healthListen).toBeNull();
    expect(config.failsafeInboundHostPorts).toEqual([
      { protocol: 'tcp', port: 22 },
      { protocol: 'udp', port: 68 },
    ]);
    expect(config.ipv6).toBe(false);
  });

  test('etcd: flag over ETCD_ENDPOINTS over file, through the datastore settings', () => {
    const files2 = { '/c': 'etcd-endpoints = http://10.0.0.1:2379' };
    expect(load({ argv: ['--config', '/c'], files: files2 }).etcd.endpoints).toEqual(['http://10.0.0.1:2379']);
    expect(load({ argv: ['--config', '/c'], env: { ETCD_ENDPOINTS: 'http://10.0.0.2' }, files: files2 }).etcd.endpoints).toEqual([
      'http://10.0.0.2:2379',
    ]);
    expect(
      load({ argv: ['--config', '/c', '--etcd-endpoints', 'http://10.0.0.3:4001'], env: { ETCD_AUTHORITY: 'x:1' }, files: files2 }).etcd
        .endpoints,
    ).toEqual(['http://10.0.0.3:4001']);
  });

  test('durations, listen addresses and choices are parsed', () => {
    const config = load({
      argv: ['--min-apply-interval', '20ms', '--health-listen', '[::1]:0', '--endpoint-to-host-action', 'accept', '--iptables-backend', 'NFT'],
    });
    expect(config.minApplyIntervalMs).toBe(20);
    expect(config.healthListen).toEqual({ host: '::1', port: 0 });
    expect(config.endpointToHostAction).toBe('ACCEPT');
    expect(config.iptablesBackend).toBe('nft');
  });

  test('--once --dry-run', () => {
    expect(load({ argv: ['--once', '--dry-run'] })).toMatchObject({ once: true, dryRun: true });
  });

  test('--help is an information request, not an error', () => {
    expect(() => load({ argv: ['--help'] })).toThrow(InfoRequest);
  });
});

describe('each bad value gives one clear line', () => {
  test.each([
    [{ argv: ['--refresh-interval', 'soon'] }, /^invalid --refresh-interval "soon": expected a duration/],
    [{ env: { CALICO_AGENT_REFRESH_INTERVAL: '-1' } }, /^invalid CALICO_AGENT_REFRESH_INTERVAL "-1": expected a duration/],
    [{ argv: ['--iptables-backend', 'bpf'] }, /^invalid --iptables-backend "bpf": expected one of auto, legacy, nft$/],
    [{ argv: ['--health-listen', 'localhost'] }, /^invalid --health-listen "localhost": expected HOST:PORT/],
    [{ argv: ['--health-listen', '127.0.0.1:70000'] }, /^invalid --health-listen/],
    [{ argv: ['--log-level', 'loud'] }, /^invalid --log-level "loud": expected one of trace/],
    [{ argv: ['--endpoint-to-host-action', 'REJECT'] }, /^invalid --endpoint-to-host-action "REJECT": expected one of DROP, RETURN, ACCEPT$/],
    [{ argv: ['--failsafe-inbound-host-ports', 'tcp:22,sctp:9'] }, /bad item "sctp:9"/],
    [{ argv: ['--failsafe-outbound-host-ports', 'udp:0'] }, /bad item "udp:0"/],
    [{ argv: ['--dataplane-netns', 'a/b'] }, /^invalid --dataplane-netns "a\/b": expected a network namespace name/],
    [{ argv: ['--interface-prefix', 'much-too-long-prefix'] }, /^invalid --interface-prefix/],
    [{ argv: ['--hostname', 'a/b'] }, /^invalid --hostname "a\/b"/],
    [{ env: { CALICO_AGENT_ENDPOINT_STATUS: 'maybe' } }, /^invalid CALICO_AGENT_ENDPOINT_STATUS "maybe": expected true or false$/],
    [{ argv: ['--bogus'] }, /^Unknown option '--bogus' \(see --help\)$/],
    [{ argv: ['--dry-run'] }, /^--dry-run requires --once$/],
    [{ argv: ['--config', '/missing'] }, /^cannot read config file \/missing: ENOENT$/],
    [{ argv: ['--config', '/f'], files: { '/f': 'colour = blue' } }, /^config file \/f: unknown option "colour" \(line 1\)$/],
    [{ argv: ['--config', '/f'], files: { '/f': '{"refresh-interval": ' } }, /^config file \/f: invalid JSON/],
    [{ argv: ['--config', '/f'], files: { '/f': 'refresh-interval = never' } }, /^invalid refresh-interval "never" in \/f: expected a duration/],
    [{ env: { ETCD_ENDPOINTS: 'ftp://x' } }, /^invalid etcd settings: ETCD_ENDPOINTS: "ftp:\/\/x" must use http/],
    [{ argv: ['--reporting-interval', '60s', '--reporting-ttl', '30s'] }, /^invalid reporting-ttl/],
  ] as [Partial<LoadConfigInput> & { files?: Record<string, string> }, RegExp][])('%j', (input, expected) => {
    const error = configError(() => load(input));
    expect(error.message).toMatch(expected);
    expect(error.message).not.toContain('\n');
    expect(error.exitCode).toBe(2);
  });
});
