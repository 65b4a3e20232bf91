/**
 * Feeds the syncer's per-key updates into the calculation graph (the one place that maps one
 * to the other).
 */
import type { CalcGraph } from '../compiler/index.js';
import type { DatastoreUpdate } from './syncer.js';

export function applyUpdates(graph: CalcGraph, updates: readonly DatastoreUpdate[]): void {
  for (const update of updates) {
    switch (update.kind) {
      case 'profileRules':
        graph.setProfileRules(update.profile, update.rules);
        break;
      case 'profileTags':
        graph.setProfileTags(update.profile, update.tags);
        break;
      case 'endpoint':
        graph.setEndpoint(update.key, update.input);
        break;
    }
  }
}
