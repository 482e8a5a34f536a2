/* Python's memory snapshot: a returning visitor's engine restores Python (Pyodide, numpy,
 * upscale imported) from Cache Storage instead of starting it.
 *
 * Pyodide's own snapshot copies the heap only, and a heap that holds numpy points into its
 * shared libraries' memory and function table. So on a fresh start every library's placement
 * is recorded (Module.placeLibrary, a hook the build patches into pyodide.asm.js), and on a
 * restore each is loaded again at its recorded memory and table base before the heap is
 * copied in (the `_beforeHeapRestore` hook), as Cloudflare's workerd does. The libraries'
 * files come from the wheels, which the browser has cached (their addresses are content-
 * hashed); their Python files are written back into Pyodide's file system, which lives in
 * JavaScript and so is not in the heap.
 *
 * An entry is one gzip stream: MAGIC, the byte length of the JSON that follows (padded so the
 * heap starts 8-aligned, as Pyodide reads it in 32-bit words), the JSON { key, libs, handles,
 * tableLength, packages, check }, then Pyodide's snapshot. Anything wrong with it (missing,
 * truncated or corrupt, another build, a restore that throws, a self-check that differs) and
 * the engine starts fresh and deletes the entry: restoring is only ever a shortcut.
 */
'use strict';

const PySnapshot = (() => {
  const CACHE_NAME = 'upscale-python';
  const MAGIC = 'UPSNAP01';
  const SITE_PACKAGES = '/lib/python3.12/site-packages/'; // the pinned Pyodide's Python
  const HEADER = 16; // MAGIC, the JSON's length, 4 bytes spare: keeps the heap 8-aligned

  const NOT_OURS = 'not a Python snapshot of this engine';
  const OTHER_BUILD = 'made by another build of the engine';
  const TRUNCATED = 'truncated';
  const WRONG_LIBRARY = (name, expected) => `loads ${name} where it recorded ${expected}`;
  const WRONG_TABLE = (name, base, expected) =>
    `${name} would load at table base ${base}, recorded at ${expected}`;
  const TABLE_DIFFERS = (length, expected) =>
    `the function table has ${length} entries after the libraries, recorded ${expected}`;
  const DEFLATED_MEMBER = (name) => `${name} is compressed in its wheel (the build stores them)`;

  /** Whether this browser can keep a snapshot (and the page does not ask to save data). */
  function usable() {
    const connection = self.navigator && navigator.connection;
    if (connection && connection.saveData) return false;
    return typeof caches !== 'undefined' && typeof CompressionStream === 'function' &&
      typeof DecompressionStream === 'function' && !!(self.crypto && crypto.subtle);
  }

  /**
   * The entry's address: a digest of what makes a heap valid here, with nothing to download.
   * The build names both folders by a hash of their content: Pyodide's (the patched
   * pyodide.asm.js, the wheels) and the web folder (the lock, with the wheels' sha256 and the
   * upscale wheel's address). A heap is only ever restored into the browser that made it.
   */
  async function key(webBase, pyodideBase) {
    const text = [webBase, pyodideBase, self.navigator ? navigator.userAgent : ''].join('\n');
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
    // Cache Storage wants an http(s) address; a blob: worker (a shop's page) has none itself.
    return new URL(`python-snapshot-${hex}`, pyodideBase).href;
  }

  /** A recorder of where libraries load; hand it to Module.placeLibrary on a fresh start. */
  function recorder() {
    const libs = [];
    const place = (name, size, tableBase, getMemory) => {
      const base = getMemory(size);
      libs.push({ name, base, tableBase });
      return base;
    };
    place.libs = libs;
    return place;
  }

  /** The entry's bytes, uncompressed, for Pyodide's snapshot `heap` of `pyodide`. */
  function pack(pyodide, heap, meta) {
    const module = pyodide._module;
    const libs = meta.libs.map((lib) => ({
      ...lib, global: !!module.LDSO.loadedLibsByName[lib.name].global,
    }));
    const handles = {};
    for (const [handle, dso] of Object.entries(module.LDSO.loadedLibsByHandle)) {
      if (Number(handle)) handles[handle] = dso.name;
    }
    const json = new TextEncoder().encode(JSON.stringify({
      ...meta, libs, handles, tableLength: module.wasmTable.length,
    }));
    const padded = Math.ceil((HEADER + json.length) / 8) * 8;
    const head = new Uint8Array(padded).fill(32);
    head.set(new TextEncoder().encode(MAGIC));
    new DataView(head.buffer).setUint32(8, json.length, true);
    head.set(json, HEADER);
    return new Blob([head, heap]);
  }

  async function save(url, blob) {
    const stream = blob.stream().pipeThrough(new CompressionStream('gzip'));
    const packed = await new Response(stream).blob();
    const cache = await caches.open(CACHE_NAME);
    // Its size in a header: the embed counts it against its cache cap without reading it.
    const headers = { 'content-type': 'application/octet-stream', 'x-upscale-bytes': String(packed.size) };
    await cache.put(url, new Response(packed, { headers }));
    return packed.size;
  }

  /** The stored entry at `url` (a Response), or undefined. */
  async function find(url) {
    return (await caches.open(CACHE_NAME)).match(url);
  }

  /** A found entry as { meta, heap }; throws when it is unusable. */
  async function unpack(response, expectedKey) {
    const stream = response.body.pipeThrough(new DecompressionStream('gzip'));
    const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    if (bytes.length < HEADER || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
      throw new Error(NOT_OURS);
    }
    const length = new DataView(bytes.buffer).getUint32(8, true);
    if (HEADER + length > bytes.length) throw new Error(TRUNCATED);
    const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER, HEADER + length)));
    if (meta.key !== expectedKey) throw new Error(OTHER_BUILD);
    const heap = bytes.subarray(Math.ceil((HEADER + length) / 8) * 8);
    if (heap.length !== meta.heapLength) throw new Error(TRUNCATED);
    return { meta, heap };
  }

  async function drop(url) {
    try {
      await (await caches.open(CACHE_NAME)).delete(url);
    } catch {
      // nothing to drop, or no storage: the next fresh start overwrites it anyway
    }
  }

  /** A wheel's members by path; the build stores them uncompressed, so slicing is reading. */
  function storedZip(buffer) {
    const view = new DataView(buffer);
    const bytes = new Uint8Array(buffer);
    let end = buffer.byteLength - 22;
    while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
    if (end < 0) throw new Error('a wheel without a zip directory');
    const count = view.getUint16(end + 10, true);
    let at = view.getUint32(end + 16, true);
    const members = [];
    for (let i = 0; i < count; i++) {
      const nameLength = view.getUint16(at + 28, true);
      const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
      const size = view.getUint32(at + 20, true);
      const local = view.getUint32(at + 42, true);
      if (view.getUint16(at + 10, true) !== 0) throw new Error(DEFLATED_MEMBER(name));
      const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
      if (!name.endsWith('/')) members.push([name, bytes.subarray(start, start + size)]);
      at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    }
    return members;
  }

  /**
   * A fetcher of the packages' wheels (from the browser's cache on a repeat visit), each
   * fetched once: `fetcher(names)` resolves to their members, in the order named.
   */
  function wheels(lock, pyodideBase) {
    // loadedPackages names a package as its wheel does (Pillow), the lock by its key (pillow)
    const byName = new Map(Object.values(lock.packages).map((entry) => [entry.name, entry]));
    const fetched = new Map();
    const one = (name) => {
      if (!fetched.has(name)) {
        fetched.set(name, (async () => {
          const entry = byName.get(name) || lock.packages[name];
          if (!entry) throw new Error(`the lock has no package ${name}`);
          const url = new URL(entry.file_name, pyodideBase);
          const response = await fetch(url);
          if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
          return storedZip(await response.arrayBuffer());
        })());
        fetched.get(name).catch(() => {}); // whoever needs it hears of its failure
      }
      return fetched.get(name);
    };
    return (names) => Promise.all(names.map(one));
  }

  /**
   * loadPyodide's hook that runs before the heap is copied in: the packages' files back in
   * the file system, then every library loaded at its recorded place, in the recorded order.
   */
  function beforeHeapRestore(meta, members) {
    // The libraries compile in the background while Pyodide instantiates; one not compiled
    // by the time the hook runs compiles there, synchronously, as Emscripten would.
    const compiled = new Map();
    const wanted = new Set(meta.libs.map((lib) => lib.name));
    for (const files of members) {
      for (const [name, data] of files) {
        const path = SITE_PACKAGES + name;
        if (wanted.has(path)) WebAssembly.compile(data).then((m) => compiled.set(path, m), () => {});
      }
    }
    return (module) => {
      for (const files of members) {
        for (const [name, data] of files) {
          const path = SITE_PACKAGES + name;
          module.FS.mkdirTree(path.slice(0, path.lastIndexOf('/')));
          module.FS.writeFile(path, data);
        }
      }
      let next = 0;
      module.placeLibrary = (name, size, tableBase) => {
        const lib = meta.libs[next++];
        if (!lib || lib.name !== name) throw new Error(WRONG_LIBRARY(name, lib && lib.name));
        if (tableBase !== lib.tableBase) throw new Error(WRONG_TABLE(name, tableBase, lib.tableBase));
        return lib.base;
      };
      const fs = { findObject: (path) => module.FS.findObject(path), readFile: (path) => module.FS.readFile(path) };
      try {
        for (const lib of meta.libs) {
          if (module.LDSO.loadedLibsByName[lib.name]) continue; // a dependency loaded it
          // The flags Pyodide's own loader gives a package's library (loadDynlib).
          const flags = { loadAsync: false, nodelete: true, allowUndefined: true, global: lib.global, fs };
          const scope = lib.global ? null : {};
          const ready = compiled.get(lib.name);
          if (!ready) {
            module.loadDynamicLibrary(lib.name, flags, scope);
          } else { // what loadDynamicLibrary does with a library's bytes, given it compiled
            const dso = module.newDSO(lib.name, undefined, 'loading');
            dso.refcount = Infinity;
            dso.global = lib.global;
            const exports = module.loadWebAssemblyModule(ready, flags, lib.name, scope);
            if (lib.global) module.mergeLibSymbols(exports, lib.name);
            dso.exports = exports;
          }
          const base = lib.name.split('/').at(-1);
          module.LDSO.loadedLibsByName[base] ||= module.LDSO.loadedLibsByName[lib.name];
        }
      } finally {
        delete module.placeLibrary;
      }
      if (module.wasmTable.length !== meta.tableLength) {
        throw new Error(TABLE_DIFFERS(module.wasmTable.length, meta.tableLength));
      }
      // dlopen's handles live in the heap; the libraries they name, in JavaScript.
      for (const [handle, name] of Object.entries(meta.handles)) {
        module.LDSO.loadedLibsByHandle[handle] = module.LDSO.loadedLibsByName[name];
      }
    };
  }

  // Block sizes free memory is zeroed with, largest first: each is taken until the heap
  // would grow, so what is left unzeroed is smaller than the last.
  const SCRUB_SIZES = [1 << 20, 1 << 16, 1 << 12, 1 << 8];

  /**
   * Zero the free memory of `module`'s allocator, between jobs, before the heap is copied:
   * the freed buffers of the job before (a 1024 px image's are 50 MB) would otherwise go into
   * the snapshot as data that neither compresses nor means anything. Every free block is
   * taken with calloc, which zeroes it, largest sizes first until the heap would grow, then
   * given back; the allocator is as valid as before (the heap grows by less than the largest
   * size at most). Returns the bytes zeroed.
   */
  function scrub(module) {
    const taken = [];
    let zeroed = 0;
    try {
      for (const size of SCRUB_SIZES) {
        const top = module._sbrk(0);
        for (;;) {
          const block = module._calloc(1, size);
          if (!block) break;
          taken.push(block);
          if (module._sbrk(0) !== top) break; // from new memory: the free blocks are used up
          zeroed += size;
        }
      }
    } finally {
      for (const block of taken) module._free(block);
    }
    return zeroed;
  }

  /**
   * A heap copy of `pyodide` (started with `_makeSnapshot`), or null with the reason when
   * Python holds something that cannot be restored. Pyodide 0.27.7 insists that its record of
   * loaded packages is empty in a snapshot: it is emptied for the copy and put back.
   */
  function heapCopy(pyodide) {
    const loaded = { ...pyodide.loadedPackages };
    for (const name of Object.keys(loaded)) delete pyodide.loadedPackages[name];
    try {
      return { heap: pyodide.makeMemorySnapshot(), packages: loaded };
    } finally {
      Object.assign(pyodide.loadedPackages, loaded);
    }
  }

  return { usable, key, recorder, pack, save, find, unpack, drop, wheels, beforeHeapRestore, scrub, heapCopy };
})();
