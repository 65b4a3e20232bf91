/**
 * The failures a calicoctl command reports (main.ts maps them to stderr and an exit status).
 * Kept apart from everything else so that `--help` and usage errors load nothing more.
 */

/**
 * A failure to report (one or more lines) with exit status 1: on stderr, or on stdout where
 * scripts written for calicoctl 0.x read it there (`stdout`: the argument checks).
 */
export class CliError extends Error {
  readonly stdout: boolean;
  constructor(message: string, options: { stdout?: boolean } = {}) {
    super(message);
    this.name = 'CliError';
    this.stdout = options.stdout ?? false;
  }
}

/** Bad command syntax: print `usage` on stderr, exit status 1. */
export class UsageError extends Error {
  constructor(readonly usage: string) {
    super('invalid command syntax');
    this.name = 'UsageError';
  }
}
