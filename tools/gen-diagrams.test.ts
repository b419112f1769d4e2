import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { lifecycleMarkdown, stateDiagram } from './gen-diagrams.js';
import { containerMachine } from '../reconciler/machines/container.machine.js';
import { reporterMachine } from '../reconciler/machines/reporter.machine.js';

describe('generated lifecycle diagrams', () => {
  it('docs/lifecycle.md is exactly what the machines generate (run npm run docs:diagrams)', () => {
    const committed = readFileSync(new URL('../docs/lifecycle.md', import.meta.url), 'utf8');
    expect(committed).toBe(lifecycleMarkdown());
  });

  it('draws every container state, the guarded observation edges and the final state', () => {
    const d = stateDiagram(containerMachine);
    expect(d.startsWith('stateDiagram-v2\n  [*] --> unobserved')).toBe(true);
    expect(d).toContain('pending --> stopped : agent.observed [observedStopped]');
    expect(d).toContain('running --> running : agent.observed [restartedWhileRunning]');
    expect(d).toContain('stopped --> gone : container.vanished');
    expect(d).toContain('gone --> [*]');
    expect(d).not.toMatch(/gone --> (pending|running|stopping|stopped)/);
  });

  it('labels delays and invoked-actor outcomes in words', () => {
    const d = stateDiagram(reporterMachine);
    expect(d).toContain('backingOff --> sending : after retryDelay');
    expect(d).toContain('sending --> rejected : sendBatch failed [isTerminal]');
    expect(d).toContain('sending --> sending : sendBatch done [moreQueued]');
  });
});
