// The lookup page: one search box over GET /v2/lookup/<id> and a hosts view over GET /v2/hosts.
//
// Contracts:
// - The URL is the state: `?q=<id>` shows a lookup, `?view=hosts` the hosts view, nothing the intro.
//   Searching pushes a history entry, so the back button returns to the previous lookup.
// - No framework, no build step. The DOM is built by `h()`, which only ever sets text and attributes
//   (never innerHTML), so ids, names and images from the store cannot inject markup.
// - API paths are relative to the page, so a reverse proxy may mount the server under a prefix.

const API = 'v2/';
/** More containers than this in one answer: history is fetched for the first ones only. */
const MAX_HISTORY_FETCHES = 50;
/**
 * A container's timeline shows its latest entries only (`?limit=`): one restarting for weeks has
 * tens of thousands, a 4 MB answer that took seconds to lay out. The rest are a link away.
 */
const MAX_TIMELINE_ENTRIES = 100;

const KIND_LABEL = {
  container_id: 'full container id',
  container_prefix: 'container id prefix',
  task_id: 'task id',
  task_arn: 'task ARN',
  docker_name: 'docker name',
};
const STATES = ['running', 'pending', 'stopping', 'stopped', 'gone'];

const form = /** @type {HTMLFormElement} */ (document.getElementById('search'));
const input = /** @type {HTMLInputElement} */ (document.getElementById('q'));
const result = /** @type {HTMLElement} */ (document.getElementById('result'));
const statusRegion = /** @type {HTMLElement} */ (document.getElementById('status'));

// --- DOM helper -------------------------------------------------------------------------------------

/**
 * h('a', { href, class: 'x' }, 'text', child) → element. Attribute values of null/undefined/false
 * are skipped; children that are null/undefined/false are skipped; strings become text nodes.
 */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A definition list from [term, value] pairs; pairs whose value is null/undefined/'' are left out. */
function dl(pairs, className) {
  const list = h('dl', { class: className });
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === '') continue;
    list.append(h('div', { class: 'pair' }, h('dt', null, term), h('dd', null, value)));
  }
  return list;
}

function code(text) {
  return text === null || text === undefined || text === '' ? null : h('code', null, text);
}

function stateBadge(state) {
  return h('span', { class: `badge state state-${state}` }, state);
}

function formatTime(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const text = `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  return h('time', { datetime: iso, title: iso }, text);
}

/** 42 → "42 s", 185 → "3 min 5 s", 7300 → "2 h 1 min", 200000 → "2 d 7 h". */
function formatAge(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86400)} d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)} h` : ''}`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// --- API --------------------------------------------------------------------------------------------

class UnreachableError extends Error {
  name = 'UnreachableError';
}

/** GET an API path; resolves { status, body } for any HTTP answer, throws UnreachableError without one. */
async function getJson(path, signal) {
  let response;
  try {
    response = await fetch(API + path, { signal, headers: { accept: 'application/json' } });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new UnreachableError(`Cannot reach the server (${err instanceof Error ? err.message : err}).`);
  }
  let body = null;
  const text = await response.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: 'bad_response', message: notJsonMessage(text) };
  }
  return { status: response.status, body };
}

/**
 * What a non-JSON answer says, briefly: a proxy's or load balancer's HTML error page (the server
 * answers JSON) is named by its title rather than shown as markup.
 */
function notJsonMessage(text) {
  if (!/^\s*</.test(text)) return text.slice(0, 200);
  const title = /<title[^>]*>([^<]*)<\/title>/i.exec(text)?.[1].replace(/\s+/g, ' ').trim().slice(0, 100);
  return `an HTML page${title ? ` ("${title}")` : ''}, not the API's JSON: from a proxy or load balancer in between?`;
}

function serverMessage(status, body) {
  const message = body && typeof body.message === 'string' ? body.message : '';
  return `The server answered ${status}${message ? `: ${message}` : '.'}`;
}

// --- routing ----------------------------------------------------------------------------------------

function currentRoute() {
  const params = new URLSearchParams(location.search);
  if (params.get('view') === 'hosts') return { view: 'hosts', q: '' };
  return { view: 'lookup', q: (params.get('q') ?? '').trim() };
}

function lookupUrl(id) {
  return `?q=${encodeURIComponent(id)}`;
}

function navigate(url) {
  const target = new URL(url, location.href);
  // Searching the same id again refreshes without stacking identical history entries.
  if (target.href === location.href) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  void render();
}

let inFlight = null;
/** The query string the result area shows (or is loading). */
let renderedSearch = null;

