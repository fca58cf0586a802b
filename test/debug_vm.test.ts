// CONFIG_DEBUG_VM-style checks catch each kind of corruption they claim to.
import { describe, expect, it } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { KernelBug } from "../src/kernel/bug.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { GFP_KERNEL } from "../src/kernel/gfp.ts";
import { list_del } from "../src/kernel/list.ts";
import type { Machine } from "../src/kernel/machine.ts";
import { MIGRATE_UNMOVABLE } from "../src/kernel/mmzone.ts";
import { PGTY_buddy, set_pageblock_migratetype } from "../src/kernel/page.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";

const MiB = 1024 ** 2;

/** A 16 MiB machine with one order-3 block allocated at a known pfn. */
function machine(): { m: Machine; pfn: number } {
  const m = boot({ mem_bytes: 16 * MiB, layout: "normal", nr_cpus: 1, debug_vm: true });
  const pfn = alloc_pages(m, 0, GFP_KERNEL, 3);
  verify_machine(m);
  return { m, pfn };
}

describe("debug_vm", () => {
  const cases: [string, (m: Machine, pfn: number) => void, RegExp][] = [
    [
      "an allocated page marked PageBuddy",
      (m, pfn) => {
        m.mem.page_type[pfn] = PGTY_buddy;
      },
      /PageBuddy page is on no free list/,
    ],
    [
      "a free-page counter that disagrees with the lists",
      (m) => {
        m.populated[0].vm_stat[NR_FREE_PAGES] += 1;
      },
      /NR_FREE_PAGES = \d+ but the free lists hold/,
    ],
    [
      "a page that is neither free nor allocated",
      (m, pfn) => {
        m.mem._refcount[pfn] = 0;
      },
      /neither free, on a pcp list, nor allocated/,
    ],
    [
      "a free block unlinked without clearing its state",
      (m) => {
        const z = m.populated[0];
        for (let o = 10; o >= 0; o--) {
          for (let mt = 0; mt < 6; mt++) {
            const head = z.free_list(o, mt);
            const first = m.mem.lru_next[head];
            if (first !== head) {
              list_del(m.mem, first);
              return;
            }
          }
        }
      },
      /nr_free\[\d+\] = \d+ but the lists hold/,
    ],
    [
      "a free block on the list of another migratetype",
      (m) => {
        const z = m.populated[0];
        const head = z.free_list(10, 1);
        set_pageblock_migratetype(m.mem, m.mem.lru_next[head], MIGRATE_UNMOVABLE);
      },
      /lies in a Unmovable pageblock/,
    ],
  ];
  for (const [what, corrupt, message] of cases) {
    it(`debug_vm: catches ${what}`, () => {
      const { m, pfn } = machine();
      corrupt(m, pfn);
      expect(() => verify_machine(m)).toThrow(KernelBug);
      expect(() => verify_machine(m)).toThrow(message);
    });
  }
});
