// Where a File input saves how far its output has acknowledged each file, so a
// restart resumes there. A file is known by device, inode and a fingerprint of
// its first bytes: a rotated or replaced file that reuses an inode is not taken
// for the old one.
import { readFileSync, readSync, renameSync, writeFileSync } from 'node:fs';
import { isMissing } from './system-errors.js';

/** Bytes at the start of a file that identify it with its device and inode. */
export const FINGERPRINT_BYTES = 256;
/** Entries kept for files no longer read, most recent first. */
const KEEP_ENTRIES = 1000;

export interface CheckpointEntry {
  path: string;
  dev: number;
  ino: number;
  /** Hex of the file's first bytes (up to FINGERPRINT_BYTES) when it was last saved. */
  fingerprint: string;
  /** Offset just after the last acknowledged frame. */
  position: number;
}

/** The first bytes of the open file `fd`, as hex. */
export function fingerprintOf(fd: number, length = FINGERPRINT_BYTES): string {
  const buffer = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const count = readSync(fd, buffer, got, length - got, got);
    if (count === 0) break;
    got += count;
  }
  return buffer.subarray(0, got).toString('hex');
}

/** Whether the open file `fd` is the one `entry` describes. */
export function sameFile(entry: CheckpointEntry, fd: number, dev: number, ino: number): boolean {
  if (entry.dev !== dev || entry.ino !== ino) return false;
  const length = entry.fingerprint.length / 2;
  return fingerprintOf(fd, length) === entry.fingerprint;
}

export class CheckpointFile {
  private entries: CheckpointEntry[];

  constructor(readonly path: string) {
    this.entries = load(path);
  }

  /** Saved entries, most recently saved first. */
  get saved(): readonly CheckpointEntry[] {
    return this.entries;
  }

  /** Writes `current` (files being read) and keeps older entries for other files; atomic (write then rename). */
  save(current: readonly CheckpointEntry[]): void {
    const seen = new Set(current.map((e) => `${e.dev}:${e.ino}`));
    const older = this.entries.filter((e) => !seen.has(`${e.dev}:${e.ino}`));
    this.entries = [...current, ...older].slice(0, KEEP_ENTRIES);
    const temporary = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify({ version: 1, files: this.entries }, null, 1) + '\n');
    renameSync(temporary, this.path);
  }
}

function load(path: string): CheckpointEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
  let data: { version?: unknown; files?: unknown } | null;
  try {
    data = JSON.parse(text) as typeof data;
  } catch {
    // JSON.parse's message quotes the text, line breaks and all: the error must stay one line.
    throw new Error('not a checkpoint file of this program (not JSON)');
  }
  if (data?.version !== 1 || !Array.isArray(data.files)) throw new Error('not a checkpoint file of this program (version 1)');
  return (data.files as Array<CheckpointEntry | null>).filter(
    (e): e is CheckpointEntry =>
      typeof e === 'object' && e !== null && typeof e.path === 'string' && Number.isSafeInteger(e.position) && typeof e.fingerprint === 'string',
  );
}
