import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readFixture } from '../../test/fixtures.js';
import { AgentTasksParser, parseAgentTask } from './ecs-agent.js';
import { ListingSyntaxError, MAX_VALUE_CHARS, TaskListingReader } from './task-listing-reader.js';
import { ObservationError } from './types.js';

/**
 * What a parse ends in: the tasks, or the error's code and message. A body that is not a JSON
 * object is `syntax`: JSON.parse and the reader word that differently (and a reader of a stream
 * may tell "not an object" before it knows whether the rest is JSON).
 */
type Outcome = { tasks: unknown } | { code: string; message: string } | { code: 'ERR_GARBAGE'; syntax: true };
const SYNTAX = { code: 'ERR_GARBAGE', syntax: true } as const;
const isSyntax = (message: string) => message.includes('body is not JSON') || message.endsWith('expected a JSON object');

/**
 * The reference the reader is held to: the whole body decoded by JSON.parse, then the listing's
 * rules as the contract at the top of ecs-agent.ts states them, written here on their own.
 */
function whole(body: string): Outcome {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return SYNTAX;
  }
  try {
    if (typeof json === 'object' && json !== null && !Array.isArray(json) && 'AvailableCommands' in json) return { code: 'ERR_WRONG_PATH', message: 'ECS agent /v1/tasks: answered with AvailableCommands (wrong path or not an agent)' };
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return SYNTAX;
    const listing = (json as { Tasks?: unknown }).Tasks;
    if (listing === null) return { code: 'ERR_ZERO_VALUE', message: 'ECS agent /v1/tasks: zero-valued body {"Tasks":null}' };
    if (!Array.isArray(listing)) return { code: 'ERR_GARBAGE', message: 'ECS agent /v1/tasks: Tasks: expected an array' };
    return { tasks: listing.map((t, i) => parseAgentTask(t, `Tasks[${i}]`)) };
  } catch (error) {
    const e = error as ObservationError;
    return isSyntax(e.message) ? SYNTAX : { code: e.code, message: e.message };
  }
}

/** The daemon's way: the body's bytes in the given pieces, read as they come. */
function streamed(body: string, cuts: number[] = []): Outcome {
  const bytes = Buffer.from(body);
  const at = [...new Set(cuts.map((c) => Math.min(c, bytes.length)))].sort((a, b) => a - b);
  const parser = new AgentTasksParser();
  try {
    let from = 0;
    for (const to of [...at, bytes.length]) {
      parser.write(bytes.subarray(from, to));
      from = to;
    }
    return { tasks: parser.end() };
  } catch (error) {
    expect(error).toBeInstanceOf(ObservationError);
    const e = error as ObservationError;
    return isSyntax(e.message) ? SYNTAX : { code: e.code, message: e.message };
  }
}

function same(actual: Outcome, expected: Outcome): void {
  expect(actual).toEqual(expected);
}

