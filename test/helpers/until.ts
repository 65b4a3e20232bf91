/** Test helper: waiting for something to happen (an event seen by polling), with a deadline. */

/**
 * Polls `check` every 50 ms until it holds (a check that throws counts as false); throws
 * "timed out waiting for <what>" after `timeoutMs`. `what` may be a function, to describe the
 * state at the time of the failure (a log tail, say).
 */
export async function until(what: string | (() => string), check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
