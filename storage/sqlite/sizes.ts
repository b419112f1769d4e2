// The SQLite store's memory sizes, in a module of their own with no imports: the config module
// checks the server's --sqlite-* flags against them and shows them in --help, and must not load
// better-sqlite3 to do so (the reconciler loads the config module too).

/** SQLite's compile-time ceiling on mmap_size (SQLITE_MAX_MMAP_SIZE): a larger value is cut to it silently. */
export const SQLITE_MAX_MMAP_BYTES = 0x7fff0000;

/**
 * Defaults sized for a fleet (2,000 hosts, 100,000 live containers and their history: a file of a
 * few hundred MiB). With SQLite's 2 MiB default cache every index write and most lookups in a large
 * store missed the cache and went to read(); lookups at 1 M records cost 1.6 x those at 1 k, and
 * seeding 1 M records took 15 minutes (docs/benchmarks.md). The map's pages are file-backed and
 * shared with the OS page cache, so the kernel can reclaim them under memory pressure.
 */
export const DEFAULT_CACHE_SIZE_BYTES = 64 * 1024 * 1024;
/**
 * The whole file, up to SQLite's ceiling. A store of 1 M records is a file of about 1.9 GiB
 * (100,000 records: 189 MiB); with 1 GiB mapped, the other half of its pages went through read()
 * and a 64 MiB cache they could not fit in, which is where lookups at 1 M records lost to lookups
 * at 1 k (100,000 records, fully mapped, did not). Mapped pages are file-backed: they count in RSS
 * once touched, but the kernel can take them back.
 */
export const DEFAULT_MMAP_SIZE_BYTES = SQLITE_MAX_MMAP_BYTES;