async function render() {
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  renderedSearch = location.search;
  const route = currentRoute();

  for (const [id, view] of [['tab-lookup', 'lookup'], ['tab-hosts', 'hosts']]) {
    const tab = document.getElementById(id);
    if (route.view === view) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  form.hidden = route.view !== 'lookup';
  if (route.view === 'lookup' && input.value.trim() !== route.q) input.value = route.q;
  document.title = route.view === 'hosts' ? 'Hosts · ECS ID Mapper' : route.q ? `${route.q} · ECS ID Mapper` : 'ECS ID Mapper';

  result.setAttribute('aria-busy', 'true');
  result.dataset.state = 'loading';
  const loading = setTimeout(() => {
    if (inFlight === controller) result.replaceChildren(h('p', { class: 'loading' }, route.view === 'hosts' ? 'Loading hosts…' : 'Searching…'));
  }, 150);

  let content;
  let state;
  try {
    if (route.view === 'hosts') [state, content] = await hostsView(controller.signal);
    else if (route.q) [state, content] = await lookupView(route.q, controller.signal);
    else [state, content] = ['intro', introView()];
  } catch (err) {
    if (controller.signal.aborted) return;
    state = 'error';
    content = h('p', { class: 'notice error' }, err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(loading);
  }
  if (controller.signal.aborted) return;
  result.replaceChildren(content);
  result.dataset.state = state;
  // Screen readers hear the one-line outcome, not the whole result area.
  const lead = content.matches('.summary, .notice') ? content : content.querySelector('.summary, .notice, caption');
  statusRegion.textContent = lead ? lead.textContent : '';
  result.removeAttribute('aria-busy');
}

// --- lookup view ------------------------------------------------------------------------------------

function introView() {
  return h(
    'div',
    { class: 'intro' },
    h('p', null, 'Paste any id from a log line, ', h('code', null, 'docker ps'), ', a Grafana panel or the ECS console:'),
    h(
      'ul',
      null,
      h('li', null, 'a full (64 hex) or short (12+ hex) Docker container id'),
      h('li', null, 'an ECS task id or task ARN'),
      h('li', null, 'a Docker container name such as ', h('code', null, 'ecs-web-3-nginx-…')),
      h('li', null, 'an EC2 instance id, to see whether that host reports'),
    ),
  );
}

/** EC2 instance ids name hosts, not containers (wire/ids.ts INSTANCE_ID). */
const INSTANCE_ID = /^i-[0-9a-f]{8,32}$/;

async function lookupView(q, signal) {
  if (INSTANCE_ID.test(q)) {
    const host = await hostLookupView(q, signal);
    if (host[0] !== 'not-found') return host;
    // Docker allows a container name that looks like an instance id, and the lookup finds it by that name.
    const named = await containerLookupView(q, signal);
    return named[0] === 'found' ? named : host;
  }
  return containerLookupView(q, signal);
}

async function containerLookupView(q, signal) {
  // A URL resolves `.` and `..` segments, percent-encoded or not: `lookup/..` would ask `v2/` itself.
  // No id or name is made of dots only (Docker names start with a letter or digit).
  if (/^\.+$/.test(q)) return ['bad-request', h('p', { class: 'notice error' }, `"${q}" is not a container id (12-64 hex), task id, task ARN or docker name`)];
  const { status, body } = await getJson(`lookup/${encodeURIComponent(q)}`, signal);
  if (status === 200 && body && Array.isArray(body.containers)) return ['found', await matchView(q, body, signal)];
  // A miss is the server's `not_found`; any other 404 (`no_route`, a proxy's page) means the lookup was not asked.
  if (status === 404 && body?.error === 'not_found') {
    return ['not-found', h('p', { class: 'notice miss' }, `No container or task matches “${q}”.`)];
  }
  if (status === 409 && body && Array.isArray(body.candidates)) return ['ambiguous', candidatesView(q, body.candidates, body.more_candidates === true)];
  if (status === 400) {
    return ['bad-request', h('p', { class: 'notice error' }, body && body.message ? body.message : `“${q}” is not an id this server understands.`)];
  }
  return ['error', h('p', { class: 'notice error' }, serverMessage(status, body))];
}

/** `more`: the server lists the first candidates only, and more containers share the prefix. */
function candidatesView(q, candidates, more) {
  return h(
    'div',
    { class: 'candidates' },
    h(
      'p',
      { class: 'notice' },
      more
        ? `“${q}” matches more than ${plural(candidates.length, 'container')}; type more of the id, or pick one of the first ${candidates.length}:`
        : `“${q}” matches ${plural(candidates.length, 'container')}; pick one:`,
    ),
    h(
      'ul',
      { class: 'candidate-list' },
      candidates.map((id) => h('li', null, h('a', { href: lookupUrl(id), 'data-nav': true }, h('code', null, id)))),
    ),
  );
}

async function matchView(q, body, signal) {
  const containers = body.containers;
  const histories = await Promise.all(
    containers.map((c, i) => (i < MAX_HISTORY_FETCHES ? getJson(`containers/${encodeURIComponent(c.container_id)}/history?limit=${MAX_TIMELINE_ENTRIES}`, signal).catch((err) => {
      if (signal.aborted) throw err;
      return { status: 0, body: { message: err.message } };
    }) : null)),
  );
  const historyById = new Map(containers.map((c, i) => [c.container_id, histories[i]]));

  // Group by task, keeping the server's order (by container id) inside each task. Records of the
  // original agent know their task id but not its ARN.
  const tasks = new Map();
  for (const c of containers) {
    const key = c.task_id || c.task_arn || '';
    if (!tasks.has(key)) tasks.set(key, []);
    tasks.get(key).push(c);
  }

  const kind = KIND_LABEL[body.kind] ?? body.kind;
  const summary = h(
    'p',
    { class: 'summary' },
    `“${q}” matched by ${kind}: ${plural(containers.length, 'container')}`,
    tasks.size > 1 || !tasks.has('') ? ` in ${plural([...tasks.keys()].filter(Boolean).length, 'task')}` : '',
    '.',
  );
  const sections = [...tasks.entries()].map(([key, list]) => taskView(key, list, historyById));
  return h('div', { class: 'match', 'data-kind': body.kind }, summary, sections);
}

/** `task`: the task id (or, lacking one, the ARN) the containers share; '' when they have neither. */
function taskView(task, containers, historyById) {
  const first = containers[0];
  const arn = containers.find((c) => c.task_arn)?.task_arn ?? null;
  const heading = task
    ? h('h2', null, 'Task ', h('code', { class: 'task-id' }, first.task_id || arn))
    : h('h2', null, 'Container without a known task');
  const facts = task
    ? dl(
        [
          ['Family:revision', first.task_family ? `${first.task_family}:${first.task_version || '?'}` : null],
          ['Task ARN', code(arn)],
          ['Cluster', first.cluster],
          ['Containers', String(containers.length)],
        ],
        'facts task-facts',
      )
    : null;
  return h(
    'section',
    { class: 'task', 'data-task-arn': arn || null },
    heading,
    facts,
    containers.map((c) => containerView(c, historyById.get(c.container_id))),
  );
}

/** States in which the container runs on its instance, or is about to: cAdvisor has pages for it. */
const LIVE_STATES = new Set(['pending', 'running', 'stopping']);

function containerView(c, historyAnswer) {
  // cAdvisor shows only containers that run: for a stopped or gone one its link leads to an error
  // page. Other links (dashboards over time) may still show the container's past, so they stay.
  const all = Array.isArray(c.links) ? c.links : [];
  const links = LIVE_STATES.has(c.state) ? all : all.filter((l) => l.name !== 'cadvisor');
  return h(
    'article',
    { class: `container state-${c.state}`, 'data-container-id': c.container_id },
    h('h3', null, h('span', { class: 'container-name' }, c.container_name || c.docker_name || c.container_id.slice(0, 12)), ' ', stateBadge(c.state)),
    links.length
      ? h(
          'ul',
          { class: 'links', 'aria-label': 'Links' },
          links.map((l) => h('li', null, h('a', { href: l.url, class: `link link-${l.name}`, 'data-link': l.name, rel: 'noopener noreferrer', target: '_blank' }, l.name))),
        )
      : null,
    h(
      'div',
      { class: 'columns' },
      h(
        'section',
        { class: 'panel' },
        h('h4', null, 'Container'),
        dl(
          [
            ['Name', c.container_name],
            ['Docker name', code(c.docker_name)],
            ['Image', code(c.image)],
            ['Container id', h('code', { class: 'container-id' }, c.container_id)],
            ['Short id', code(c.container_id.slice(0, 12))],
            ['State', stateBadge(c.state)],
            // A gone container's ECS status is the last one reported before it went, not a current one.
            [c.state === 'gone' ? 'Last ECS status' : 'ECS status', c.known_status || c.desired_status ? `${c.known_status || '?'} (desired ${c.desired_status || '?'})` : null],
            ['Started', formatTime(c.started_at)],
            ['Stopped', formatTime(c.stopped_at)],
            ['Gone', formatTime(c.gone_at)],
            // An exit code means something only once the container has stopped.
            ['Exit code', (c.state === 'stopped' || c.state === 'gone') && c.exit_code !== null && c.exit_code !== undefined ? String(c.exit_code) : null],
            ['Restarts', c.restart_count ? String(c.restart_count) : null],
            ['First seen', formatTime(c.first_seen)],
            ['Last seen', formatTime(c.last_seen)],
            ['Source', c.source],
          ],
          'facts',
        ),
      ),
      h(
        'section',
        { class: 'panel' },
        h('h4', null, 'Host'),
        dl(
          [
            ['Instance id', h('code', { class: 'instance-id' }, c.instance_id)],
            ['IP', code(c.instance_ip)],
            ['Type', c.instance_type],
            ['Zone', c.instance_az],
            ['Region', c.region],
            ['Cluster', c.cluster],
            ['Host name', c.host_name],
            ['ECS agent', c.ecs_agent_version],
          ],
          'facts',
        ),
      ),
    ),
    portsView(c.ports),
    historyView(historyAnswer),
  );
}

function portsView(ports) {
  if (!Array.isArray(ports) || ports.length === 0) return h('section', { class: 'ports' }, h('h4', null, 'Ports'), h('p', { class: 'muted' }, 'No port mappings.'));
  return h(
    'section',
    { class: 'ports' },
    h('h4', null, 'Ports'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        null,
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Container port'), h('th', { scope: 'col' }, 'Host'), h('th', { scope: 'col' }, 'Protocol'))),
        h(
          'tbody',
          null,
          ports.map((p) =>
            h(
              'tr',
              null,
              h('td', null, String(p.container_port)),
              h('td', null, p.host_port === null || p.host_port === undefined ? '—' : `${p.host_ip ? `${p.host_ip}:` : ''}${p.host_port}`),
              h('td', null, p.protocol),
            ),
          ),
        ),
      ),
    ),
  );
}

function historyView(answer) {
  const section = h('section', { class: 'history' }, h('h4', null, 'History'));
  if (!answer) {
    section.append(h('p', { class: 'muted' }, 'History not loaded (too many containers in this answer).'));
  } else if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.history)) {
    section.append(h('p', { class: 'notice error' }, `History unavailable. ${answer.status ? serverMessage(answer.status, answer.body) : answer.body?.message ?? ''}`));
  } else if (answer.body.history.length === 0) {
    section.append(h('p', { class: 'muted' }, 'No history recorded.'));
  } else {
    const shown = answer.body.history;
    if (answer.body.truncated) {
      section.append(
        h(
          'p',
          { class: 'muted older' },
          `Showing the latest ${shown.length} entries; older ones are left out. `,
          h('a', { href: `${API}containers/${encodeURIComponent(answer.body.container_id)}/history` }, 'The whole history (JSON)'),
        ),
      );
    }
    section.append(
      h(
        'ol',
        { class: 'timeline' },
        shown.map((t) =>
          h(
            'li',
            { class: `event to-${t.to ?? 'none'}` },
            formatTime(t.at),
            ' ',
            h('span', { class: 'transition' }, t.from ? stateBadge(t.from) : h('span', { class: 'muted' }, 'new'), ' → ', t.to ? stateBadge(t.to) : h('span', { class: 'muted' }, '—')),
            ' ',
            h('span', { class: 'reason' }, t.reason),
            t.seq === null || t.seq === undefined ? null : h('span', { class: 'muted seq' }, ` seq ${t.seq}`),
          ),
        ),
      ),
    );
  }
  return section;
}

