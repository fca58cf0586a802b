// list_head over the memory map: insertion order, moves, and CONFIG_DEBUG_LIST-style
// detection of double deletion and corrupted links.
import { describe, expect, it } from "vitest";
import { KernelBug } from "../src/kernel/bug.ts";
import {
  INIT_LIST_HEAD,
  LIST_POISON1,
  LIST_POISON2,
  list_add,
  list_add_tail,
  list_count_nodes,
  list_del,
  list_del_init,
  list_empty,
  list_entry_linked,
  list_first_entry_or_null,
  list_last_entry_or_null,
  list_move,
  list_move_tail,
} from "../src/kernel/list.ts";
import { MemMap } from "../src/kernel/page.ts";

function mem(): MemMap {
  return new MemMap({ nr_pages: 16, list_heads_max: 4, pageblock_order: 9, track_content: false });
}

/** Walk a list forwards and backwards; both walks must agree. */
function entries(m: MemMap, head: number): number[] {
  const fwd: number[] = [];
  for (let e = m.lru_next[head]; e !== head; e = m.lru_next[e]) fwd.push(e);
  const back: number[] = [];
  for (let e = m.lru_prev[head]; e !== head; e = m.lru_prev[e]) back.push(e);
  expect(back.reverse()).toEqual(fwd);
  return fwd;
}

describe("list.h semantics", () => {
  it("list: a new head is an empty list", () => {
    const m = mem();
    const head = m.alloc_list_head();
    expect(head).toBe(16); // the first slot past the last pfn
    expect(list_empty(m, head)).toBe(true);
    expect(list_first_entry_or_null(m, head)).toBe(-1);
    expect(list_last_entry_or_null(m, head)).toBe(-1);
  });

  it("list: list_add pushes at the head, list_add_tail appends at the tail", () => {
    const m = mem();
    const head = m.alloc_list_head();
    list_add(m, 1, head); // [1]
    list_add(m, 2, head); // [2, 1]: stack order
    list_add_tail(m, 3, head); // [2, 1, 3]: queue order
    list_add(m, 4, head); // [4, 2, 1, 3]
    expect(entries(m, head)).toEqual([4, 2, 1, 3]);
    expect(list_first_entry_or_null(m, head)).toBe(4);
    expect(list_last_entry_or_null(m, head)).toBe(3);
    expect(list_count_nodes(m, head, 100)).toBe(4);
  });

  it("list: list_del unlinks the entry and poisons its links", () => {
    const m = mem();
    const head = m.alloc_list_head();
    for (const p of [1, 2, 3]) list_add_tail(m, p, head);
    list_del(m, 2);
    expect(entries(m, head)).toEqual([1, 3]);
    expect(m.lru_next[2]).toBe(LIST_POISON1);
    expect(m.lru_prev[2]).toBe(LIST_POISON2);
    expect(list_entry_linked(m, 2)).toBe(false);
    expect(list_entry_linked(m, 1)).toBe(true);
    // Deleting the ends leaves the head consistent, then empty.
    list_del(m, 1);
    list_del(m, 3);
    expect(list_empty(m, head)).toBe(true);
    expect(m.lru_prev[head]).toBe(head);
  });

  it("list: list_move takes an entry from one list to the head of another", () => {
    const m = mem();
    const a = m.alloc_list_head();
    const b = m.alloc_list_head();
    for (const p of [1, 2, 3]) list_add_tail(m, p, a);
    list_add_tail(m, 7, b);
    list_move(m, 3, b); // a: [1, 2], b: [3, 7]
    list_move_tail(m, 1, b); // a: [2], b: [3, 7, 1]
    expect(entries(m, a)).toEqual([2]);
    expect(entries(m, b)).toEqual([3, 7, 1]);
    // Moving within the same list rotates it.
    list_move_tail(m, 3, b);
    expect(entries(m, b)).toEqual([7, 1, 3]);
    list_move(m, 3, b);
    expect(entries(m, b)).toEqual([3, 7, 1]);
  });

  it("list: list_del_init leaves the entry as an empty list that can be re-added", () => {
    const m = mem();
    const head = m.alloc_list_head();
    list_add_tail(m, 5, head);
    list_add_tail(m, 6, head);
    list_del_init(m, 5);
    expect(m.lru_next[5]).toBe(5);
    expect(m.lru_prev[5]).toBe(5);
    expect(entries(m, head)).toEqual([6]);
    list_add(m, 5, head);
    expect(entries(m, head)).toEqual([5, 6]);
    INIT_LIST_HEAD(m, head);
    expect(list_empty(m, head)).toBe(true);
  });

  it("list: deleting an entry twice is caught by the poisoned links (KernelBug)", () => {
    const m = mem();
    const head = m.alloc_list_head();
    list_add_tail(m, 1, head);
    list_add_tail(m, 2, head);
    list_del(m, 1);
    expect(() => list_del(m, 1)).toThrow(KernelBug);
    expect(() => list_del(m, 1)).toThrow(/list corruption in list_del: entry pfn 1.*LIST_POISON/);
    // The failed delete changed nothing.
    expect(entries(m, head)).toEqual([2]);
  });

  it("list: deleting an entry that was never added throws instead of corrupting a list", () => {
    const m = mem();
    const head = m.alloc_list_head();
    list_add_tail(m, 3, head);
    // Never-added pages start with poisoned links, pfn 0 included (with
    // zeroed links pfn 0 would pass the neighbour check as a self-linked
    // entry).
    for (const pfn of [0, 9]) {
      expect(list_entry_linked(m, pfn)).toBe(false);
      expect(() => list_del(m, pfn)).toThrow(KernelBug);
    }
    expect(entries(m, head)).toEqual([3]);
  });

  it("list: deleting an entry whose neighbours no longer point at it throws", () => {
    const m = mem();
    const head = m.alloc_list_head();
    for (const p of [1, 2, 3]) list_add_tail(m, p, head);
    // Corrupt: 1's next skips 2, so 2's neighbours do not point back at it.
    m.lru_next[1] = 3;
    m.lru_prev[3] = 1;
    expect(() => list_del(m, 2)).toThrow(/list corruption in list_del: entry pfn 2/);
  });

  it("list: adding an entry next to itself (already on the list) is caught", () => {
    const m = mem();
    const head = m.alloc_list_head();
    list_add(m, 4, head);
    // Adding 4 after itself: entry === prev.
    expect(() => list_add(m, 4, 4)).toThrow(KernelBug);
  });

  it("list: list_count_nodes rejects a walk whose back links do not match", () => {
    const m = mem();
    const head = m.alloc_list_head();
    for (const p of [1, 2]) list_add_tail(m, p, head);
    // 2 -> 1 -> 2 ... never returns to the head; 1's back link now names 2.
    m.lru_next[2] = 1;
    m.lru_prev[1] = 2;
    expect(() => list_count_nodes(m, head, 10)).toThrow(/list corruption in list walk/);
    // A healthy list longer than the bound is also refused.
    const h2 = m.alloc_list_head();
    for (const p of [5, 6, 7]) list_add_tail(m, p, h2);
    expect(() => list_count_nodes(m, h2, 2)).toThrow(/exceeds 2 entries/);
  });
});
