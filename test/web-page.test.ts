// The lookup page end to end in a real browser: Debian's chromium driven by playwright-core, against a
// real server on 127.0.0.1 seeded through the v2 report routes (test/support/seed.ts), with one host
// whose last report is older than the server's stale window.
//
// Screenshots go to test-output/web/ (gitignored) as artifacts of the run.
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { seedFleet, seedSharedPrefix, startLookupServer, type LookupServer, type SeededFleet } from './support/seed.js';
import { containerId, hostIdentity, instanceId, observation, taskArn, taskId } from '../storage/store.fixtures.js';
import type { TransitionBatch } from '../wire/index.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const SHOTS = fileURLToPath(new URL('../test-output/web/', import.meta.url));
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';

// Locally, no chromium skips the suite; in CI it must fail (a missing browser is a broken setup).
describe.skipIf(!haveChromium && !inCi)('lookup page in chromium', () => {
  const NOW = new Date();
  let api: LookupServer;
  let fleet: SeededFleet;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium package (see .ci/run)`);
    mkdirSync(SHOTS, { recursive: true });
    // Stale after 45 minutes, retired after 120: the stale host (silent 90) is stale until the clock moves.
    api = await startLookupServer({ now: NOW, hostStaleAfterMs: 45 * 60_000, hostGoneAfterMs: 120 * 60_000 });
    fleet = await seedFleet(api.url, { now: NOW, setServerTime: api.setNow, staleByMs: api.hostStaleAfterMs + 45 * 60_000 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  beforeEach(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // The page must not reach anything but the server under test.
    await context.route('**/*', (route) => (route.request().url().startsWith(api.url) ? route.continue() : route.abort()));
    page = await context.newPage();
    pageErrors.length = 0;
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // The page must work within its own Content-Security-Policy: a violation is a bug like an exception.
    page.on('console', (msg) => {
      if (msg.type() === 'error' && msg.text().includes('Content Security Policy')) pageErrors.push(msg.text());
    });
  });

  afterEach(async () => {
    await context?.close();
    expect(pageErrors).toEqual([]);
  });

  /** Waits until the result area shows the answer of `state` (found, not-found, ambiguous, ...). */
  async function settled(state: string): Promise<void> {
    await page.locator(`#result[data-state="${state}"]:not([aria-busy])`).waitFor();
  }

  async function search(id: string, state = 'found'): Promise<void> {
    await page.locator('#q').fill(id);
    await page.locator('#q').press('Enter');
    await settled(state);
  }

  async function open(path: string, state: string): Promise<void> {
    await page.goto(api.url + path);
    await settled(state);
  }

  const shot = (name: string) => page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });
  const containerCard = (id: string) => page.locator(`article.container[data-container-id="${id}"]`);

  it('finds a container by its full id and shows task, container, host, ports and links', async () => {
    const app = fleet.web.app;
    await open('/', 'intro');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('q'); // autofocus
    await search(app.container_id);

    expect(new URL(page.url()).searchParams.get('q')).toBe(app.container_id);
    expect(await page.locator('.match').getAttribute('data-kind')).toBe('container_id');
    const task = page.locator('section.task');
    await expect.poll(() => task.count()).toBe(1);
    expect(await task.locator('h2 .task-id').textContent()).toBe(fleet.web.taskId);
    const taskText = await task.locator('.task-facts').textContent();
    expect(taskText).toContain('web:3');
    expect(taskText).toContain(fleet.web.taskArn);

    const card = containerCard(app.container_id);
    expect(await card.locator('h3 .container-name').textContent()).toBe('app');
    expect(await card.locator('h3 .badge').textContent()).toBe('running');
    const text = (await card.textContent()) ?? '';
    for (const fact of [app.docker_name!, 'nginx:1.27', app.container_id, fleet.host.instance_id, '10.0.1.17', 'm5.large', 'us-east-1a', 'prod']) {
      expect(text).toContain(fact);
    }
    expect(await card.locator('.ports tbody tr td').allTextContents()).toEqual(['80', '32768', 'tcp']);
    expect(await card.locator('.facts dt', { hasText: /^Exit code$/ }).count()).toBe(0);
    await shot('lookup-full-id');
  });

  it('finds a container by its 12-hex short id', async () => {
    await open('/', 'intro');
    await search(fleet.web.app.container_id.slice(0, 12));
    expect(await page.locator('.match').getAttribute('data-kind')).toBe('container_prefix');
    await expect.poll(() => page.locator('article.container').count()).toBe(1);
    expect(await containerCard(fleet.web.app.container_id).count()).toBe(1);
  });

  it('finds every container of a task by task id', async () => {
    await open('/', 'intro');
    await search(fleet.web.taskId);
    expect(await page.locator('.match').getAttribute('data-kind')).toBe('task_id');
    const ids = await page.locator('article.container').evaluateAll((els) => els.map((e) => e.getAttribute('data-container-id')));
    expect(ids.sort()).toEqual([fleet.web.app.container_id, fleet.web.proxy.container_id].sort());
    expect(await page.locator('section.task').count()).toBe(1);
    expect(await page.locator('.summary').textContent()).toBe(`“${fleet.web.taskId}” matched by task id: 2 containers in 1 task.`);
    expect(await page.locator('#status').textContent()).toBe(await page.locator('.summary').textContent());
    await shot('lookup-task-id');
  });

  it('finds a task by its ARN (slashes and colons survive the URL)', async () => {
    await open('/', 'intro');
    await search(fleet.web.taskArn);
    expect(new URL(page.url()).searchParams.get('q')).toBe(fleet.web.taskArn);
    expect(await page.locator('.match').getAttribute('data-kind')).toBe('task_arn');
    expect(await page.locator('article.container').count()).toBe(2);
    expect(await page.locator('section.task').getAttribute('data-task-arn')).toBe(fleet.web.taskArn);
  });

  it('finds a container by its docker name', async () => {
    await open('/', 'intro');
    await search(fleet.web.proxy.docker_name!);
    expect(await page.locator('.match').getAttribute('data-kind')).toBe('docker_name');
    expect(await containerCard(fleet.web.proxy.container_id).locator('h3 .container-name').textContent()).toBe('proxy');
  });

  it('links to cAdvisor first, at the container on its instance, and the link can be followed', async () => {
    const app = fleet.web.app;
    await open(`/?q=${app.container_id}`, 'found');
    const links = containerCard(app.container_id).locator('ul.links a');
    expect(await links.first().getAttribute('data-link')).toBe('cadvisor');
    const expected = `http://10.0.1.17:${api.cadvisorPort}/docker/${app.container_id}`;
    expect(await links.first().getAttribute('href')).toBe(expected);

    // Follow it without leaving the machine: the instance's cAdvisor is answered by a route stub.
    await context.unrouteAll();
    await context.route(`http://10.0.1.17:${api.cadvisorPort}/**`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<title>cAdvisor</title>' }));
    const [popup] = await Promise.all([context.waitForEvent('page'), links.first().click()]);
    await popup.waitForLoadState();
    expect(popup.url()).toBe(expected);
    expect(await popup.title()).toBe('cAdvisor');
  });

  it("shows a stopped container's history as a timeline", async () => {
    const job = fleet.worker.job;
    await open(`/?q=${job.container_id.slice(0, 16)}`, 'found');
    const card = containerCard(job.container_id);
    expect(await card.locator('h3 .badge').textContent()).toBe('stopped');
    const exit = card.locator('.facts .pair', { has: page.locator('dt', { hasText: /^Exit code$/ }) });
    expect(await exit.locator('dd').textContent()).toBe('0');

    const events = card.locator('ol.timeline li');
    await expect.poll(() => events.count()).toBeGreaterThanOrEqual(3);
    const classes = await events.evaluateAll((els) => els.map((e) => e.className));
    expect(classes.slice(0, 3)).toEqual(['event to-pending', 'event to-running', 'event to-stopped']);
    const last = (await events.nth(2).textContent()) ?? '';
    expect(last).toMatch(/running\s*→\s*stopped/);
    expect(last).toContain('agent.observed');
    expect(await events.nth(0).locator('time').getAttribute('datetime')).toBe(new Date(NOW.getTime() - 21 * 60_000).toISOString());
    await card.scrollIntoViewIfNeeded();
    await shot('history-stopped');
  });

  it('lists the candidates of an ambiguous short id; one click shows it, back returns to the list', async () => {
    await open('/', 'intro');
    await search(fleet.ambiguousPrefix, 'ambiguous');
    const candidates = page.locator('.candidate-list a');
    const hrefs = await candidates.evaluateAll((els) => els.map((e) => e.getAttribute('href')));
    expect(hrefs.sort()).toEqual(fleet.twins.map((t) => `?q=${t.container_id}`).sort());
    await shot('ambiguous');

    const first = (await candidates.first().textContent()) ?? '';
    await candidates.first().click();
    await settled('found');
    expect(new URL(page.url()).searchParams.get('q')).toBe(first);
    expect(await containerCard(first).count()).toBe(1);

    await page.goBack();
    await settled('ambiguous');
    expect(await page.locator('#q').inputValue()).toBe(fleet.ambiguousPrefix);
  });

  it('says a short id matches more containers than the 20 the server lists, not that it matches 20', async () => {
    const other = await startLookupServer({ now: NOW });
    try {
      const ids = await seedSharedPrefix(other.url, { now: NOW, prefix: '5a5a5a5a5a5a', count: 25 });
      await context.route(`${other.url}/**`, (route) => route.continue());
      await page.goto(`${other.url}/?q=5a5a5a5a5a5a`);
      await settled('ambiguous');
      expect(await page.locator('.candidates .notice').textContent()).toBe(
        '“5a5a5a5a5a5a” matches more than 20 containers; type more of the id, or pick one of the first 20:',
      );
      expect(await page.locator('.candidate-list a').allTextContents()).toEqual(ids.slice(0, 20));
    } finally {
      await other.close();
    }
  });

  it("shows the task of a container the original agent reports (it knows the task id, not the ARN)", async () => {
    const other = await startLookupServer({ now: NOW });
    try {
      const id = containerId('legacy-web');
      const task = taskId('legacy-web');
      const entry = {
        container_id: id,
        container_name: 'app',
        container_port: '80',
        task_id: `prod/${task}`, // as the original agent derives it from a new-format ARN
        task_name: 'legacy-web',
        task_version: '4',
        instance_port: '32768',
        instance_ip: '10.0.3.4',
        instance_id: instanceId('legacy-host'),
        instance_type: 'm5.large',
        instance_az: 'us-east-1a',
        desired_status: 'RUNNING',
        known_status: 'RUNNING',
        host_name: 'ip-10-0-3-4',
        cluster_name: 'prod',
        ecs_agent_version: '1.80.0',
        sample_time: NOW.getTime() / 1000,
      };
      const res = await fetch(`${other.url}/report/map`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ['a'.repeat(64)]: entry }) });
      expect(res.status).toBe(200);
      await context.route(`${other.url}/**`, (route) => route.continue());

      for (const q of [id, task]) {
        await page.goto(`${other.url}/?q=${q}`);
        await settled('found');
        expect(await page.locator('.summary').textContent(), q).toMatch(/: 1 container in 1 task\.$/);
        const section = page.locator('section.task');
        expect(await section.locator('h2 .task-id').textContent(), q).toBe(task);
        const facts = (await section.locator('.task-facts').textContent()) ?? '';
        expect(facts, q).toContain('legacy-web:4');
        expect(facts, q).toContain('prod');
        expect(facts, q).not.toContain('Task ARN');
      }
    } finally {
      await other.close();
    }
  });

  it('says plainly when nothing matches, and shows the server message for a malformed id', async () => {
    await open('/', 'intro');
    await search('0123456789abcdef0123', 'not-found');
    expect(await page.locator('#result').textContent()).toBe('No container or task matches “0123456789abcdef0123”.');
    // The outcome is announced to screen readers through the status region.
    expect(await page.locator('#status[role="status"]').textContent()).toBe('No container or task matches “0123456789abcdef0123”.');

    await search('not an id', 'bad-request');
    expect(await page.locator('#result .notice.error').textContent()).toBe('"not an id" is not a container id (12-64 hex), task id, task ARN or docker name');
    // Dots only would resolve away in the lookup's URL (`v2/lookup/..` is `v2/`): refused as the server refuses a bad id.
    for (const dots of ['.', '..']) {
      await search(dots, 'bad-request');
      expect(await page.locator('#result .notice.error').textContent()).toBe(`"${dots}" is not a container id (12-64 hex), task id, task ARN or docker name`);
    }
    await shot('miss-and-bad-request');
  });

  it('tells a miss from a 404 of no lookup route (a proxy that does not pass /v2/ on), for ids and hosts', async () => {
    await context.route(`${api.url}/v2/**`, (route) =>
      route.fulfill({ status: 404, contentType: 'text/html', body: '<html><body><h1>404 Not Found</h1><hr>nginx</body></html>' }),
    );
    await open(`/?q=${fleet.web.app.container_id}`, 'error');
    const proxyPage = "The server answered 404: an HTML page, not the API's JSON: from a proxy or load balancer in between?";
    expect(await page.locator('#result .notice.error').textContent()).toBe(proxyPage);
    await search(fleet.host.instance_id, 'error');
    expect(await page.locator('#result .notice.error').textContent()).toBe(proxyPage);
    // A titled error page is named by its title, never shown as markup; plain text stays as it is.
    await context.unrouteAll();
    await context.route('**/*', (route) => (route.request().url().startsWith(api.url) ? route.continue() : route.abort()));
    await context.route(`${api.url}/v2/**`, (route) =>
      route.fulfill({ status: 502, contentType: 'text/html', body: '<!DOCTYPE html>\n<html><head><title>502 Bad\n Gateway</title></head><body><h1>502</h1></body></html>' }),
    );
    await search(fleet.web.app.container_id, 'error');
    expect(await page.locator('#result .notice.error').textContent()).toBe('The server answered 502: an HTML page ("502 Bad Gateway"), not the API\'s JSON: from a proxy or load balancer in between?');
    await context.unrouteAll();
    await context.route('**/*', (route) => (route.request().url().startsWith(api.url) ? route.continue() : route.abort()));
    await context.route(`${api.url}/v2/**`, (route) => route.fulfill({ status: 503, contentType: 'text/plain', body: 'upstream connect error' }));
    await search(fleet.web.taskId, 'error');
    expect(await page.locator('#result .notice.error').textContent()).toBe('The server answered 503: upstream connect error');

    await context.unrouteAll();
    await context.route('**/*', (route) => (route.request().url().startsWith(api.url) ? route.continue() : route.abort()));
    await context.route(`${api.url}/v2/**`, (route) => route.fulfill({ status: 404, contentType: 'application/json', body: JSON.stringify({ error: 'no_route', message: 'route GET /v2/lookup/x not found' }) }));
    await search(fleet.web.taskId, 'error');
    expect(await page.locator('#result .notice.error').textContent()).toBe('The server answered 404: route GET /v2/lookup/x not found');
  });

  it('opens a deep link /?q=<task ARN> directly, with the query in the search box', async () => {
    await open(`/?q=${encodeURIComponent(fleet.web.taskArn)}`, 'found');
    expect(await page.locator('#q').inputValue()).toBe(fleet.web.taskArn);
    expect(await page.locator('article.container').count()).toBe(2);
    expect(await page.title()).toContain(fleet.web.taskArn);
  });

  it('is keyboard friendly: / focuses the search box, and back walks through earlier searches', async () => {
    await open(`/?q=${fleet.web.app.container_id}`, 'found');
    await page.locator('.summary').click();
    await page.keyboard.press('/');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('q');
    await page.keyboard.press('Control+A');
    await page.keyboard.type(fleet.worker.taskId);
    await page.keyboard.press('Enter');
    await settled('found');
    expect(await containerCard(fleet.worker.job.container_id).count()).toBe(1);

    await page.goBack();
    await settled('found');
    expect(await containerCard(fleet.web.app.container_id).count()).toBe(1);
    expect(await page.locator('#q').inputValue()).toBe(fleet.web.app.container_id);
  });

  it('skips to the results without searching again: focus lands in the result, and Tab reaches its first link', async () => {
    const app = fleet.web.app;
    await open(`/?q=${app.container_id}`, 'found');
    const apiRequests: string[] = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname.startsWith('/v2/')) apiRequests.push(req.url());
    });
    await page.locator('a.skip').focus();
    await page.keyboard.press('Enter');
    await page.waitForTimeout(300);
    expect(new URL(page.url()).hash).toBe('#result');
    expect(apiRequests).toEqual([]);
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('result');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement && document.activeElement.dataset.link')).toBe('cadvisor');
  });

  it('flags the stale host in the hosts view, in words and not only in colour', async () => {
    await open('/', 'intro');
    await page.locator('#tab-hosts').click();
    await settled('hosts');
    expect(new URL(page.url()).searchParams.get('view')).toBe('hosts');
    expect(await page.locator('#tab-hosts').getAttribute('aria-current')).toBe('page');

    const stale = page.locator(`tr.host[data-instance-id="${fleet.staleHost.instance_id}"]`);
    const fresh = page.locator(`tr.host[data-instance-id="${fleet.host.instance_id}"]`);
    expect(await stale.getAttribute('class')).toBe('host stale');
    expect(await stale.locator('td[data-label="Status"]').textContent()).toBe('stale');
    expect(await stale.locator('td[data-label="Cluster"]').textContent()).toBe('staging');
    expect(Number(await stale.locator('td[data-label="Last report"]').getAttribute('data-seconds'))).toBe((api.hostStaleAfterMs + 45 * 60_000) / 1000);

    expect(await fresh.getAttribute('class')).toBe('host');
    expect(await fresh.locator('td[data-label="Status"]').textContent()).toBe('reporting');
    expect(await fresh.locator('td[data-label="Running"]').textContent()).toBe('4');
    expect(await fresh.locator('td[data-label="Stopped"]').textContent()).toBe('1');
    expect(await page.locator('.hosts-table caption').textContent()).toBe('2 hosts, 1 stale');
    await shot('hosts');

    await page.setViewportSize({ width: 380, height: 800 });
    expect(await stale.locator('td[data-label="Status"]').isVisible()).toBe(true);
    await shot('hosts-narrow');
  });

  it('answers an instance id typed in the search box with that host: reporting or stale, in words', async () => {
    await open('/', 'intro');
    await search(fleet.host.instance_id, 'host');
    expect(await page.locator('#result .summary').textContent()).toMatch(new RegExp(`^Host ${fleet.host.instance_id} is reporting: last report .+ ago\\.$`));
    const row = page.locator(`tr.host[data-instance-id="${fleet.host.instance_id}"]`);
    expect(await row.locator('td[data-label="Running"]').textContent()).toBe('4');
    expect(await row.locator('td[data-label="Status"]').textContent()).toBe('reporting');
    await shot('host-lookup');

    await search(fleet.staleHost.instance_id, 'host');
    expect(await page.locator('#result .summary').textContent()).toMatch(new RegExp(`^Host ${fleet.staleHost.instance_id} is stale: no report for .+\\.$`));

    await search('i-0123456789abcdef9', 'not-found');
    expect(await page.locator('#result .notice').textContent()).toBe('No host i-0123456789abcdef9 has reported.');

    // The link back to every host.
    await search(fleet.host.instance_id, 'host');
    await page.locator('#result a[href="?view=hosts"]').click();
    await settled('hosts');
  });

  it('finds a container whose docker name looks like an instance id, when no such host reported', async () => {
    const other = await startLookupServer({ now: NOW });
    try {
      const host = hostIdentity({ instance_id: instanceId('named-like-a-host') });
      const id = containerId('named-like-a-host');
      const container = observation({ container_id: id, docker_name: 'i-0123456789abcdef0', container_name: 'i-0123456789abcdef0', task_arn: null, task_family: null, task_version: null, source: 'labels' });
      const batch: TransitionBatch = { host, transitions: [{ seq: 1, container_id: id, from: null, to: 'running', at: NOW.toISOString(), reason: 'agent.observed', container }] };
      const res = await fetch(`${other.url}/v2/hosts/${host.instance_id}/transitions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
      expect(res.status).toBe(200);
      await context.route(`${other.url}/**`, (route) => route.continue());

      await page.goto(`${other.url}/?q=i-0123456789abcdef0`);
      await settled('found');
      expect(await page.locator('.match').getAttribute('data-kind')).toBe('docker_name');
      expect(await containerCard(id).count()).toBe(1);
      // The host itself still answers as a host.
      await search(host.instance_id, 'host');
    } finally {
      await other.close();
    }
  });

  it("offers no cAdvisor link for a container that no longer runs, keeps the other links, and calls a gone one's ECS status its last", async () => {
    const other = await startLookupServer({ now: NOW, links: ['grafana=http://grafana.example/d/c?var-id={container_id}'] });
    try {
      const host = hostIdentity({ instance_id: instanceId('links-by-state') });
      const live = observation({ container_id: containerId('links-live'), task_arn: null, task_family: null, task_version: null });
      const went = observation({ container_id: containerId('links-gone'), task_arn: null, task_family: null, task_version: null, known_status: 'RUNNING', desired_status: 'RUNNING' });
      const at = NOW.toISOString();
      const batch: TransitionBatch = {
        host,
        transitions: [
          { seq: 1, container_id: live.container_id, from: null, to: 'running', at, reason: 'agent.observed', container: live },
          { seq: 2, container_id: went.container_id, from: null, to: 'running', at, reason: 'agent.observed', container: went },
          { seq: 3, container_id: went.container_id, from: 'running', to: 'gone', at, reason: 'container.vanished', container: went },
        ],
      };
      const res = await fetch(`${other.url}/v2/hosts/${host.instance_id}/transitions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
      expect(res.status).toBe(200);
      await context.route(`${other.url}/**`, (route) => route.continue());
      const linkNames = (id: string) => containerCard(id).locator('ul.links a').evaluateAll((els) => els.map((e) => e.getAttribute('data-link')));
      const factNames = (id: string) => containerCard(id).locator('.facts dt').allTextContents();

      await page.goto(`${other.url}/?q=${live.container_id}`);
      await settled('found');
      expect(await linkNames(live.container_id)).toEqual(['cadvisor', 'grafana']);
      expect(await factNames(live.container_id)).toContain('ECS status');

      await search(went.container_id);
      expect(await containerCard(went.container_id).locator('h3 .badge').textContent()).toBe('gone');
      expect(await linkNames(went.container_id)).toEqual(['grafana']);
      const facts = await factNames(went.container_id);
      expect(facts).toContain('Last ECS status');
      expect(facts).not.toContain('ECS status');
    } finally {
      await other.close();
    }
  });

  it('shows a host silent past --host-gone-after as retired, not stale', async () => {
    api.setNow(new Date(NOW.getTime() + 40 * 60_000)); // the stale host silent 130 minutes, the other 40
    try {
      await open('/?view=hosts', 'hosts');
      const retired = page.locator(`tr.host[data-instance-id="${fleet.staleHost.instance_id}"]`);
      const reporting = page.locator(`tr.host[data-instance-id="${fleet.host.instance_id}"]`);
      expect(await retired.getAttribute('class')).toBe('host');
      expect(await retired.locator('td[data-label="Status"]').textContent()).toBe('retired');
      expect(await reporting.locator('td[data-label="Status"]').textContent()).toBe('reporting');
      expect(await page.locator('.hosts-table caption').textContent()).toBe('2 hosts, 0 stale, 1 retired');
    } finally {
      api.setNow(NOW);
    }
  });

  it('serves the page and its assets with a Content-Security-Policy: its own files only, and no framing', async () => {
    for (const path of ['/', '/app.js', '/style.css']) {
      const res = await fetch(api.url + path);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("default-src 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).not.toContain('unsafe-inline');
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
    }

    // A page framing it (clickjacking) gets an empty frame. The framing page is served from the
    // server's own origin (a route stub): chromium refuses loopback frames in pages of other
    // origins anyway, and frame-ancestors 'none' refuses its own origin too.
    await context.route(`${api.url}/framer.html`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: `<iframe src="${api.url}/?q=${fleet.web.taskId}"></iframe>` }),
    );
    page.removeAllListeners('console'); // the refusal to be framed is logged as a policy violation, as it should be
    await page.goto(`${api.url}/framer.html`);
    const framed = await (await page.locator('iframe').elementHandle())!.contentFrame();
    await framed!.waitForLoadState();
    expect(framed!.url()).not.toContain(api.url);
    expect(await framed!.locator('#q').count()).toBe(0);

    await open(`/?q=${fleet.web.taskId}`, 'found');
    expect(await page.locator('article.container').count()).toBe(2);
  });

  it("shows a container's latest 100 history entries, and links to the whole history", async () => {
    const other = await startLookupServer({ now: NOW });
    try {
      const host = hostIdentity({ instance_id: instanceId('restarting') });
      const id = containerId('restarting');
      const container = observation({ container_id: id, task_arn: taskArn(taskId('restarting')) });
      // A container that restarts again and again: 1 start and 249 stops and starts.
      const transitions: TransitionBatch['transitions'] = [];
      for (let seq = 1; seq <= 250; seq++) {
        const up = seq % 2 === 1;
        const at = new Date(NOW.getTime() - (250 - seq) * 60_000).toISOString();
        transitions.push({ seq, container_id: id, from: seq === 1 ? null : up ? 'stopped' : 'running', to: up ? 'running' : 'stopped', at, reason: up ? 'docker.started' : 'agent.observed', container });
      }
      const res = await fetch(`${other.url}/v2/hosts/${host.instance_id}/transitions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ host, transitions }) });
      expect(res.status).toBe(200);
      await context.route(`${other.url}/**`, (route) => route.continue());

      await page.goto(`${other.url}/?q=${id}`);
      await settled('found');

      const card = page.locator('article.container');
      const events = card.locator('ol.timeline li');
      expect(await events.count()).toBe(100);
      expect(await events.last().locator('time').getAttribute('datetime')).toBe(NOW.toISOString());
      expect(await card.locator('p.older').textContent()).toContain('Showing the latest 100 entries; older ones are left out.');
      const whole = card.locator('p.older a');
      expect(await whole.getAttribute('href')).toBe(`v2/containers/${id}/history`);
      const answer = (await (await fetch(new URL((await whole.getAttribute('href'))!, `${other.url}/`))).json()) as { history: unknown[] };
      expect(answer.history).toHaveLength(250);
    } finally {
      await other.close();
    }
  });

  it('wraps the longest names ECS allows (255 characters, one word) instead of widening the page', async () => {
    const other = await startLookupServer({ now: NOW });
    try {
      const long = (c: string) => c.repeat(255);
      const host = hostIdentity({ instance_id: instanceId('long-names'), cluster: long('c'), host_name: long('h') });
      const id = containerId('long-names');
      const tid = taskId('long-names');
      const container = observation({
        container_id: id,
        container_name: long('n'),
        docker_name: `ecs-${long('f')}-1-${long('n')}-${id.slice(0, 20)}`,
        image: `registry.example/${long('i')}:1`,
        task_arn: taskArn(tid, long('c')),
        task_family: long('f'),
        task_version: '1',
      });
      const batch: TransitionBatch = { host, transitions: [{ seq: 1, container_id: id, from: null, to: 'running', at: NOW.toISOString(), reason: 'agent.observed', container }] };
      const res = await fetch(`${other.url}/v2/hosts/${host.instance_id}/transitions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
      expect(res.status).toBe(200);
      await context.route(`${other.url}/**`, (route) => route.continue());

      for (const width of [1280, 380]) {
        await page.setViewportSize({ width, height: 900 });
        await page.goto(`${other.url}/?q=${tid}`);
        await settled('found');
        expect(await page.evaluate('document.documentElement.scrollWidth'), `page width at ${width}px`).toBeLessThanOrEqual(width);
      }
      await shot('long-names-narrow');
    } finally {
      await other.close();
    }
  });
});

