/**
 * Identifier syntax shared by profiles, tags, endpoints and interface names.
 * Invariant: every name that ends up in an etcd key or a kernel object passes one of these.
 */

/** Profile ids, tag names, endpoint/workload/orchestrator ids (Calico v1 `^[a-zA-Z0-9_\.\-]+$`). */
export const ID_PATTERN = /^[a-zA-Z0-9_.-]+$/;

/** Linux interface names as Calico 1.4 accepts them for endpoints. */
export const INTERFACE_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,15}$/;

/** Host names: anything that is a single etcd path segment. */
export const HOST_PATTERN = /^[^/\s]+$/;

export function isValidId(text: string): boolean {
  return ID_PATTERN.test(text);
}
