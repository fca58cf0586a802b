/**
 * kernel/eras/era2022.ts: the balloon half of the 2022 era (v6.0-v6.16:
 * struct movable_operations instead of address_space_operations; balloon
 * pages carry the PageOffline page type instead of PageBalloon, believed
 * from v6.12; virtballoon_migratepage deletes the old page under
 * pages_lock). Locks and page lock use are those of 2016. The core's
 * struct movable_operations pointer in page->mapping (with
 * PAGE_MAPPING_MOVABLE) is encoded like 2016's address_space pointer, so
 * era2022 is the 2016 core under its own name. Note (balloon-eras.md
 * "PageBalloon vs PageOffline"): balloon pages are PageOffline from v5.0.
 */

import { PGTY_offline } from "../page.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { era2016 } from "./era2016.ts";

export const era2022: MovableEra = { ...era2016, name: "2022" };

export const balloon_era2022: BalloonEra = {
  name: "2022",
  device_lookup: "private",
  isolation: "core",
  page_type: PGTY_offline,
  uses_page_lock: true,
  global_pages_lock: false,
  delete_under_pages_lock: true,
  isolate_checks_device: false,
};
