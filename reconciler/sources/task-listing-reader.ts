// Reads the ECS agent's /v1/tasks body as it arrives and hands over one element of its `Tasks`
// array at a time, so the daemon never holds the whole body, nor the JSON tree of every task.
//
// Why: the agent lists a stopped task for ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION (3 h), so a batch
// host's listing runs to megabytes. Read whole, it sat in memory three times over (the chunks,
// their concatenation, the string) plus the parsed tree of every task, at once, every pass: about
// 5.5 × the body, on a daemon that lives under a 64 MiB limit.
//
// Contract: the body must be one JSON object; anything else, or any JSON syntax error anywhere in
// it, throws ListingSyntaxError (checked as strictly as JSON.parse: every element and every other
// top-level value is parsed by JSON.parse itself; this reader only finds where each one ends and
// checks the punctuation between them). Duplicate top-level keys behave as in JSON.parse: the last
// one wins, so a second `Tasks` starts the list again (`onTasksStart`).
//
// How it finds an element's end cheaply: one sticky regular expression skips everything but
// brackets outside strings, so the JavaScript loop runs once per bracket, not once per character;
// V8 compiles regular expressions to machine code even when the daemon turns off its optimising
// compiler (cli/v8-flags.ts).
import { StringDecoder } from 'node:string_decoder';

export class ListingSyntaxError extends Error {
  override name = 'ListingSyntaxError';
  readonly code = 'ERR_LISTING_SYNTAX';
}

export interface TaskListingEvents {
  /** A `Tasks` key whose value is an array begins (again, for a duplicate key). */
  onTasksStart(): void;
  /** One element of that array, as JSON.parse returns it; `index` counts from 0 in its array. */
  onElement(element: unknown, index: number): void;
  /** A top-level value other than an array under `Tasks`, as JSON.parse returns it. */
  onValue(key: string, value: unknown): void;
}

/** Largest single value (one task, or one other top-level value), in UTF-16 code units. */
export const MAX_VALUE_CHARS = 4 * 1024 * 1024;

/**
 * Everything up to the next bracket that is not inside a string (a string counts only when
 * closed). Strings are matched as runs between escapes (the unrolled loop), not one character per
 * step: a sixth faster over an agent listing.
 */
