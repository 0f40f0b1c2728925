// What the Redis input and output share: url checks, key templates, which failures are retried.
import { ErrorReply } from 'redis';
import * as redis from 'redis';
import { describe, expect, it } from 'vitest';
import { isRetryable, KeyTemplate, redisReason, safeUrl, urlProblem } from '../../src/common/redis.js';

describe('urlProblem', () => {
  it('accepts redis:// and rediss:// urls with an optional database number', () => {
    expect(urlProblem('redis://127.0.0.1:6379')).toBeUndefined();
    expect(urlProblem('rediss://user:secret@cache.example:6380/2')).toBeUndefined();
  });
  it('says what is wrong with the others', () => {
    expect(urlProblem('127.0.0.1:6379')).toMatch(/malformed '127\.0\.0\.1:6379' \(expected redis:\/\/HOST:PORT/);
    expect(urlProblem('localhost:6379')).toMatch(/must start with redis:\/\//);
    expect(urlProblem('http://127.0.0.1')).toMatch(/must start with redis:\/\//);
    expect(urlProblem('not a url')).toMatch(/malformed/);
    expect(urlProblem('redis://127.0.0.1:6379/cache')).toMatch(/database .* must be a number/);
  });
});

it('safeUrl hides the password', () => {
  expect(safeUrl('redis://user:secret@127.0.0.1:6379/1')).toBe('redis://user:***@127.0.0.1:6379/1');
  expect(safeUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
});

describe('KeyTemplate', () => {
  it('a name without placeholders is fixed', () => {
    const template = new KeyTemplate('key', 'events');
    expect(template.fixed).toBe('events');
    expect(template.resolve({})).toEqual({ name: 'events' });
  });
  it('fills %{field} from each message, dotted paths included', () => {
    const template = new KeyTemplate('key', 'logs:%{host.name}:%{level}');
    expect(template.fixed).toBeUndefined();
    expect(template.resolve({ host: { name: 'web-1' }, level: 'info' })).toEqual({ name: 'logs:web-1:info' });
    expect(template.resolve({ host: { name: 'web-1' }, level: 3 })).toEqual({ name: 'logs:web-1:3' });
  });
  it('a message without the field, or with an empty or non-scalar one, has no name', () => {
    const template = new KeyTemplate('channel', 'c:%{host}');
    expect(template.resolve({})).toEqual({ problem: 'channel c:%{host}: the message has no field host' });
    expect(template.resolve({ host: '' })).toEqual({ problem: 'channel c:%{host}: field host is empty' });
    expect(template.resolve({ host: { a: 1 } })).toEqual({ problem: 'channel c:%{host}: field host is not a string or a number' });
    expect(template.resolve('a string')).toEqual({ problem: 'channel c:%{host}: the message has no field host' });
  });
  it('a malformed template is refused', () => {
    expect(() => new KeyTemplate('key', 'a:%{host')).toThrow("key: '%{' without a closing '}' in a:%{host");
    expect(() => new KeyTemplate('key', 'a:%{}')).toThrow('key: empty placeholder %{} in a:%{}');
  });
});

describe('isRetryable', () => {
  it('retries lost connections and answers that mean "not now", not answers that will not change', () => {
    expect(isRetryable(redis, new Error('Socket closed unexpectedly'))).toBe(true);
    expect(isRetryable(redis, new ErrorReply('LOADING Redis is loading the dataset in memory'))).toBe(true);
    expect(isRetryable(redis, new ErrorReply("OOM command not allowed when used memory > 'maxmemory'."))).toBe(true);
    expect(isRetryable(redis, new ErrorReply('READONLY You can\'t write against a read only replica.'))).toBe(true);
    expect(isRetryable(redis, new ErrorReply('WRONGTYPE Operation against a key holding the wrong kind of value'))).toBe(false);
    expect(isRetryable(redis, new ErrorReply('ERR syntax error'))).toBe(false);
  });
  it('redisReason says system errors in words', () => {
    expect(redisReason(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))).toBe(
      'connection refused (is the server running, on that port?)',
    );
    expect(redisReason(new Error('Socket closed unexpectedly'))).toBe('the server closed the connection');
  });
});
