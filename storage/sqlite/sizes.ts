// The SQLite store's memory sizes, in a module of their own with no imports: the config module
// checks the server's --sqlite-* flags against them and shows them in --help, and must not load
// better-sqlite3 to do so (the reconciler loads the config module too).

/** SQLite's compile-time ceiling on mmap_size (SQLITE_MAX_MMAP_SIZE): a larger value is cut to it silently. */
export const SQLITE_MAX_MMAP_BYTES = 0x7fff0000;

/**
 * Page cache: 8 MiB (2,048 pages of 4 KiB). Reads of the database file go through the memory map
 * below, so the cache mostly holds pages being written and pages whose newest copy is in the WAL.
 * It is not larger because SQLite pays for its size at the end of most write transactions: when a
 * B-tree page split reorders the new sibling pages (balance_nonroot in sqlite3.c), SQLite swaps
 * their page numbers through the number of the page holding the lock byte (page 262,145 at 4 KiB
 * pages). In a file under 1 GiB that raises the cache's highest page number above the file's
 * size, so the commit's truncation of the cache (pager_end_transaction -> pcache1TruncateUnsafe)
 * scans the whole cache hash table instead of its tail: a cost that grows with the pages cached,
 * paid per commit whatever the commit's size. With 64 MiB (about 9,500 pages cached in a
 * 20,000-record store) that scan was most of a small snapshot's fixed cost; with 8 MiB a
 * 10-container snapshot costs a quarter less per container (docs/architecture.md). 1-2 MiB
 * (SQLite's own default is 2 MiB) made big write transactions spill dirty pages to the WAL
 * before their commit.
 */
export const DEFAULT_CACHE_SIZE_BYTES = 8 * 1024 * 1024;
/**
 * The whole file, up to SQLite's ceiling. A store of 1 M records is a file of about 1.9 GiB
 * (100,000 records: 189 MiB); with 1 GiB mapped, the other half of its pages went through read()
 * and a cache they could not fit in, which is where lookups at 1 M records lost to lookups
 * at 1 k (100,000 records, fully mapped, did not). Mapped pages are file-backed: they count in RSS
 * once touched, but the kernel can take them back.
 */
export const DEFAULT_MMAP_SIZE_BYTES = SQLITE_MAX_MMAP_BYTES;
