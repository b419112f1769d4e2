// `--data FILE`: the whole database as one JSON document, loaded at start and rewritten after
// changes. Writes go to a temporary file that is renamed over the target, so a crash never leaves
// a half-written file. Saves are coalesced: a burst of writes costs one save.
import { readFileSync, renameSync, writeFileSync, existsSync, unlinkSync } from 'node:fs';
import type { DatabaseFile } from './database.js';

export class DataFileError extends Error {
  override readonly name = 'DataFileError';
  readonly code = 'SIMPLEDB_LOCAL_DATA_FILE';
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The file's content, or undefined when it does not exist yet. */
export function readDataFile(path: string): DatabaseFile | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as DatabaseFile;
  } catch (err) {
    throw new DataFileError(`cannot read data file ${path}: ${(err as Error).message}`, path, { cause: err });
  }
}

export function writeDataFileAtomically(path: string, file: DatabaseFile): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(file));
    renameSync(tmp, path);
  } catch (err) {
    try {
      if (existsSync(tmp)) unlinkSync(tmp);
    } catch {
      // the original error is the one worth reporting
    }
    throw new DataFileError(`cannot write data file ${path}: ${(err as Error).message}`, path, { cause: err });
  }
}

/** Coalesces save requests into one write on the next turn of the event loop. */
export class DataFileSaver {
  private pending: NodeJS.Immediate | undefined;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => DatabaseFile,
    private readonly onError: (err: Error) => void,
  ) {}

  schedule(): void {
    if (this.pending) return;
    this.pending = setImmediate(() => {
      this.pending = undefined;
      this.saveNow();
    });
  }

  /** Writes now if a save is pending (used at shutdown). */
  flush(): void {
    if (!this.pending) return;
    clearImmediate(this.pending);
    this.pending = undefined;
    this.saveNow();
  }

  private saveNow(): void {
    try {
      writeDataFileAtomically(this.path, this.snapshot());
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
