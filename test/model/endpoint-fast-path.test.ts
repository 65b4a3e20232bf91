/**
 * The endpoint fast path against the schema it shortcuts: for random near-valid values, every
 * value the fast path decides is exactly the schema's output, and it decides the common shapes
 * (so the agent's start-up really takes it). Also the canonical-IPv4 shortcut of canonicalCidr
 * against the parser it skips.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { endpointSchema } from '../../src/model/endpoint.js';
import { fastEndpoint } from '../../src/model/endpoint-fast-path.js';
import { decodeEndpoint } from '../../src/model/decode.js';
import { canonicalCidr, canonicalMac, formatCidr, parseCidr } from '../../src/model/ip.js';

const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom('256', '010', '00', '1a', ''));
const ipv4 = fc.tuple(octet, octet, octet, octet).map((parts) => parts.join('.'));
const prefix = fc.oneof(fc.integer({ min: 0, max: 33 }).map(String), fc.constantFrom('08', '032', '', 'x'));
const ipv4Cidr = fc.oneof(ipv4, fc.tuple(ipv4, prefix).map(([ip, p]) => `${ip}/${p}`), fc.constantFrom('10/8', '10.1/16', '1.2.3/24'));
const ipv6 = fc.oneof(
  fc.ipV6(),
  fc.constantFrom('2001:DB8::1', '2001:db8:0:0:0:0:0:1', '::ffff:1.2.3.4', '2001:db8::g', '::1::'),
);
const ipv6Cidr = fc.oneof(ipv6, fc.tuple(ipv6, fc.oneof(fc.integer({ min: 0, max: 129 }).map(String), fc.constant('0128'))).map(([ip, p]) => `${ip}/${p}`));
const anyNet = fc.oneof(ipv4Cidr, ipv6Cidr, fc.constant(7), fc.constant(null));
const id = fc.oneof(fc.stringMatching(/^[a-zA-Z0-9_.-]{1,8}$/), fc.constantFrom('bad id', '', 'a/b', 3));
const nets = (net: fc.Arbitrary<unknown>) => fc.oneof({ weight: 4, arbitrary: fc.array(net, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(null, 'x', {}) });

/** Endpoint-like values: any member present or not, often a wrong one or an extra one. */
const wildEndpoint = fc
  .record(
    {
      state: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('active', 'inactive') }, { weight: 1, arbitrary: fc.constantFrom('Active', 1, null) }),
      name: fc.oneof({ weight: 6, arbitrary: fc.stringMatching(/^cali[a-z0-9]{1,11}$/) }, { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(16), 'eth 0', 5) }),
      mac: fc.oneof(fc.constantFrom(null, 'AA:bb:cc:dd:ee:ff', 'aa-bb-cc-dd-ee-ff', 'zz:bb:cc:dd:ee:ff', 1), fc.mixedCase(fc.constant('0a:1b:2c:3d:4e:5f'))),
      profile_ids: fc.oneof({ weight: 6, arbitrary: fc.array(id, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(null, 'WEB', undefined) }),
      profile_id: fc.oneof(id, fc.constant(null)),
      ipv4_nets: nets(fc.oneof({ weight: 3, arbitrary: ipv4Cidr }, { weight: 1, arbitrary: anyNet })),
      ipv6_nets: nets(fc.oneof({ weight: 3, arbitrary: ipv6Cidr }, { weight: 1, arbitrary: anyNet })),
      ipv4_gateway: fc.oneof(ipv4, ipv6, fc.constant(null), fc.constant(false)),
      ipv6_gateway: fc.oneof(ipv6, ipv4, fc.constant(null), fc.constant(false)),
      labels: fc.constant({ app: 'web' }),
      __proto__: fc.constant({}),
    },
    { requiredKeys: [] },
  );

/** Endpoints as stored: required members valid, optional ones valid, null or absent. */
const storedEndpoint = fc.record(
  {
    state: fc.constantFrom('active', 'inactive'),
    name: fc.stringMatching(/^cali[a-z0-9]{1,11}$/),
    profile_ids: fc.array(fc.stringMatching(/^[a-zA-Z0-9_.-]{1,8}$/), { maxLength: 3 }),
    mac: fc.oneof(fc.constant(null), fc.mixedCase(fc.constant('0a:1b:2c:3d:4e:5f'))),
    ipv4_nets: fc.array(fc.oneof(fc.ipV4(), fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([ip, p]) => `${ip}/${p}`)), { maxLength: 2 }),
    ipv6_nets: fc.array(ipv6Cidr, { maxLength: 2 }),
    ipv4_gateway: fc.oneof(fc.ipV4(), fc.constant(null)),
    ipv6_gateway: fc.oneof(fc.ipV6(), fc.constant(null)),
  },
  { requiredKeys: ['state', 'name', 'profile_ids'] },
);

const endpointLike = fc
  .oneof(storedEndpoint, wildEndpoint)
  .map((value) => JSON.parse(JSON.stringify(value)) as unknown);

