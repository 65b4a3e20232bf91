/**
 * Two local endpoints claiming one address (compiler/local-claims.ts): the one created first in
 * etcd keeps it, later claimants are refused (not dispatched, a diagnostic), greedily in order;
 * the calculation graph follows incrementally, as compile() states it.
 */
import { describe, expect, it } from 'vitest';
import { compile, defaultCompilerConfig, renderFamily, type EndpointInput, type Snapshot } from '../../compiler/index.js';
import { refusedByAddress } from '../../compiler/local-claims.js';
import { endpointInput, graphOf, profile } from './fixtures.js';

const withRevision = ([key, input]: [string, EndpointInput], createRevision: number): [string, EndpointInput] => [key, { ...input, createRevision }];
const ep = (id: string, nets: string[], createRevision: number, state = 'active') =>
  withRevision(endpointInput('host1', id, { state, name: `cali${id}`, profile_ids: ['P'], ipv4_nets: nets }), createRevision);

function snapshot(endpoints: [string, EndpointInput][]): Snapshot {
  return { hostname: 'host1', config: defaultCompilerConfig(), profiles: new Map([['P', profile({ inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] })]]), endpoints: new Map(endpoints) };
}

describe('address claims of local endpoints', () => {
  it('the endpoint created first keeps the address, whatever the key order; refusals cascade greedily', () => {
    const a = ep('z-first', ['192.0.2.1/32'], 5);
    const b = ep('a-second', ['192.0.2.1/32', '192.0.2.2/32'], 9); // loses .1 to a: refused, so it holds nothing
    const c = ep('m-third', ['192.0.2.2/32'], 12); // .2 is free (b was refused)
    const off = ep('b-inactive', ['192.0.2.2/32'], 1, 'inactive'); // inactive endpoints claim nothing
    const refused = refusedByAddress([a, b, c, off]);
    expect([...refused]).toEqual([[b[0], { address: '192.0.2.1', owner: a[0] }]]);
    // Without create revisions (tests, old data) the key decides.
    const plain = refusedByAddress([[a[0], { ...a[1], createRevision: undefined }], [b[0], { ...b[1], createRevision: undefined }]]);
    expect([...plain.keys()]).toEqual([a[0]]);
  });

  it('compile(): the refused endpoint is not dispatched and is reported; the graph agrees and follows when the owner goes', () => {
    const a = ep('first', ['192.0.2.1/32'], 5);
    const b = ep('second', ['192.0.2.1/32'], 9);
    const spec = compile(snapshot([a, b]));
    expect([...spec.localEndpoints.keys()]).toEqual(['califirst']);
    expect(JSON.stringify(renderFamily(spec.v4))).not.toContain('calisecond');
    expect(spec.diagnostics).toContainEqual({ kind: 'invalid-endpoint', subject: b[0], message: `address 192.0.2.1 is already used by ${a[0]}; endpoint refused` });

    const graph = graphOf(snapshot([a, b]));
    const rendered = (s: ReturnType<typeof compile>) => ({ v4: renderFamily(s.v4), diagnostics: s.diagnostics });
    expect(rendered(graph.toSpec())).toEqual(rendered(spec));
    expect([...graph.refusedEndpoints().keys()]).toEqual([b[0]]);
    graph.setEndpoint(a[0], undefined);
    expect(rendered(graph.toSpec())).toEqual(rendered(compile(snapshot([b]))));
    expect(JSON.stringify(renderFamily(graph.toSpec().v4))).toContain('calisecond');
    expect(graph.refusedEndpoints().size).toBe(0);
  });
});
