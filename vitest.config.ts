import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The model's assertions (VM_BUG_ON and the CONFIG_DEBUG_VM-style
    // whole-state checks) are always on in tests.
    env: { PAGESIM_DEBUG_VM: "1" },
    testTimeout: 60_000,
    pool: "forks",
  },
});