// --- hosts view -------------------------------------------------------------------------------------

/** Stale: silent past the server's stale window. Retired: silent so long its records were marked gone (most often a terminated instance). */
function hostBadge(x) {
  if (x.stale) return h('span', { class: 'badge stale' }, 'stale');
  if (x.retired) return h('span', { class: 'badge retired', title: 'silent past --host-gone-after: its containers were marked gone' }, 'retired');
  return h('span', { class: 'badge fresh' }, 'reporting');
}

async function hostsView(signal) {
  const { status, body } = await getJson('hosts', signal);
  if (status !== 200 || !body || !Array.isArray(body.hosts)) return ['error', h('p', { class: 'notice error' }, serverMessage(status, body))];
  const hosts = [...body.hosts].sort(
    (a, b) => Number(b.stale) - Number(a.stale) || String(a.cluster ?? '').localeCompare(String(b.cluster ?? '')) || a.instance_id.localeCompare(b.instance_id),
  );
  const stale = hosts.filter((x) => x.stale).length;
  const retired = hosts.filter((x) => x.retired).length;
  if (hosts.length === 0) return ['hosts', h('div', { class: 'hosts' }, h('h2', null, 'Hosts'), h('p', { class: 'notice' }, 'No host has reported yet.'))];
  return [
    'hosts',
    h(
      'div',
      { class: 'hosts' },
      h('h2', null, 'Hosts'),
      stale ? h('p', { class: 'notice warn' }, `${plural(stale, 'host')} stale: no report within the server's stale window.`) : null,
      h('div', { class: 'table-wrap' }, hostsTable(hosts, `${plural(hosts.length, 'host')}, ${stale} stale${retired ? `, ${retired} retired` : ''}`)),
    ),
  ];
}

