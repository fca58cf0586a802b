/**
 * kernel/list.ts: models include/linux/list.h over the memory map's links.
 *
 * A list_head is a slot in MemMap.lru_next / lru_prev: a pfn for a page's
 * page->lru, or a slot past the last pfn for a list head. Lists are circular
 * and doubly linked as in the kernel.
 *
 * list_del() checks the neighbours as CONFIG_DEBUG_LIST does
 * (__list_del_entry_valid) and then poisons the entry's links with
 * LIST_POISON1/2, so deleting an entry twice, or deleting an entry that was
 * never added, is caught rather than corrupting a list.
 */

import { KernelBug } from "./bug.ts";
import type { MemMap } from "./page.ts";

export const LIST_POISON1 = -0x100;
export const LIST_POISON2 = -0x122;

export function INIT_LIST_HEAD(mem: MemMap, head: number): void {
  mem.lru_next[head] = head;
  mem.lru_prev[head] = head;
}

function __list_add(mem: MemMap, entry: number, prev: number, next: number): void {
  const nx = mem.lru_next;
  const pv = mem.lru_prev;
  if (pv[next] !== prev || nx[prev] !== next || entry === prev || entry === next) {
    list_corruption(mem, "list_add", entry, prev, next);
  }
  pv[next] = entry;
  nx[entry] = next;
  pv[entry] = prev;
  nx[prev] = entry;
}

/** Add `entry` right after `head` (stack order). */
export function list_add(mem: MemMap, entry: number, head: number): void {
  __list_add(mem, entry, head, mem.lru_next[head]);
}

/** Add `entry` right before `head` (queue order). */
export function list_add_tail(mem: MemMap, entry: number, head: number): void {
  __list_add(mem, entry, mem.lru_prev[head], head);
}

/** Unlink `entry` and poison its links. */
export function list_del(mem: MemMap, entry: number): void {
  const nx = mem.lru_next;
  const pv = mem.lru_prev;
  const next = nx[entry];
  const prev = pv[entry];
  if (next < 0 || prev < 0 || pv[next] !== entry || nx[prev] !== entry) {
    list_corruption(mem, "list_del", entry, prev, next);
  }
  nx[prev] = next;
  pv[next] = prev;
  nx[entry] = LIST_POISON1;
  pv[entry] = LIST_POISON2;
}

/** Unlink `entry` and leave it as an empty list of its own. */
export function list_del_init(mem: MemMap, entry: number): void {
  list_del(mem, entry);
  INIT_LIST_HEAD(mem, entry);
}

export function list_empty(mem: MemMap, head: number): boolean {
  return mem.lru_next[head] === head;
}

/** Move `entry` from its list to right after `head`. */
export function list_move(mem: MemMap, entry: number, head: number): void {
  list_del(mem, entry);
  list_add(mem, entry, head);
}

/** Move `entry` from its list to right before `head`. */
export function list_move_tail(mem: MemMap, entry: number, head: number): void {
  list_del(mem, entry);
  list_add_tail(mem, entry, head);
}

/** list_first_entry_or_null(): the first entry, or -1 when the list is empty. */
export function list_first_entry_or_null(mem: MemMap, head: number): number {
  const first = mem.lru_next[head];
  return first === head ? -1 : first;
}

/** The last entry, or -1 when the list is empty. */
export function list_last_entry_or_null(mem: MemMap, head: number): number {
  const last = mem.lru_prev[head];
  return last === head ? -1 : last;
}

/** Whether `entry` is linked (its links are not poisoned). */
export function list_entry_linked(mem: MemMap, entry: number): boolean {
  return mem.lru_next[entry] >= 0 && mem.lru_prev[entry] >= 0;
}

/** Count the entries, checking every link on the way (debug only). */
export function list_count_nodes(mem: MemMap, head: number, bound: number): number {
  let n = 0;
  let prev = head;
  for (let e = mem.lru_next[head]; e !== head; e = mem.lru_next[e]) {
    if (e < 0 || mem.lru_prev[e] !== prev) list_corruption(mem, "list walk", e, prev, e);
    if (++n > bound)
      throw new KernelBug(`list walk: list at slot ${head} exceeds ${bound} entries`);
    prev = e;
  }
  return n;
}

function list_corruption(
  mem: MemMap,
  op: string,
  entry: number,
  prev: number,
  next: number,
): never {
  const what = (s: number) =>
    s === LIST_POISON1
      ? "LIST_POISON1"
      : s === LIST_POISON2
        ? "LIST_POISON2"
        : mem.is_list_head(s)
          ? `head#${s - mem.nr_pages}`
          : `pfn ${s}`;
  throw new KernelBug(
    `list corruption in ${op}: entry ${what(entry)}, prev ${what(prev)}, next ${what(next)}`,
    entry < mem.nr_pages && entry >= 0 ? entry : undefined,
  );
}
