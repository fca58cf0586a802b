/**
 * kernel/zsmalloc.ts: a model of mm/zsmalloc.c (v6.x, after zspage isolation
 * was removed in v5.17), the compressed-object allocator behind zram and
 * zswap and the second in-tree client of the movable_ops framework after the
 * balloon. Objects of one size class are packed into a "zspage", a chain of
 * 1..ZS_MAX_PAGES_PER_ZSPAGE order-0 pages; an object may straddle two pages
 * of its chain. A handle names an object for its user; the handle table
 * holds the object's location (pfn of the page where it starts, object
 * index in the zspage), so migrating a page means rewriting the location of
 * every object that starts in it (record_obj), which is what compaction's
 * migrate_page callback does here.
 *
 * What pagesim keeps per page: page->private = zspage id, page->index = the
 * page's position in its chain, page->mapping = the movable_ops mark. Object
 * payloads are kept per page (a tag per object that starts in the page) so
 * that a migration that forgot to carry or repoint them is caught by reading
 * the object back through its handle.
 *
 * Locks (v6.x order): pool->migrate_lock (an rwlock in the kernel: readers are
 * zs_free and zs_map_object, the writer is migration; modelled as one
 * exclusive lock), then class->lock, then the zspage lock (folded into
 * class->lock here). The core holds the page lock around isolate, migrate
 * and putback; zs_malloc marks fresh pages movable with trylock_page (nobody
 * else can hold a page that was just allocated), and freeing an empty zspage
 * trylocks every page of it, deferring the free to a worker (free_work)
 * when one is locked (a migration is in progress).
 * Invariants: a live handle's location names a page of its zspage whose
 * private is that zspage's id and whose payload holds the object; a zspage's
 * inuse count equals its allocated objects; every page of a live zspage
 * carries one reference of the pool.
 */

import type { Lock, Runtime, Step, StepOf } from "../runtime/runtime.ts";
import { VM_BUG_ON_PAGE } from "./bug.ts";
import { EINVAL, ENOMEM } from "./errno.ts";
import type { Gfp } from "./gfp.ts";
import { put_page, this_cpu } from "./mm/lru.ts";
import { lock_page, trylock_page, unlock_page } from "./mm/pagemap.ts";
import type { MmState } from "./mm/state.ts";
import {
  __ClearPageMovable,
  __SetPageMovable,
  type MovableOperations,
  register_movable_ops,
} from "./movable_ops.ts";
import { PAGE_SIZE, type Pfn } from "./page.ts";
import { alloc_pages } from "./page_alloc/alloc.ts";

