// Builds the benchmark corpus: realistic ~170-byte NDJSON log events, cached in the temp folder.
import { existsSync, mkdirSync, openSync, writeSync, closeSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const hosts = ['web-01', 'web-02', 'api-03', 'db-primary', 'worker-7'];
const levels = ['info', 'info', 'info', 'warn', 'error', 'debug'];
const messages = [
  'GET /api/v1/orders 200',
  'user login succeeded',
  'cache miss for key session:8c1f',
  'slow query detected',
  'payment provider timeout, retrying',
  'POST /api/v1/cart 201',
];

/** One event as a JSON line (no LF). Deterministic for a given index. */
export function event(i) {
  const t = new Date(Date.UTC(2026, 10, 22, 0, 0, 0) + i * 7).toISOString();
  return JSON.stringify({
    '@timestamp': t,
    host: hosts[i % hosts.length],
    app: 'shop',
    level: levels[i % levels.length],
    message: messages[i % messages.length],
    pid: 1000 + (i % 97),
    request_id: (i * 2654435761 >>> 0).toString(16).padStart(8, '0'),
    duration_ms: (i % 1000) / 10,
  });
}

/** Path of a file holding `count` events, one per line; made once and reused. */
export function corpusFile(count = 1_000_000) {
  return cachedLines(`events-${count}.ndjson`, count, event);
}

/**
 * Path of `name` in the bench temp folder, holding `line(i)` for i below `count`,
 * one per line; written once (through a partial file, renamed) and reused.
 */
export function cachedLines(name, count, line) {
  const dir = join(tmpdir(), 'message-passing-bench');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  if (existsSync(path)) return path;
  const partial = `${path}.${process.pid}.partial`;
  const fd = openSync(partial, 'w');
  let block = [];
  for (let i = 0; i < count; i++) {
    block.push(line(i));
    if (block.length === 10_000) {
      writeSync(fd, block.join('\n') + '\n');
      block = [];
    }
  }
  if (block.length) writeSync(fd, block.join('\n') + '\n');
  closeSync(fd);
  renameSync(partial, path);
  return path;
}
