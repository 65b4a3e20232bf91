/**
 * Typed datastore errors, in the etcd3 style: every failure the datastore layer reports is one
 * of these classes, with a one-line message fit for a CLI or a log line. `transient` marks the
 * errors worth retrying later (etcd unreachable, conflict budget exhausted); the others need a
 * human (bad configuration, invalid stored data, a missing or existing object).
 */

export abstract class DatastoreError extends Error {
  /** True when retrying the same operation later may succeed. */
  abstract readonly transient: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The etcd settings in the environment are unusable (bad URL, unreadable TLS file). */
export class DatastoreConfigError extends DatastoreError {
  readonly transient = false;
}

/** etcd could not be reached or did not answer in time. */
export class DatastoreUnavailableError extends DatastoreError {
  readonly transient = true;
}

/** A read-modify-write kept losing to concurrent writers and gave up. */
export class DatastoreConflictError extends DatastoreError {
  readonly transient = true;
}

/** etcd answered with an error other than unavailability (permissions, auth, internal). */
export class DatastoreRequestError extends DatastoreError {
  readonly transient = false;
}

/** A stored value does not decode with the model schemas. */
export class DatastoreDataError extends DatastoreError {
  readonly transient = false;
}

export class ProfileNotFoundError extends DatastoreError {
  readonly transient = false;
  constructor(readonly profile: string) {
    super(`Profile ${profile} not found.`);
  }
}

export class ProfileExistsError extends DatastoreError {
  readonly transient = false;
  constructor(readonly profile: string) {
    super(`Profile ${profile} already exists.`);
  }
}

/** `removeProfile` refused: endpoints (keys listed) still reference the profile. */
export class ProfileInUseError extends DatastoreError {
  readonly transient = false;
  constructor(
    readonly profile: string,
    readonly endpointKeys: string[],
  ) {
    super(`Profile ${profile} is in use by ${endpointKeys.length} endpoint(s).`);
  }
}

export class EndpointNotFoundError extends DatastoreError {
  readonly transient = false;
  constructor(readonly key: string) {
    super(`Endpoint ${key} not found.`);
  }
}

export function isTransientDatastoreError(error: unknown): boolean {
  return error instanceof DatastoreError && error.transient;
}

/** A caller passed a name that cannot be an etcd path segment of the data model. */
export class InvalidNameError extends DatastoreError {
  readonly transient = false;
}