export const ZS_MIN_ALLOC_SIZE = 32;
/** PAGE_SIZE >> CLASS_BITS (8): classes are 16 bytes apart. */
export const ZS_SIZE_CLASS_DELTA = 16;
export const ZS_MAX_ALLOC_SIZE = PAGE_SIZE;
/** CONFIG_ZSMALLOC_CHAIN_SIZE default since v6.3. */
export const ZS_MAX_PAGES_PER_ZSPAGE = 8;
export const ZS_SIZE_CLASSES =
  Math.ceil((ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA) + 1;
/** The object index occupies the low bits of an encoded location. */
const OBJ_INDEX_SCALE = 1 << 12;

/** calculate_zspage_chain_size(): the chain length that wastes least. */
export function calculate_zspage_chain_size(size: number): number {
  let best = 1;
  let best_used = -1;
  for (let i = 1; i <= ZS_MAX_PAGES_PER_ZSPAGE; i++) {
    const zspage_size = i * PAGE_SIZE;
    const waste = zspage_size % size;
    const used = Math.floor(((zspage_size - waste) * 100) / zspage_size);
    if (used > best_used) {
      best_used = used;
      best = i;
    }
  }
  return best;
}

/** get_size_class_index(). */
export function get_size_class_index(size: number): number {
  return size <= ZS_MIN_ALLOC_SIZE
    ? 0
    : Math.ceil((size - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA);
}

/** struct size_class. */
export class SizeClass {
  readonly index: number;
  readonly size: number;
  readonly pages_per_zspage: number;
  readonly objs_per_zspage: number;
  readonly lock: Lock;
  /** zspages of this class with a free object (the fullness lists, flattened). */
  readonly partial: Zspage[] = [];
  constructor(index: number, lock: Lock) {
    this.index = index;
    this.lock = lock;
    this.size = ZS_MIN_ALLOC_SIZE + index * ZS_SIZE_CLASS_DELTA;
    this.pages_per_zspage = calculate_zspage_chain_size(this.size);
    this.objs_per_zspage = Math.floor((this.pages_per_zspage * PAGE_SIZE) / this.size);
  }

  /** The first object that starts in page `k` of a chain. */
  first_obj(k: number): number {
    return Math.ceil((k * PAGE_SIZE) / this.size);
  }

  /** The page of the chain in which object `idx` starts. */
  obj_page(idx: number): number {
    return Math.floor((idx * this.size) / PAGE_SIZE);
  }
}

/** struct zspage. */
export class Zspage {
  readonly id: number;
  readonly cls: SizeClass;
  /** The chain, by position. */
  readonly pages: Int32Array;
  /** object index -> handle, 0 when the object is free. */
  readonly handles: Int32Array;
  inuse = 0;
  /** Emptied while a page was locked: waiting for free_work. */
  deferred = false;
  constructor(id: number, cls: SizeClass) {
    this.id = id;
    this.cls = cls;
    this.pages = new Int32Array(cls.pages_per_zspage).fill(-1);
    this.handles = new Int32Array(cls.objs_per_zspage);
  }
}

/** Counters the pool keeps (zs_pool_stats and /sys/kernel/debug/zsmalloc). */
export interface ZsStats {
  pages_allocated: number;
  objs_allocated: number;
  pages_migrated: number;
  zspages_deferred: number;
}

/** struct zs_pool, which is also the driver registered with movable_ops. */
export class ZsPool implements MovableOperations {
  readonly name: string;
  readonly handle: number;
  readonly classes: SizeClass[] = [];
  readonly migrate_lock: Lock;
  /** zspage id -> zspage; slot 0 unused so that page->private is never 0. */
  readonly zspages: (Zspage | null)[] = [null];
  private readonly free_ids: number[] = [];
  /** handle -> encoded location (pfn * OBJ_INDEX_SCALE + obj index), -1 free. */
  private handle_obj = new Float64Array(1024).fill(-1);
  private readonly free_handles: number[] = [];
  private next_handle = 1;
  /** pfn -> payload tags of the objects that start in that page. */
  readonly page_data = new Map<Pfn, Uint32Array>();
  /** Emptied zspages waiting for free_work. */
  readonly deferred: Zspage[] = [];
  readonly stats: ZsStats = {
    pages_allocated: 0,
    objs_allocated: 0,
    pages_migrated: 0,
    zspages_deferred: 0,
  };

  /** zs_create_pool(). */
  constructor(mm: MmState, name: string) {
    this.name = name;
    this.migrate_lock = mm.new_lock(`${name}->migrate_lock`, "spinlock");
    for (let i = 0; i < ZS_SIZE_CLASSES; i++) {
      this.classes.push(new SizeClass(i, mm.new_lock(`${name}->class->lock`, "spinlock")));
    }
    this.handle = register_movable_ops(mm, this);
  }

  // ---- handles ---------------------------------------------------------------

  /** cache_alloc_handle(). */
  private alloc_handle(): number {
    const h = this.free_handles.pop() ?? this.next_handle++;
    if (h >= this.handle_obj.length) {
      const grown = new Float64Array(this.handle_obj.length * 2).fill(-1);
      grown.set(this.handle_obj);
      this.handle_obj = grown;
    }
    return h;
  }

  /** record_obj(). */
  private record_obj(handle: number, pfn: Pfn, idx: number): void {
    this.handle_obj[handle] = pfn * OBJ_INDEX_SCALE + idx;
  }

  /** obj_to_location(): [pfn, object index] of a live handle. */
  location(handle: number): [Pfn, number] {
    const obj = handle > 0 && handle < this.handle_obj.length ? this.handle_obj[handle] : -1;
    if (obj < 0) throw new RangeError(`zsmalloc ${this.name}: handle ${handle} is not allocated`);
    return [Math.floor(obj / OBJ_INDEX_SCALE), obj % OBJ_INDEX_SCALE];
  }

  /** The zspage of a pool page (get_zspage). */
  get_zspage(mm: MmState, pfn: Pfn): Zspage {
    const z = this.zspages[mm.m.mem.page_private[pfn]];
    VM_BUG_ON_PAGE(!z || z.pages[mm.m.mem.index[pfn]] !== pfn, mm.m.mem, pfn, "not a zspage page");
    return z as Zspage;
  }

  /** The payload slot of an object: page data array and offset into it. */
  private slot(mm: MmState, handle: number): [Uint32Array, number] {
    const [pfn, idx] = this.location(handle);
    const z = this.get_zspage(mm, pfn);
    const k = z.cls.obj_page(idx);
    VM_BUG_ON_PAGE(mm.m.mem.index[pfn] !== k, mm.m.mem, pfn, "object located in the wrong page");
    VM_BUG_ON_PAGE(z.handles[idx] !== handle, mm.m.mem, pfn, "object does not point back");
    const data = this.page_data.get(pfn);
    VM_BUG_ON_PAGE(!data, mm.m.mem, pfn, "zspage page without payload");
    return [data as Uint32Array, idx - z.cls.first_obj(k)];
  }

  /** Write an object's payload (zs_obj_write, with a tag for the data). */
  obj_write(mm: MmState, handle: number, tag: number): void {
    const [d, i] = this.slot(mm, handle);
    d[i] = tag;
  }

  /** Read an object's payload back through its handle (zs_obj_read). */
  obj_read(mm: MmState, handle: number): number {
    const [d, i] = this.slot(mm, handle);
    return d[i];
  }

  // ---- allocation ------------------------------------------------------------

  /**
   * zs_malloc(): a handle to an object of `size` bytes, -EINVAL for a size
   * outside 1..PAGE_SIZE, -ENOMEM when a new zspage cannot be allocated.
   */
  *zs_malloc(rt: Runtime, mm: MmState, size: number, gfp: Gfp): StepOf<number> {
    if (!(Number.isInteger(size) && size > 0 && size <= ZS_MAX_ALLOC_SIZE)) return -EINVAL;
    const cls = this.classes[get_size_class_index(size)];
    const handle = this.alloc_handle();
    yield* rt.spin_lock(cls.lock);
    const z = cls.partial.length ? cls.partial[cls.partial.length - 1] : null;
    if (z) {
      this.obj_malloc(mm, z, handle);
      yield* rt.spin_unlock(cls.lock);
      return handle;
    }
    yield* rt.spin_unlock(cls.lock);
    const fresh = this.alloc_zspage(rt, mm, cls, gfp);
    if (fresh === null) {
      this.free_handles.push(handle);
      return -ENOMEM;
    }
    yield* rt.spin_lock(cls.lock);
    cls.partial.push(fresh);
    this.obj_malloc(mm, fresh, handle);
    yield* this.SetZsPageMovable(rt, mm, fresh);
    yield* rt.spin_unlock(cls.lock);
    return handle;
  }

  /** alloc_zspage(): a chain of order-0 pages, each holding a pool reference. */
  private alloc_zspage(rt: Runtime, mm: MmState, cls: SizeClass, gfp: Gfp): Zspage | null {
    const m = mm.m;
    const id = this.free_ids.pop() ?? this.zspages.length;
    const z = new Zspage(id, cls);
    for (let k = 0; k < cls.pages_per_zspage; k++) {
      const pfn = alloc_pages(m, this_cpu(rt, m), gfp, 0);
      if (pfn < 0) {
        for (let j = 0; j < k; j++) {
          this.page_data.delete(z.pages[j]);
          m.mem.page_private[z.pages[j]] = 0;
          m.mem.index[z.pages[j]] = 0;
          put_page(rt, mm, z.pages[j]);
        }
        this.free_ids.push(id);
        return null;
      }
      z.pages[k] = pfn;
      m.mem.page_private[pfn] = id;
      m.mem.index[pfn] = k;
      this.page_data.set(pfn, new Uint32Array(cls.first_obj(k + 1) - cls.first_obj(k)));
    }
    if (id === this.zspages.length) this.zspages.push(z);
    else this.zspages[id] = z;
    this.stats.pages_allocated += cls.pages_per_zspage;
    return z;
  }

  /** SetZsPageMovable(): mark the chain movable, each page trylocked. */
  private *SetZsPageMovable(rt: Runtime, mm: MmState, z: Zspage): Step {
    for (let k = 0; k < z.pages.length; k++) {
      const pfn = z.pages[k];
      const ok = yield* trylock_page(rt, mm, pfn);
      VM_BUG_ON_PAGE(!ok, mm.m.mem, pfn, "SetZsPageMovable: fresh page locked by someone");
      __SetPageMovable(mm, pfn, this.handle);
      yield* unlock_page(rt, mm, pfn);
    }
  }

  /** obj_malloc(): take the zspage's first free object; class->lock held. */
  private obj_malloc(mm: MmState, z: Zspage, handle: number): void {
    const idx = z.handles.indexOf(0);
    VM_BUG_ON_PAGE(idx < 0, mm.m.mem, z.pages[0], "obj_malloc: zspage full");
    z.handles[idx] = handle;
    z.inuse++;
    this.record_obj(handle, z.pages[z.cls.obj_page(idx)], idx);
    if (z.inuse === z.cls.objs_per_zspage) remove_zspage(z);
    this.stats.objs_allocated++;
  }

  /**
   * zs_free(): release the object; an emptied zspage is freed at once when
   * every page of it can be trylocked, else handed to free_work.
   */
  *zs_free(rt: Runtime, mm: MmState, handle: number): Step {
    yield* rt.spin_lock(this.migrate_lock);
    const [pfn, idx] = this.location(handle);
    const z = this.get_zspage(mm, pfn);
    const cls = z.cls;
    yield* rt.spin_lock(cls.lock);
    yield* rt.spin_unlock(this.migrate_lock);
    z.handles[idx] = 0;
    if (z.inuse === cls.objs_per_zspage) cls.partial.push(z);
    z.inuse--;
    this.handle_obj[handle] = -1;
    this.free_handles.push(handle);
    this.stats.objs_allocated--;
    if (z.inuse === 0) {
      remove_zspage(z);
      yield* this.free_zspage(rt, mm, z);
    }
    yield* rt.spin_unlock(cls.lock);
  }

  /** free_zspage(): class->lock held; trylock the chain or defer. */
  private *free_zspage(rt: Runtime, mm: MmState, z: Zspage): Step {
    let locked = 0;
    for (; locked < z.pages.length; locked++) {
      if (!(yield* trylock_page(rt, mm, z.pages[locked]))) break;
    }
    if (locked < z.pages.length) {
      for (let k = 0; k < locked; k++) yield* unlock_page(rt, mm, z.pages[k]);
      z.deferred = true;
      this.deferred.push(z);
      this.stats.zspages_deferred++;
      return;
    }
    yield* this.__free_zspage(rt, mm, z);
  }

  /** __free_zspage(): chain locked; release every page (reset_page, put_page). */
  private *__free_zspage(rt: Runtime, mm: MmState, z: Zspage): Step {
    const mem = mm.m.mem;
    for (let k = 0; k < z.pages.length; k++) {
      const pfn = z.pages[k];
      __ClearPageMovable(mm, pfn);
      mem.page_private[pfn] = 0;
      mem.index[pfn] = 0;
      this.page_data.delete(pfn);
      yield* unlock_page(rt, mm, pfn);
      put_page(rt, mm, pfn);
    }
    this.zspages[z.id] = null;
    this.free_ids.push(z.id);
    this.stats.pages_allocated -= z.pages.length;
  }

  /** async_free_zspage() (pool->free_work): free the deferred zspages. */
  *async_free_zspage(rt: Runtime, mm: MmState): Step {
    while (this.deferred.length) {
      const z = this.deferred.pop() as Zspage;
      const cls = z.cls;
      yield* rt.spin_lock(cls.lock);
      z.deferred = false;
      yield* rt.spin_unlock(cls.lock);
      for (let k = 0; k < z.pages.length; k++) yield* lock_page(rt, mm, z.pages[k]);
      yield* rt.spin_lock(cls.lock);
      yield* this.__free_zspage(rt, mm, z);
      yield* rt.spin_unlock(cls.lock);
    }
  }

  // ---- movable_ops (zsmalloc_mops) -------------------------------------------

  /** zs_page_isolate(): since v5.17 isolation is a no-op for the zspage. */
  // biome-ignore lint/correctness/useYield: a callback with no step of its own
  *isolate_page(_rt: Runtime, mm: MmState, pfn: Pfn, _mode: number): StepOf<boolean> {
    this.get_zspage(mm, pfn);
    return true;
  }

  /**
   * zs_page_migrate(): copy the page, repoint every object that starts in it
   * (record_obj) under migrate_lock and class->lock, replace the page in
   * the chain, give the new page the pool's reference and release the old.
   */
  *migrate_page(rt: Runtime, mm: MmState, dst: Pfn, src: Pfn, _mode: number): StepOf<number> {
    const mem = mm.m.mem;
    const z = this.get_zspage(mm, src);
    const cls = z.cls;
    yield* rt.spin_lock(this.migrate_lock);
    yield* rt.spin_lock(cls.lock);
    const k = mem.index[src];
    const first = cls.first_obj(k);
    const end = Math.min(cls.first_obj(k + 1), cls.objs_per_zspage);
    for (let idx = first; idx < end; idx++) {
      if (z.handles[idx] !== 0) this.record_obj(z.handles[idx], dst, idx);
    }
    const data = this.page_data.get(src) as Uint32Array;
    this.page_data.delete(src);
    this.page_data.set(dst, data);
    if (mem.content) mem.content[dst] = mem.content[src];
    yield* rt.spin_unlock(this.migrate_lock);
    // replace_sub_page()
    z.pages[k] = dst;
    mem.page_private[dst] = z.id;
    mem.index[dst] = k;
    __SetPageMovable(mm, dst, this.handle);
    yield* rt.spin_unlock(cls.lock);
    mem._refcount[dst]++; // get_page(newpage): the pool's reference
    // reset_page(page); put_page(page)
    __ClearPageMovable(mm, src);
    mem.page_private[src] = 0;
    mem.index[src] = 0;
    put_page(rt, mm, src);
    this.stats.pages_migrated++;
    return 0;
  }

  /** zs_page_putback(): nothing to undo since isolation is a no-op. */
  *putback_page(_rt: Runtime, _mm: MmState, _pfn: Pfn): Step {}

  /** Every page of every live zspage, for checks. */
  pool_pages(): Pfn[] {
    const out: Pfn[] = [];
    for (const z of this.zspages) if (z) for (const p of z.pages) out.push(p);
    return out;
  }
}

/** remove_zspage(): off the class's list of zspages with a free object. */
function remove_zspage(z: Zspage): void {
  const l = z.cls.partial;
  const i = l.indexOf(z);
  if (i >= 0) l.splice(i, 1);
}
