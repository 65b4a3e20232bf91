/**
 * Test helper: wraps a real CommandRunner and records every argv (and input) it ran, so tests can
 * assert which commands a step issued (e.g. "a re-apply runs read commands only").
 */
import type { CommandRunner } from '../../../agent/dataplane/types.js';

export interface RecordedCommand {
  argv: readonly string[];
  input?: string;
}

export function recording(inner: CommandRunner): CommandRunner & { commands: RecordedCommand[] } {
  const commands: RecordedCommand[] = [];
  return {
    commands,
    run(argv, options = {}) {
      commands.push({ argv, ...(options.input !== undefined ? { input: options.input } : {}) });
      return inner.run(argv, options);
    },
  };
}
