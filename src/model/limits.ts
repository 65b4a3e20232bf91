/**
 * Bounds on what one etcd value may hold. A value beyond any of them is invalid, exactly as a
 * malformed one is: calicoctl refuses to write it, and the agent treats it as absent (fail closed
 * for what references it, counted in `calico_agent_invalid_keys_total`) and carries on with
 * everything else. They keep one hostile or mistaken value from costing the agent more than a
 * bounded amount of memory and kernel rules.
 *
 * The worst single rule the limits allow renders to 14 × 14 = 196 iptables rules (a port list of
 * 100 ranges is 14 multiport chunks), so a profile direction is at most 196,000 rules.
 */
export const LIMITS = {
  /** Characters of one stored value (etcd's own default request limit is 1.5 MiB). */
  valueChars: 1_048_576,
  /** Rules in `inbound_rules`, and in `outbound_rules`. */
  rulesPerDirection: 1_000,
  /** Entries (ports or ranges) in one port list of a rule. */
  portsPerList: 100,
  /** Tags of one profile. */
  tagsPerProfile: 1_000,
  /** Profile ids of one endpoint. */
  profilesPerEndpoint: 100,
  /** Nets of one endpoint, per IP family. */
  netsPerFamily: 1_000,
} as const;

/** The issue message of a list longer than its limit. */
export const tooMany = (what: string, limit: number) => (issue: { input?: unknown }): string =>
  `too many ${what} (${Array.isArray(issue.input) ? issue.input.length : 'more than the limit'}; at most ${limit})`;
