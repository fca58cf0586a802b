/**
 * kernel/eras/era2022.ts: the balloon half of the 2022 era (v6.0-v6.16:
 * struct movable_operations instead of address_space_operations; balloon
 * pages carry the PageOffline page type instead of PageBalloon, believed
 * from v6.12; virtballoon_migratepage deletes the old page under
 * pages_lock). Locks and page lock use are those of 2016. The movable_ops
 * core of this era (movable_operations found through page->mapping) is
 * not modelled yet: pair this with era2016's MovableEra.
 */

import { PGTY_offline } from "../page.ts";
import type { BalloonEra } from "./era.ts";

export const balloon_era2022: BalloonEra = {
  name: "2022",
  device_lookup: "private",
  page_type: PGTY_offline,
  uses_page_lock: true,
  global_pages_lock: false,
  delete_under_pages_lock: true,
  isolate_checks_device: false,
};