describe('endpoint fast path', () => {
  it('decides only what the schema decides, with the schema’s exact output', () => {
    let decided = 0;
    let runs = 0;
    fc.assert(
      fc.property(endpointLike, (value) => {
        runs += 1;
        const fast = fastEndpoint(value);
        if (fast === undefined) return;
        decided += 1;
        const parsed = endpointSchema.safeParse(value);
        expect(parsed.success).toBe(true);
        expect(fast).toStrictEqual(parsed.data);
        expect(Object.keys(fast)).toEqual(Object.keys(parsed.data!));
      }),
      { numRuns: 4000 },
    );
    // The generator makes the fast path's shapes often enough for the property to mean something.
    expect(decided).toBeGreaterThan(runs / 5);
  });

  it('takes the common stored shapes, including a legacy profile_id and null members', () => {
    const common = [
      { state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['10.0.0.1/32'], ipv6_nets: ['2001:db8::1/128'], mac: 'ee:ee:ee:ee:ee:ee' },
      { state: 'inactive', name: 'tap0', profile_id: 'APP', ipv4_nets: ['10.0.0.2'], mac: null, ipv4_gateway: null },
      { state: 'active', name: 'cali2', profile_ids: [], ipv6_nets: ['2001:DB8::2'], ipv6_gateway: '2001:db8::fffe' },
    ];
    for (const value of common) {
      expect(fastEndpoint(value)).toBeDefined();
      expect(fastEndpoint(value)).toStrictEqual(endpointSchema.parse(value));
    }
  });

  it('leaves invalid values and unknown members to the schema, which decodes or names them', () => {
    expect(fastEndpoint({ state: 'active', name: 'cali1', profile_ids: ['a'], labels: {} })).toBeUndefined();
    expect(decodeEndpoint('{"state":"active","name":"cali1","profile_ids":["a"],"labels":{}}')).toMatchObject({ ok: true, value: { labels: {} } });
    expect(fastEndpoint({ state: 'active', name: 'cali1', profile_ids: ['a'], ipv4_nets: ['2001:db8::1'] })).toBeUndefined();
    expect(decodeEndpoint('{"state":"active","name":"cali1","profile_ids":["a"],"ipv4_nets":["2001:db8::1"]}')).toEqual({
      ok: false,
      reason: 'ipv4_nets[0]: "2001:db8::1" is not a valid IPv4 CIDR',
    });
  });
});

/** IPv6 texts of addresses rich in zero groups, written canonically or not (case, padding, `::` anywhere or nowhere, dotted tail). */
const ipv6Written = fc
  .record({
    groups: fc.array(fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }) }, { weight: 1, arbitrary: fc.constant(0xffff) }), { minLength: 8, maxLength: 8 }),
    compress: fc.option(fc.tuple(fc.nat(8), fc.nat(8))),
    pad: fc.boolean(),
    upper: fc.boolean(),
    dotted: fc.boolean(),
    prefix: fc.oneof(fc.integer({ min: 0, max: 129 }).map(String), fc.constantFrom('', '064', '1000')),
  })
  .map(({ groups, compress, pad, upper, dotted, prefix }) => {
    const hex = groups.map((g) => {
      const text = g.toString(16);
      return (pad ? text.padStart(4, '0') : text)[upper ? 'toUpperCase' : 'toLowerCase']();
    });
    if (dotted) hex.splice(6, 2, `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`);
    let text = hex.join(':');
    if (compress) {
      // Replace a run of groups [from, to) with `::` when they are all zero (else leave it).
      const [a, b] = compress;
      const [from, to] = [Math.min(a, b), Math.max(a, b)];
      if (to - from >= 1 && groups.slice(from, to).every((g) => g === 0)) text = `${hex.slice(0, from).join(':')}::${hex.slice(to).join(':')}`;
    }
    return prefix === '' ? text : `${text}/${prefix}`;
  });

describe('canonicalCidr', () => {
  it('returns what parsing and formatting return, for IPv6 texts canonical or not', () => {
    let canonical = 0;
    fc.assert(
      fc.property(fc.oneof(ipv6Written, ipv6Cidr), (text) => {
        const parsed = parseCidr(text);
        const expected = parsed && formatCidr(parsed);
        if (expected === text) canonical += 1;
        expect(canonicalCidr(text)).toBe(expected);
      }),
      { numRuns: 20000 },
    );
    expect(canonical).toBeGreaterThan(400);
    // IPv4-mapped addresses are written with a dotted tail, never in hex.
    expect(canonicalCidr('::ffff:102:304/128')).toBe('::ffff:1.2.3.4/128');
    expect(canonicalCidr('::ffff:0:0/96')).toBe('::ffff:0.0.0.0/96');
    expect(canonicalCidr('::1:ffff:0/128')).toBe('::1:ffff:0/128');
  });


  it('returns what parsing and formatting return, for IPv4 texts canonical or not', () => {
    fc.assert(
      fc.property(ipv4Cidr, (text) => {
        const parsed = parseCidr(text);
        expect(canonicalCidr(text)).toBe(parsed && formatCidr(parsed));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('canonicalMac', () => {
  it('returns the lower-case colon form whichever way a MAC is written', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }), fc.constantFrom(':', '-'), fc.boolean(), (bytes, separator, upper) => {
        const expected = bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
        const written = bytes.map((b) => b.toString(16).padStart(2, '0')).join(separator);
        expect(canonicalMac(upper ? written.toUpperCase() : written)).toBe(expected);
      }),
    );
    expect(canonicalMac('aa:bb:cc:dd:ee')).toBeUndefined();
    expect(canonicalMac('aa:bb:cc:dd:ee:fg')).toBeUndefined();
  });
});