/** An instance id searched for: that host's row, as the hosts view shows it. */
async function hostLookupView(q, signal) {
  const { status, body } = await getJson(`hosts/${encodeURIComponent(q)}`, signal);
  if (status === 404 && body?.error === 'not_found') return ['not-found', h('p', { class: 'notice miss' }, `No host ${q} has reported.`)];
  if (status !== 200 || !body || typeof body.instance_id !== 'string') return ['error', h('p', { class: 'notice error' }, serverMessage(status, body))];
  const summary = body.retired
    ? `Host ${q} is retired: silent past the server's retirement window, its containers were marked gone.`
    : body.stale
      ? `Host ${q} is stale: no report for ${formatAge(body.seconds_since_report)}.`
      : `Host ${q} is reporting: last report ${formatAge(body.seconds_since_report)} ago.`;
  return [
    'host',
    h(
      'div',
      { class: 'hosts' },
      h('p', { class: body.stale || body.retired ? 'summary notice warn' : 'summary' }, summary),
      h('div', { class: 'table-wrap' }, hostsTable([body], `Host ${q}`)),
      h('p', null, h('a', { href: '?view=hosts', 'data-nav': true }, 'All hosts')),
    ),
  ];
}

function hostsTable(hosts, caption) {
  const header = ['Instance', 'Cluster', 'IP', 'Type · zone', ...STATES.map((s) => s[0].toUpperCase() + s.slice(1)), 'Last report', 'Status'];
  return h(
    'table',
    { class: 'hosts-table' },
    h('caption', null, caption),
    h('thead', null, h('tr', null, header.map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      null,
      hosts.map((x) =>
        h(
          'tr',
          { class: x.stale ? 'host stale' : 'host', 'data-instance-id': x.instance_id },
          h('th', { scope: 'row', 'data-label': 'Instance' }, h('code', null, x.instance_id), x.reporter === 'legacy' ? h('span', { class: 'muted' }, ' (legacy agent)') : null),
          h('td', { 'data-label': 'Cluster' }, x.cluster || '—'),
          h('td', { 'data-label': 'IP' }, x.instance_ip ? h('code', null, x.instance_ip) : '—'),
          h('td', { 'data-label': 'Type · zone' }, [x.instance_type, x.instance_az].filter(Boolean).join(' · ') || '—'),
          STATES.map((s) => {
            const n = x.containers_by_state?.[s] ?? 0;
            return h('td', { 'data-label': s[0].toUpperCase() + s.slice(1), class: n ? `count state-${s}` : 'count zero' }, String(n));
          }),
          h(
            'td',
            { 'data-label': 'Last report', 'data-seconds': String(x.seconds_since_report) },
            h('span', { title: x.last_report_at }, `${formatAge(x.seconds_since_report)} ago`),
          ),
          h('td', { 'data-label': 'Status' }, hostBadge(x)),
        ),
      ),
    ),
  );
}

// --- wiring -----------------------------------------------------------------------------------------

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const q = input.value.trim();
  navigate(q ? lookupUrl(q) : './');
});

// In-page links (tabs, candidates) update the URL without a reload; modified clicks keep browser behaviour.
document.addEventListener('click', (event) => {
  const a = event.target instanceof Element ? event.target.closest('a[data-nav]') : null;
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(a.getAttribute('href'));
  if (currentRoute().view === 'lookup') input.focus();
});

// `/` focuses the search box, unless the user is typing somewhere.
document.addEventListener('keydown', (event) => {
  if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
  const t = event.target;
  if (t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
  event.preventDefault();
  if (currentRoute().view !== 'lookup') navigate('./');
  input.focus();
  input.select();
});

// A history step that changes only the fragment (the skip link's #result, or back from it) keeps the
// same query: searching again would replace the result the user just moved focus into.
window.addEventListener('popstate', () => {
  if (location.search !== renderedSearch) void render();
});

void render();
