import { defineConfig } from 'vitest/config';

// Tests run from TypeScript sources; the CLI and agent binaries they spawn run from dist/
// (the README's test command builds first). Real etcd, iptables and network namespaces are
// shared machine resources, so test files run one at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
