/**
 * kernel/eras/era2026.ts: the balloon half of the 2026 era (seed 003,
 * "mm/balloon_compaction: remove dependency on page lock", January 2026,
 * on top of the v6.17 PG_movable_ops rework of seed 004): balloon code no
 * longer takes the page lock; one global balloon_pages_lock guards every
 * device's list and page->private; isolation looks the device up through
 * page->private under that lock and refuses a page whose page->private is
 * already clear (deflated); finalize clears page->private under it.
 * The movable_ops core is that of 2025 (PG_movable_ops, PageOffline,
 * PageMovableOpsIsolated) and still locks pages (isolate_movable_ops_page,
 * migration, putback) to serialise the isolated flag: rule core-page-lock;
 * dropping it gives a core without any page lock for these pages.
 */

import { PGTY_offline } from "../page.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { movable_ops_era } from "./era2025.ts";

export const era2026: MovableEra = movable_ops_era("2026");

export const balloon_era2026: BalloonEra = {
  name: "2026",
  device_lookup: "private",
  isolation: "core",
  page_type: PGTY_offline,
  uses_page_lock: false,
  global_pages_lock: true,
  delete_under_pages_lock: true,
  isolate_checks_device: true,
};
