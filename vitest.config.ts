import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // VM_BUG_ON and friends are always on; tests boot their machines with
    // debug_vm: true for the CONFIG_DEBUG_VM-style whole-state checks.
    testTimeout: 60_000,
    pool: "forks",
  },
});
