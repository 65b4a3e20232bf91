/**
 * What the compiler derives from the Snapshot's endpoints Map, in its one walk over the cluster:
 * the local endpoints by interface (with the diagnostics of those ignored), and for every profile
 * id the endpoints of any host that use it (the members of its tags' ipsets).
 *
 * Invariants:
 * - `update` skips the walk only when handed the same Map object with the same
 *   `generations.endpoints` as the previous walk, and the same hostname and interface prefix
 *   (the Snapshot contract, types.ts); otherwise it walks every endpoint.
 * - Results keep their previous objects while their contents are unchanged, so `===` means
 *   unchanged: `localEndpoints` and `diagnostics` as a whole, each profile's member list (the
 *   same endpoint objects in the same order). The walk allocates nothing while nothing changed.
 * - `changedMembers` names the profile ids whose member list is a different array than after
 *   the previous `update` (empty when the walk was skipped).
 * - Ties on an interface name go to the smallest etcd key; the losers, and local endpoints whose
 *   name lacks the prefix, are reported and ignored.
 */
import type { Endpoint } from '../src/model/index.js';
import type { Diagnostic, EndpointInput, Snapshot } from './types.js';

const NO_ENDPOINTS: readonly Endpoint[] = [];
const NO_IDS: ReadonlySet<string> = new Set();

/** Walks a profile's member list from the previous walk in step with the current one. */
interface MemberCursor {
  previous: readonly Endpoint[];
  matched: number;
  /** Set once the current list diverges from the previous one. */
  fresh: Endpoint[] | undefined;
}

function sameDiagnostics(a: readonly Diagnostic[], b: readonly Diagnostic[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.kind !== y.kind || x.subject !== y.subject || x.message !== y.message) return false;
  }
  return true;
}

function sameEntries<T>(a: ReadonlyMap<string, T>, b: ReadonlyMap<string, T>): boolean {
  if (a.size !== b.size) return false;
  const other = b.entries();
  for (const [key, value] of a) {
    const next = other.next().value as [string, T];
    if (next[0] !== key || next[1] !== value) return false;
  }
  return true;
}

export class EndpointIndex {
  private source: ReadonlyMap<string, EndpointInput> | undefined;
  private generation: number | undefined;
  private hostname = '';
  private prefix = '';

  /** Local endpoints by interface name, sorted by name. */
  localEndpoints: ReadonlyMap<string, EndpointInput> = new Map();
  /** Ids of every profile some local endpoint lists (any state). */
  localProfileIds: ReadonlySet<string> = NO_IDS;
  /** Local endpoints ignored, in walk order. */
  diagnostics: readonly Diagnostic[] = [];
  /** Profile id → the endpoints (any host, any state) listing it, in snapshot order. */
  members: ReadonlyMap<string, readonly Endpoint[]> = new Map();
  changedMembers: ReadonlySet<string> = NO_IDS;

  update(snapshot: Snapshot): void {
    const { hostname, endpoints } = snapshot;
    const prefix = snapshot.config.interfacePrefix;
    const generation = snapshot.generations?.endpoints;
    if (
      generation !== undefined &&
      generation === this.generation &&
      endpoints === this.source &&
      hostname === this.hostname &&
      prefix === this.prefix
    ) {
      this.changedMembers = NO_IDS;
      return;
    }

    const previousMembers = this.members;
    const cursors = new Map<string, MemberCursor>();
    const claims = new Map<string, [string, EndpointInput][]>();
    const diagnostics: Diagnostic[] = [];
    endpoints.forEach((input, key) => {
      const endpoint = input.endpoint;
      if (input.ref.host === hostname) {
        const iface = endpoint.name;
        if (!iface.startsWith(prefix)) {
          diagnostics.push({
            kind: 'invalid-endpoint',
            subject: key,
            message: `interface ${iface} does not start with the workload prefix ${prefix}; endpoint ignored`,
          });
        } else {
          const claimants = claims.get(iface);
          if (claimants) claimants.push([key, input]);
          else claims.set(iface, [[key, input]]);
        }
      }
      const ids = endpoint.profile_ids;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        let cursor = cursors.get(id);
        if (cursor === undefined) {
          cursor = { previous: previousMembers.get(id) ?? NO_ENDPOINTS, matched: 0, fresh: undefined };
          cursors.set(id, cursor);
        }
        if (cursor.fresh === undefined) {
          if (cursor.previous[cursor.matched] === endpoint) {
            cursor.matched++;
            continue;
          }
          cursor.fresh = cursor.previous.slice(0, cursor.matched);
        }
        cursor.fresh.push(endpoint);
      }
    });

    const members = new Map<string, readonly Endpoint[]>();
    const changedMembers = new Set<string>();
    for (const [id, cursor] of cursors) {
      const list =
        cursor.fresh ?? (cursor.matched === cursor.previous.length ? cursor.previous : cursor.previous.slice(0, cursor.matched));
      members.set(id, list);
      if (list !== previousMembers.get(id)) changedMembers.add(id);
    }
    for (const id of previousMembers.keys()) if (!members.has(id)) changedMembers.add(id);

    const local = new Map<string, EndpointInput>();
    for (const iface of [...claims.keys()].sort()) {
      const claimants = claims.get(iface)!.sort(([a], [b]) => (a < b ? -1 : 1));
      const [winnerKey, winner] = claimants[0]!;
      local.set(iface, winner);
      for (const [loser] of claimants.slice(1)) {
        diagnostics.push({
          kind: 'invalid-endpoint',
          subject: loser,
          message: `interface ${iface} is already used by ${winnerKey}; endpoint ignored`,
        });
      }
    }
    if (!sameEntries(local, this.localEndpoints)) {
      this.localEndpoints = local;
      const ids = new Set<string>();
      for (const input of local.values()) for (const id of input.endpoint.profile_ids) ids.add(id);
      this.localProfileIds = ids;
    }
    if (!sameDiagnostics(diagnostics, this.diagnostics)) this.diagnostics = diagnostics;
    this.members = members;
    this.changedMembers = changedMembers;
    this.source = endpoints;
    this.generation = generation;
    this.hostname = hostname;
    this.prefix = prefix;
  }
}
