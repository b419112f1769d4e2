import { describe, expect, it } from 'vitest';
import { flaskJsonify } from './legacy-format.js';
import { legacyState } from './legacy-report.js';

describe('flaskJsonify', () => {
  it('lays out JSON exactly as Flask 0.10.1 jsonify on Python 2.7 did (sorted, indent 2, ", " line ends, ASCII escapes)', () => {
    // Expected bytes produced by Python: json.dumps(value, indent=2, sort_keys=True) (2.7 separators).
    const expected = '{\n  "a": "x\\n\\"/", \n  "b": [\n    1, \n    {\n      "c": "\\u00e9\\u2603", \n      "d": null, \n      "e": {}\n    }\n  ], \n  "z": []\n}';
    expect(flaskJsonify({ z: [], b: [1, { e: {}, d: null, c: 'é☃' }], a: 'x\n"/' })).toBe(expected);
  });

  it('lays out JSON on one line for an XMLHttpRequest, as jsonify did then (indent None: ", " and ": " separators)', () => {
    // Expected bytes produced by Python 2.7: json.dumps(value, sort_keys=True).
    const expected = '{"a": "x\\n\\"/, : \\u007f", "b": [1, {"c": "\\u00e9\\u2603", "d": null, "e": {}}], "z": []}';
    expect(flaskJsonify({ z: [], b: [1, { e: {}, d: null, c: 'é☃' }], a: 'x\n"/, : \x7f' }, { xhr: true })).toBe(expected);
  });
});

describe('legacyState', () => {
  it.each([
    ['RUNNING', 'RUNNING', 'running'],
    ['RUNNING', 'PENDING', 'pending'],
    ['RUNNING', 'CREATED', 'pending'],
    ['STOPPED', 'RUNNING', 'stopping'],
    ['STOPPED', 'STOPPED', 'stopped'],
    ['RUNNING', 'STOPPED', 'stopped'],
  ])('desired %s, known %s → %s', (desired, known, state) => {
    expect(legacyState(desired, known)).toBe(state);
  });
});
