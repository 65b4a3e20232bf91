/**
 * Test helper: the datastore view a consumer of the syncer's per-key updates holds (profiles by
 * id with their rules and tags, endpoints by key), plus every update received, in order.
 */
import type { DatastoreUpdate } from '../../agent/syncer.js';
import type { EndpointInput, ProfileInput } from '../../compiler/index.js';

export class UpdateView {
  readonly profiles = new Map<string, ProfileInput>();
  readonly endpoints = new Map<string, EndpointInput>();
  readonly received: DatastoreUpdate[] = [];

  readonly apply = (updates: readonly DatastoreUpdate[]): void => {
    for (const update of updates) {
      this.received.push(update);
      if (update.kind === 'endpoint') {
        if (update.input === undefined) this.endpoints.delete(update.key);
        else this.endpoints.set(update.key, update.input);
        continue;
      }
      const field = update.kind === 'profileRules' ? 'rules' : 'tags';
      const value = update.kind === 'profileRules' ? update.rules : update.tags;
      const next: ProfileInput = { ...this.profiles.get(update.profile), [field]: value };
      if (value === undefined) delete next[field];
      if (next.rules === undefined && next.tags === undefined) this.profiles.delete(update.profile);
      else this.profiles.set(update.profile, next);
    }
  };
}
