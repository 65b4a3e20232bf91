/**
 * The dataplane status each agent publishes at `/calico/agent/v1/dataplane/<host>`, read by
 * `calicoctl status` and by `--wait`. Outside `/calico/v1/` on purpose: agents watch only that
 * prefix, so a thousand agents publishing never wake each other.
 *
 * `revision` is the etcd revision the host's kernel reflects: every `/calico/v1/` write at or
 * below it is enforced there. The key has no lease (a stopped agent's last state stays readable);
 * whether the agent is alive is told by its leased Felix status key (`hostStatusKey`).
 */
export const DATAPLANE_STATUS_PREFIX = '/calico/agent/v1/dataplane/';

export const dataplaneStatusKey = (host: string): string => `${DATAPLANE_STATUS_PREFIX}${host}`;

export interface DataplaneStatus {
  revision: number;
  /** When the kernel last reached `revision` (ISO 8601, UTC). */
  applied_at: string;
  /** The last failed pass's reason, null after a successful one. */
  last_error: string | null;
  /** Local endpoints per state. */
  endpoints: { up: number; down: number; error: number };
}

/** A stored value as a DataplaneStatus, or undefined when it is not one. */
export function parseDataplaneStatus(text: string): DataplaneStatus | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const v = value as Partial<DataplaneStatus> | null;
  if (v === null || typeof v !== 'object' || !Number.isSafeInteger(v.revision) || typeof v.applied_at !== 'string') return undefined;
  const count = (n: unknown): number => (Number.isSafeInteger(n) && (n as number) >= 0 ? (n as number) : 0);
  return {
    revision: v.revision!,
    applied_at: v.applied_at,
    last_error: typeof v.last_error === 'string' ? v.last_error : null,
    endpoints: { up: count(v.endpoints?.up), down: count(v.endpoints?.down), error: count(v.endpoints?.error) },
  };
}