const port = fc.record({ ContainerPort: fc.integer({ min: 0, max: 65535 }), HostPort: fc.integer({ min: 0, max: 65535 }), Protocol: fc.constantFrom('tcp', 'udp') }, { requiredKeys: [] });
const container = fc.record(
  {
    DockerId: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.constant('')),
    DockerName: fc.string(),
    Name: fc.oneof(fc.string({ minLength: 1 }), fc.constant('app')),
    Image: fc.oneof(fc.constant('nginx:1.27'), fc.string({ unit: 'grapheme' })),
    CreatedAt: fc.constantFrom('2026-12-05T06:00:00.123456789Z', '0001-01-01T00:00:00Z'),
    Ports: fc.array(port, { maxLength: 3 }),
    RestartCount: fc.nat(),
  },
  { requiredKeys: ['DockerId', 'DockerName', 'Name'] },
);
const task = fc.record(
  {
    Arn: fc.constantFrom('arn:aws:ecs:us-east-1:012345678910:task/prod/0123456789abcdef0123456789abcdef', 'arn:aws:ecs:us-west-2:012345678910:task/1dc5c17a-422b-4dc4-b493-371970c6c4d6', 'a/b'),
    DesiredStatus: fc.constantFrom('RUNNING', 'STOPPED', ''),
    KnownStatus: fc.constantFrom('PENDING', 'RUNNING', 'STOPPED', 'DEAD'),
    Family: fc.string({ minLength: 1, unit: 'grapheme' }),
    Version: fc.constantFrom('1', '12'),
    Containers: fc.oneof(fc.array(container, { maxLength: 3 }), fc.constant(null)),
  },
  { requiredKeys: ['Arn', 'KnownStatus', 'Family', 'Version'] },
);
/** Top-level objects the agent sends and the ones it does not: listings, zero values, the command index, other keys. */
const topLevel = fc.oneof(
  fc.record({ Tasks: fc.array(task, { maxLength: 4 }) }),
  fc.dictionary(fc.constantFrom('Tasks', 'AvailableCommands', 'Other', '__proto__', 'T\u00e4sks'), fc.oneof(fc.array(task, { maxLength: 2 }), fc.jsonValue({ maxDepth: 2 }))),
  fc.jsonValue({ maxDepth: 3 }),
);
/** A body: the value serialised with or without whitespace, sometimes with a duplicate key spliced in. */
const body = fc.tuple(topLevel, fc.constantFrom(undefined, 1, '\t', ' \r\n'), fc.boolean(), fc.array(task, { maxLength: 1 })).map(([value, indent, duplicate, extra]) => {
  const text = JSON.stringify(value, null, indent);
  return duplicate && text.startsWith('{"') ? `{"Tasks":${JSON.stringify(extra)},${text.slice(1)}` : text;
});
/** A body broken the ways a network or a buggy agent breaks one. */
const broken = fc.tuple(body, fc.nat(), fc.boolean(), fc.constantFrom('cut', 'insert', 'delete'), fc.constantFrom('"', '\\', '{', '}', '[', ']', ',', ':', 'x', '\u00e9', '\n')).map(([text, n, nearPunctuation, how, ch]) => {
  // Half the time next to punctuation, where a reader of JSON's structure can go wrong.
  const punctuation = [...text.matchAll(/[{}[\],:"]/g)].map((m) => m.index);
  const i = nearPunctuation && punctuation.length ? punctuation[n % punctuation.length] : text.length === 0 ? 0 : n % text.length;
  if (how === 'cut') return text.slice(0, i);
  if (how === 'insert') return text.slice(0, i) + ch + text.slice(i);
  return text.slice(0, i) + text.slice(i + 1);
});
/** The bodies as the wire carries them: UTF-8 (a lone surrogate, left by a cut pair, becomes U+FFFD). */
const bodies = fc.oneof(body, broken).map((text) => Buffer.from(text).toString('utf8'));
const cuts = fc.array(fc.nat({ max: 4000 }), { maxLength: 12 });

describe('reading /v1/tasks as it arrives', () => {
  it('answers as JSON.parse plus the listing rules, for any body cut into any pieces', () => {
    fc.assert(
      fc.property(bodies, cuts, (text, at) => same(streamed(text, at), whole(text))),
      { numRuns: 600 },
    );
  });

  it('answers as JSON.parse for every agent sample, also one byte at a time', () => {
    for (const name of ['v1-tasks.docs.json', 'v1-tasks-dockerid.docs.json', 'v1-tasks-old-arn-stopped.docs.json', 'v1-tasks.ecs-agent-test.json', 'v1-tasks-taskarn.ecs-agent-test.json', 'v1-tasks-bridge-full.composed.json', 'v1-tasks-error-list.json', 'v1-tasks-error-single-task.json', 'root-available-commands.json']) {
      const text = readFixture(`ecs-agent/${name}`);
      const everyByte = Array.from({ length: Buffer.byteLength(text) }, (_, i) => i);
      same(streamed(text, everyByte), whole(text));
    }
    // The samples really are listings: the comparison is not between two errors.
    expect(streamed(readFixture('ecs-agent/v1-tasks-bridge-full.composed.json'))).toMatchObject({ tasks: expect.arrayContaining([expect.objectContaining({ family: expect.any(String) })]) });
  });

  it('keeps a character whose UTF-8 bytes are split between chunks', () => {
    const text = JSON.stringify({ Tasks: [{ Arn: 'a/b', KnownStatus: 'RUNNING', Family: 'caf\u00e9-\u{1F680}', Version: '1', Containers: [] }] });
    const bytes = Buffer.byteLength(text);
    for (let cut = 1; cut < bytes; cut++) same(streamed(text, [cut]), whole(text));
  });

  it('hands over each task as soon as its last byte arrives, holding no more than the task being read', () => {
    const seen: number[] = [];
    const reader = new TaskListingReader({ onTasksStart: () => {}, onElement: (_e, i) => seen.push(i), onValue: () => {} });
    const one = JSON.stringify({ Arn: 'a/b', KnownStatus: 'RUNNING', Family: 'f', Version: '1', Containers: [] });
    reader.write(Buffer.from(`{"Tasks":[${one},${one.slice(0, 10)}`));
    expect(seen).toEqual([0]);
    reader.write(Buffer.from(`${one.slice(10)},`));
    expect(seen).toEqual([0, 1]);
    for (let i = 0; i < 10_000; i++) reader.write(Buffer.from(`${one},`));
    expect(seen).toHaveLength(10_002);
    // What the reader keeps between chunks is what it has not finished reading, not the body.
    expect((reader as unknown as { text: string }).text.length).toBeLessThan(one.length * 2);
    reader.write(Buffer.from(`${one}]}`));
    reader.end();
    expect(seen).toHaveLength(10_003);
  });

  it('refuses a single value longer than its limit without waiting for the rest', () => {
    const reader = new TaskListingReader({ onTasksStart: () => {}, onElement: () => {}, onValue: () => {} });
    reader.write(Buffer.from('{"Tasks":[{"Arn":"'));
    const filler = Buffer.alloc(1024 * 1024, 'a');
    expect(() => {
      for (let i = 0; i <= MAX_VALUE_CHARS / filler.length; i++) reader.write(filler);
    }).toThrow(ListingSyntaxError);
  });

  // Around a valid task, so that only the syntax is wrong.
  const ok = '{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[]}';
  it.each([
    ['an empty body', ''],
    ['whitespace', ' \n'],
    ['a trailing comma', `{"Tasks":[${ok}],}`],
    ['a trailing comma in Tasks', `{"Tasks":[${ok},]}`],
    ['a leading comma in Tasks', `{"Tasks":[,${ok}]}`],
    ['two commas in Tasks', `{"Tasks":[${ok},,${ok}]}`],
    ['a missing comma in Tasks', `{"Tasks":[${ok} ${ok}]}`],
    ['a missing colon', `{"Tasks" [${ok}]}`],
    ['an unquoted key', `{Tasks:[${ok}]}`],
    ['Tasks closed by a brace', `{"Tasks":[${ok}}}`],
    ['the object closed by a bracket', `{"Tasks":[${ok}]]`],
    ['text after the object', `{"Tasks":[${ok}]} x`],
    ['a second object', `{"Tasks":[${ok}]}{}`],
    ['mismatched brackets inside a task', `{"Tasks":[${ok.slice(0, -3)}]}]}`],
    ['a leading zero', `{"Tasks":[${ok}],"N":01}`],
    ['a raw newline in a string', `{"Tasks":[${ok.replace('a/b', 'a\nb')}]}`],
    ['a byte-order mark', `\uFEFF{"Tasks":[${ok}]}`],
  ])('fails with ERR_GARBAGE on %s, as JSON.parse does', (_name, text) => {
    expect(streamed(`{"Tasks":[${ok}]}`)).toMatchObject({ tasks: [{ task_id: 'b' }] });
    expect(whole(text)).toEqual(SYNTAX);
    expect(streamed(text)).toEqual(SYNTAX);
  });

  it('stops at the first byte that cannot be JSON, before the body ends', () => {
    const parser = new AgentTasksParser();
    expect(() => parser.write(Buffer.from('{"Tasks":[]]'))).toThrow(expect.objectContaining({ code: 'ERR_GARBAGE', source: 'agent' }));
  });
});