const RUN = /(?:[^{}[\]"]+|"[^"\\]*(?:\\[^][^"\\]*)*")*/y;
const WHITESPACE = /[ \t\n\r]*/y;
const STRING = /"[^"\\]*(?:\\[^][^"\\]*)*"/y;
/** A number, true, false or null: everything up to a delimiter (JSON.parse then judges it). */
const BARE = /[^,\]}\s[{":]*/y;

type Phase =
  | 'start' // before the opening brace
  | 'first-key' // after `{`: a key or `}`
  | 'key' // after `,`: a key
  | 'colon'
  | 'value'
  | 'after-value' // `,` or `}`
  | 'first-element' // after `[` under Tasks: an element or `]`
  | 'element' // after `,` in Tasks
  | 'after-element' // `,` or `]`
  | 'done';

/** A value being read: from `start` to its end, which `scan` has looked for up to. */
interface Capture {
  start: number;
  scan: number;
  depth: number;
  kind: 'bracketed' | 'string' | 'bare';
  into: 'value' | 'element';
}

export class TaskListingReader {
  private readonly decoder = new StringDecoder('utf8');
  private text = '';
  private pos = 0;
  /** Characters dropped from the front of `text` so far (for error positions). */
  private dropped = 0;
  private phase: Phase = 'start';
  private key = '';
  private capture: Capture | undefined;
  private index = 0;

  constructor(private readonly events: TaskListingEvents) {}

  write(chunk: Buffer): void {
    this.append(this.decoder.write(chunk));
    this.run(false);
  }

  /** The body is complete: throws ListingSyntaxError unless it was one whole JSON object. */
  end(): void {
    this.append(this.decoder.end());
    this.run(true);
    if (this.phase !== 'done') this.fail(this.text.length === 0 && this.dropped === 0 ? 'empty body' : 'body ends before the JSON object does');
  }

  private append(more: string): void {
    // Keep only what is still unread: the value being captured, or nothing before `pos`.
    const keep = this.capture ? this.capture.start : this.pos;
    if (keep > 0) {
      this.text = this.text.slice(keep);
      this.dropped += keep;
      this.pos -= keep;
      if (this.capture) {
        this.capture.scan -= keep;
        this.capture.start = 0;
      }
    }
    if (more) this.text += more;
  }

  private fail(message: string): never {
    throw new ListingSyntaxError(`body is not JSON: ${message} (at character ${this.dropped + this.pos})`);
  }

  /** Advances as far as the text allows; with `final`, nothing more will come. */
  private run(final: boolean): void {
    for (;;) {
      if (this.capture) {
        if (!this.continueCapture(final)) return;
        continue;
      }
      WHITESPACE.lastIndex = this.pos;
      WHITESPACE.exec(this.text);
      this.pos = WHITESPACE.lastIndex;
      if (this.pos >= this.text.length) return;
      const c = this.text[this.pos];
      switch (this.phase) {
        case 'start':
          // Not an object: what JSON.parse would make of the rest no longer matters.
          if (c !== '{') throw new ListingSyntaxError('expected a JSON object');
          this.pos++;
          this.phase = 'first-key';
          break;
        case 'first-key':
          if (c === '}') {
            this.pos++;
            this.phase = 'done';
            break;
          }
        // falls through: a key
        case 'key': {
          if (c !== '"') this.fail('expected a key');
          STRING.lastIndex = this.pos;
          if (!STRING.exec(this.text)) {
            if (final) this.fail('unterminated key');
            return; // the key continues in the next chunk
          }
          this.key = this.parse(this.text.slice(this.pos, STRING.lastIndex)) as string;
          this.pos = STRING.lastIndex;
          this.phase = 'colon';
          break;
        }
        case 'colon':
          if (c !== ':') this.fail('expected ":"');
          this.pos++;
          this.phase = 'value';
          break;
        case 'value':
          if (this.key === 'Tasks' && c === '[') {
            this.pos++;
            this.index = 0;
            this.events.onTasksStart();
            this.phase = 'first-element';
          } else {
            this.startCapture('value');
          }
          break;
        case 'after-value':
          if (c !== ',' && c !== '}') this.fail('expected "," or "}"');
          this.pos++;
          this.phase = c === ',' ? 'key' : 'done';
          break;
        case 'first-element':
          if (c === ']') {
            this.pos++;
            this.phase = 'after-value';
            break;
          }
          this.startCapture('element');
          break;
        case 'element':
          this.startCapture('element');
          break;
        case 'after-element':
          if (c !== ',' && c !== ']') this.fail('expected "," or "]"');
          this.pos++;
          this.phase = c === ',' ? 'element' : 'after-value';
          break;
        case 'done':
          this.fail('more after the JSON object');
      }
    }
  }

  private startCapture(into: Capture['into']): void {
    const c = this.text[this.pos];
    const kind = c === '{' || c === '[' ? 'bracketed' : c === '"' ? 'string' : 'bare';
    if (kind === 'bare' && (c === '}' || c === ']' || c === ',' || c === ':')) this.fail(`unexpected "${c}"`);
    this.capture = { start: this.pos, scan: this.pos, depth: 0, kind, into };
  }

  /** Looks for the end of the captured value; false when it needs more text. */
  private continueCapture(final: boolean): boolean {
    const cap = this.capture!;
    const text = this.text;
    let end = -1;
    if (cap.kind === 'bracketed') {
      let at = cap.scan;
      for (;;) {
        RUN.lastIndex = at;
        RUN.exec(text);
        at = RUN.lastIndex;
        if (at >= text.length || text[at] === '"') break; // more text needed (or an unterminated string)
        const c = text[at++];
        if (c === '{' || c === '[') cap.depth++;
        else if (--cap.depth === 0) {
          end = at;
          break;
        }
      }
      cap.scan = at;
    } else {
      const re = cap.kind === 'string' ? STRING : BARE;
      re.lastIndex = cap.start;
      const matched = re.exec(text) !== null;
      // A bare value that reaches the end of the text may go on in the next chunk.
      if (matched && (cap.kind === 'string' || re.lastIndex < text.length)) end = re.lastIndex;
      else if (matched && final) end = re.lastIndex;
      cap.scan = text.length;
    }
    if (end < 0) {
      if (text.length - cap.start > MAX_VALUE_CHARS) this.fail(`a single value longer than ${MAX_VALUE_CHARS} characters`);
      if (final) {
        this.pos = cap.scan;
        this.fail('body ends inside a value');
      }
      return false;
    }
    this.pos = end;
    this.capture = undefined;
    const value = this.parse(text.slice(cap.start, end));
    if (cap.into === 'element') {
      this.events.onElement(value, this.index++);
      this.phase = 'after-element';
    } else {
      this.events.onValue(this.key, value);
      this.phase = 'after-value';
    }
    return true;
  }

  private parse(json: string): unknown {
    try {
      return JSON.parse(json);
    } catch (error) {
      throw new ListingSyntaxError(`body is not JSON: ${(error as Error).message}`, { cause: error });
    }
  }
}
