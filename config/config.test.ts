import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadCommand, loadReconcilerConfig, loadServerConfig, parseDuration } from './index.js';
import { parseStoreUrl } from './store-url.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { INTERMEDIATE_CERT, PRIVATE_CA_CERT, PRIVATE_CA_LEAF_CERT, SELF_SIGNED_CERT } from '../test/support/tls.js';

describe('durations', () => {
  it('accept ms, s, m, h and bare seconds', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('7')).toBe(7_000);
    expect(parseDuration('1.5')).toBe(1_500);
  });

  it('reject anything else with a readable message', () => {
    expect(() => parseDuration('10 minutes')).toThrow(/not a duration: "10 minutes"/);
    expect(() => parseDuration('-5s')).toThrow(ConfigError);
  });
});

describe('server config', () => {
  it('has the original defaults', () => {
    const c = loadServerConfig([]);
    expect(c.port).toBe(5001);
    expect(c.host).toBe('0.0.0.0');
    expect(c.cadvisorPort).toBe(8080);
    expect(c.store).toEqual({ backend: 'sqlite', path: './data/ecs-id-mapper.db' });
    expect(c.retentionMs).toBe(7 * 24 * 3_600_000);
    expect(c.links).toEqual([{ name: 'cadvisor', template: 'http://{instance_ip}:{cadvisor_port}/docker/{container_id}' }]);
  });

  it('takes the load balancers to trust as addresses or CIDRs, comma-separated or repeated, and refuses anything else in one line', () => {
    expect(loadServerConfig(['--trust-proxy', '10.0.0.0/16, fd00::/8', '--trust-proxy', '192.168.1.1']).trustProxy).toEqual(['10.0.0.0/16', 'fd00::/8', '192.168.1.1']);
    expect(loadServerConfig([], { ECS_ID_MAPPER_TRUST_PROXY: '10.1.0.0/16' }).trustProxy).toEqual(['10.1.0.0/16']);
    expect(loadServerConfig([]).trustProxy).toEqual([]);
    for (const bad of ['10.0.0.0/33', 'lb.internal', '10.0.0.1/8/1']) {
      expect(() => loadServerConfig(['--trust-proxy', bad])).toThrow(`--trust-proxy: "${bad}" is not an IP address or CIDR (10.0.0.0/16, fd00::/8)`);
    }
  });

  it('refuses an interval longer than a Node.js timer keeps, which would fire at once, again and again', () => {
    expect(() => loadServerConfig(['--purge-interval', '600h'])).toThrow(/purge-interval.*must be at most 596h \(24\.8 days\): Node\.js runs a longer timer at once/);
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_VAULT_REFRESH_INTERVAL: '700h', ECS_ID_MAPPER_VAULT_ADDR: 'http://127.0.0.1:8200', ECS_ID_MAPPER_VAULT_TOKEN: 't' })).toThrow(/ECS_ID_MAPPER_VAULT_REFRESH_INTERVAL.*must be at most 596h/);
    expect(loadServerConfig(['--purge-interval', '596h']).purgeIntervalMs).toBe(596 * 3_600_000);
    // Not a timer: a retention of 30 days is fine, one past a century is not (no date could hold the cutoff).
    expect(loadServerConfig(['--retention', '720h']).retentionMs).toBe(720 * 3_600_000);
    expect(() => loadServerConfig(['--retention', '99999999999h'])).toThrow('--retention: must be at most 876000h');
  });

  it('keeps 1,000 history entries per container unless told otherwise, 0 keeping all', () => {
    expect(loadServerConfig([]).historyLimit).toBe(1000);
    expect(loadServerConfig(['--history-limit', '0']).historyLimit).toBe(0);
    expect(loadServerConfig([], { ECS_ID_MAPPER_HISTORY_LIMIT: '250' }).historyLimit).toBe(250);
    expect(() => loadServerConfig(['--history-limit', '-1'])).toThrow(/--history-limit/);
    expect(() => loadServerConfig(['--history-limit', 'lots'])).toThrow(/--history-limit/);
  });

  it('refuses an empty listen address, which would listen on every interface', () => {
    expect(() => loadServerConfig(['--host='])).toThrow('--host: empty; give an address (0.0.0.0 listens on every interface)');
  });

  it('refuses a listen address that is neither an IP address nor a host name, before anything starts', () => {
    for (const host of ['999.1.1.1', '10.0.0', 'foo bar', 'http://0.0.0.0', '[::1]', '-lead.example']) {
      expect(() => loadServerConfig(['--host', host]), host).toThrow(`--host: "${host}" is not an IP address or host name`);
    }
    for (const host of ['0.0.0.0', '::', '::1', '127.0.0.1', 'localhost', 'ip-10-0-0-1.ec2.internal', 'api-1.']) {
      expect(loadServerConfig(['--host', host]).host).toBe(host);
    }
  });

  it('answers --help even when a flag or the environment holds a bad value', () => {
    expect(loadCommand('server', ['--help'], { ECS_ID_MAPPER_PORT: 'abc' }).kind).toBe('help');
    expect(loadCommand('server', ['--port', 'abc', '-h'], {}).kind).toBe('help');
  });

  it('reads the local SimpleDB endpoint\'s --failure-rate as a plain decimal from 0 to 1', () => {
    const keys = ['--access-key-id', 'a', '--secret-access-key', 'b'];
    expect((loadCommand('simpledb-local', [...keys, '--failure-rate', '0.25'], {}) as { config: { failureRate: number } }).config.failureRate).toBe(0.25);
    for (const bad of ['', ' ', '0x1', '1e-1', '2']) {
      expect(() => loadCommand('simpledb-local', [...keys, `--failure-rate=${bad}`], {})).toThrow(`--failure-rate: expected a number from 0 to 1, got ${JSON.stringify(bad)}`);
    }
  });

  it('reads ECS_ID_MAPPER_<FLAG> and lets the flag win', () => {
    expect(loadServerConfig([], { ECS_ID_MAPPER_PORT: '6000' }).port).toBe(6000);
    expect(loadServerConfig(['--port', '7000'], { ECS_ID_MAPPER_PORT: '6000' }).port).toBe(7000);
    expect(loadServerConfig(['--port=7001']).port).toBe(7001);
    expect(loadServerConfig([], { ECS_ID_MAPPER_REPORT_TOKEN: 's3cret' }).reportToken).toBe('s3cret');
  });

  it('names the env var, not a flag nobody gave, when a value from the environment is refused after parsing', () => {
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_STORE: 'postgres://x' })).toThrow(/^ECS_ID_MAPPER_STORE: expected sqlite:PATH/);
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_LOG_LEVEL: 'loud' })).toThrow(/^ECS_ID_MAPPER_LOG_LEVEL: expected one of/);
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_LINK: 'Bad=x' })).toThrow(/^ECS_ID_MAPPER_LINK: name must be/);
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_TRUST_PROXY: 'lb' })).toThrow(/^ECS_ID_MAPPER_TRUST_PROXY: "lb" is not an IP address/);
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_VAULT_ADDR: 'https://vault:8200' })).toThrow(/^ECS_ID_MAPPER_VAULT_ADDR needs --vault-token/);
    // A Vault token whose address was lost (an empty template value): not ignored, which would open the report routes.
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_VAULT_ADDR: '', ECS_ID_MAPPER_VAULT_TOKEN: 't' })).toThrow(/^ECS_ID_MAPPER_VAULT_TOKEN is set but --vault-addr is not: secrets would not be read from Vault/);
    expect(() => loadServerConfig(['--vault-role-id', 'r', '--vault-secret-id', 's'])).toThrow('--vault-role-id is set but --vault-addr is not: secrets would not be read from Vault');
    expect(() => loadServerConfig(['--aws-access-key-id', 'AKIAEXAMPLE'])).toThrow('--aws-access-key-id is set without --aws-secret-access-key: SimpleDB signs with both or neither');
    expect(() => loadServerConfig(['--aws-access-key-id', 'AKIAEXAMPLE', '--aws-secret-access-key', 's'])).toThrow('--aws-access-key-id applies to a simpledb:// store only (--store is sqlite)');
    expect(() => loadServerConfig([], { ECS_ID_MAPPER_AWS_SECRET_ACCESS_KEY: 's' })).toThrow(/^ECS_ID_MAPPER_AWS_SECRET_ACCESS_KEY is set without --aws-access-key-id: SimpleDB signs with both or neither$/);
    expect(() => loadServerConfig(['--vault-addr', 'https://vault:8200', '--vault-token', 't', '--vault-role-id', 'r'])).toThrow('--vault-role-id is set without --vault-secret-id: an AppRole login needs both');
    expect(() => loadServerConfig(['--vault-addr', 'https://vault:8200', '--vault-token', 't', '--vault-secret-path', 'secret'])).toThrow('--vault-secret-path must be <mount>/<path> (KV v2), got "secret"');
    expect(() => loadServerConfig(['--vault-addr', 'https://vault:8200', '--vault-token', 't', '--vault-secret-path', '/secret//'])).toThrow('--vault-secret-path must be <mount>/<path> (KV v2), got "/secret//"');
    expect(() => loadServerConfig(['--vault-addr', 'https://vault:8200', '--vault-token', 't'], { ECS_ID_MAPPER_VAULT_SECRET_ID: 's' })).toThrow(
      /^ECS_ID_MAPPER_VAULT_SECRET_ID is set without --vault-role-id: an AppRole login needs both$/,
    );
    expect(() => loadReconcilerConfig([], { ECS_ID_MAPPER_SERVER: 'ftp://server' })).toThrow(/^ECS_ID_MAPPER_SERVER: expected an http\(s\) URL/);
    expect(() => loadCommand('server', [], { ECS_ID_MAPPER_HOST: ' ' })).toThrow(/^ECS_ID_MAPPER_HOST: empty/);
    // The flag, when the flag gave it (and wins over the environment).
    expect(() => loadServerConfig(['--store', 'postgres://x'], { ECS_ID_MAPPER_STORE: 'sqlite::memory:' })).toThrow(/^--store: expected sqlite:PATH/);
  });

  it("leaves the SQLite store's cache and map sizes to the store unless set, by flag or env var", () => {
    expect(loadServerConfig([])).toMatchObject({ sqliteCacheBytes: undefined, sqliteMmapBytes: undefined });
    expect(loadServerConfig(['--sqlite-cache-bytes', '8388608', '--sqlite-mmap-bytes', '0'])).toMatchObject({ sqliteCacheBytes: 8 * 1024 * 1024, sqliteMmapBytes: 0 });
    expect(loadServerConfig([], { ECS_ID_MAPPER_SQLITE_MMAP_BYTES: '268435456' }).sqliteMmapBytes).toBe(256 * 1024 * 1024);
  });

  it('takes repeatable links from flags or a comma-separated env var', () => {
    const c = loadServerConfig(['--link', 'logs=https://logs/{task_id}', '--link', 'cadvisor=http://{instance_ip}:9090/c/{container_id_short}']);
    expect(c.links).toEqual([
      { name: 'cadvisor', template: 'http://{instance_ip}:9090/c/{container_id_short}' },
      { name: 'logs', template: 'https://logs/{task_id}' },
    ]);
    expect(loadServerConfig([], { ECS_ID_MAPPER_LINK: 'a=http://x/{cluster},b=https://y/{instance_id}' }).links.map((l) => l.name)).toEqual(['cadvisor', 'a', 'b']);
    // A comma inside a template stays in it: only one before NAME= starts the next link.
    expect(loadServerConfig([], { ECS_ID_MAPPER_LINK: 'graf=http://g/d?var-c={cluster},{task_id}, logs=https://l/{task_id}' }).links.slice(1)).toEqual([
      { name: 'graf', template: 'http://g/d?var-c={cluster},{task_id}' },
      { name: 'logs', template: 'https://l/{task_id}' },
    ]);
  });

  it.each([
    [['--port', 'abc'], '--port: expected an integer, got "abc"'],
    [['--port', '70000'], '--port: must be at most 65535, got 70000'],
    [['--bogus'], 'unknown flag "--bogus" (see --help)'],
    [['--port'], 'flag --port needs a value'],
    [['--link', 'nope'], '--link: expected NAME=TEMPLATE, got "nope"'],
    [['--link', 'x=http://{nope}/'], '--link x: unknown placeholder {nope}'],
    [['--link', 'x=javascript:alert(1)//{container_id}'], '--link x: the template must start with http:// or https://, got "javascript:alert(1)//{container_id}"'],
    [['--link', 'x=data:text/html,<b>{task_id}</b>'], '--link x: the template must start with http:// or https://'],
    [['--link', 'x={instance_ip}:8080/'], '--link x: the template must start with http:// or https://'],
    [['--store', 'mysql://x'], '--store: expected sqlite:PATH, sqlite::memory: or simpledb://REGION?..., got "mysql://x"'],
    [['--retention', 'forever'], '--retention: not a duration: "forever"'],
    [['--sqlite-cache-bytes', '4096'], '--sqlite-cache-bytes: must be at least 1048576, got 4096'],
    [['--sqlite-mmap-bytes', '4294967296'], '--sqlite-mmap-bytes: must be at most 2147418112, got 4294967296'],
    [['--sqlite-mmap-bytes', '0', '--store', 'simpledb://us-east-1?prefix=m'], '--sqlite-mmap-bytes applies to a sqlite: store only (--store is simpledb)'],
  ])('rejects %j with one readable line', (argv, message) => {
    let error: unknown;
    try {
      loadServerConfig(argv as string[]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('\n');
  });

  it('never echoes a secret in an error', () => {
    expect(() => loadServerConfig(['--vault-addr', 'http://v:8200', '--vault-token', 'hunter2', '--vault-refresh-interval', 'x'])).toThrow(ConfigError);
    try {
      loadServerConfig(['--vault-addr', 'http://v:8200', '--vault-token', 'hunter2', '--vault-refresh-interval', 'x']);
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
  });
});

describe('store URLs', () => {
  it('parse sqlite paths and memory', () => {
    expect(parseStoreUrl('sqlite::memory:')).toEqual({ backend: 'sqlite', path: ':memory:' });
    expect(parseStoreUrl('sqlite:/var/lib/x.db')).toEqual({ backend: 'sqlite', path: '/var/lib/x.db' });
  });

  it('parse simpledb URLs with defaults', () => {
    const c = parseStoreUrl('simpledb://eu-west-1?prefix=fleet&shards=8&endpoint=http://127.0.0.1:8443&create_domains=true');
    expect(c).toMatchObject({ backend: 'simpledb', region: 'eu-west-1', prefix: 'fleet', shards: 8, createDomains: true });
    expect(c.backend === 'simpledb' && c.endpoint.href).toBe('http://127.0.0.1:8443/');
    const d = parseStoreUrl('simpledb://us-east-1');
    expect(d).toMatchObject({ prefix: 'ecs_id_mapper', shards: 4, createDomains: false });
    expect(d.backend === 'simpledb' && d.endpoint.href).toBe('https://sdb.amazonaws.com/');
  });

  it.each(['simpledb://nowhere', 'simpledb://us-east-1?shards=0', 'simpledb://us-east-1?colour=blue', 'simpledb://us-east-1?prefix=a%20b', 'sqlite:'])(
    'rejects %s',
    (url) => expect(() => parseStoreUrl(url)).toThrow(ConfigError),
  );

  it('rejects a SimpleDB endpoint with credentials, a path or a query, which would be dropped without a word', () => {
    expect(() => parseStoreUrl('simpledb://us-east-1?endpoint=http://user:pw@127.0.0.1:8443')).toThrow('--store: endpoint takes no user name or password (requests are signed with the AWS keys)');
    expect(() => parseStoreUrl('simpledb://us-east-1?endpoint=http://127.0.0.1:8443/sub/path')).toThrow('--store: endpoint must be scheme://host[:port] only (SimpleDB answers at its root), got "http://127.0.0.1:8443/sub/path"');
    expect(parseStoreUrl('simpledb://us-east-1?endpoint=http://127.0.0.1:8443/')).toMatchObject({ endpoint: new URL('http://127.0.0.1:8443/') });
  });

  it('rejects a simpledb:// URL with a port, a path, a fragment or keys, which would be dropped without a word', () => {
    expect(() => parseStoreUrl('simpledb://AKIAEXAMPLE:s3cret@us-east-1?prefix=m')).toThrow(
      '--store: a simpledb:// URL takes no user name or password (AWS keys come from --aws-access-key-id, Vault or the AWS default chain)',
    );
    for (const url of ['simpledb://us-east-1:8443?prefix=m', 'simpledb://us-east-1/fleet?prefix=m', 'simpledb://us-east-1?prefix=m#x']) {
      expect(() => parseStoreUrl(url)).toThrow(`--store: a simpledb:// URL is simpledb://REGION?options only (no port, path or fragment; another endpoint goes in endpoint=), got "${url}"`);
    }
    expect(parseStoreUrl('simpledb://us-east-1/?prefix=m')).toMatchObject({ region: 'us-east-1', prefix: 'm' });
  });

  it('rejects an option given twice rather than taking the first', () => {
    expect(() => parseStoreUrl('simpledb://us-east-1?shards=4&shards=8')).toThrow('--store: simpledb option "shards" is given more than once');
  });
});

describe('reconciler config', () => {
  it('refuses an empty --docker-socket or --state-dir (a `$UNSET` on the command line) instead of guessing', () => {
    expect(() => loadReconcilerConfig(['--server', 'http://x', '--docker-socket='])).toThrow('--docker-socket: empty; give "none" to do without Docker');
    expect(() => loadCommand('simulate-host', ['--docker-socket='], {})).toThrow('--docker-socket: empty; give "none" to do without Docker');
    expect(() => loadReconcilerConfig(['--server', 'http://x', '--state-dir='])).toThrow('--state-dir: empty; give the directory for the outbox (a host volume)');
    expect(loadReconcilerConfig(['--server', 'http://x', '--docker-socket', 'none']).dockerSocket).toBeUndefined();
  });

  it('requires --server', () => {
    expect(() => loadReconcilerConfig([])).toThrow('missing required flag --server (or ECS_ID_MAPPER_SERVER)');
  });

  it('rejects a malformed --server', () => {
    expect(() => loadReconcilerConfig(['--server', 'mapper:5001'])).toThrow('--server: expected an http(s) URL, got "mapper:5001"');
  });

  it('parses durations and disables docker with none', () => {
    const c = loadReconcilerConfig(['--server', 'http://m:5001', '--resync-interval', '250ms', '--full-sync-interval', '5', '--docker-socket', 'none']);
    expect(c.resyncIntervalMs).toBe(250);
    expect(c.fullSyncIntervalMs).toBe(5000);
    expect(c.dockerSocket).toBeUndefined();
    expect(c.ecsAgentUrl.href).toBe('http://127.0.0.1:51678/');
  });

  it('keeps a 3 MiB heap headroom by default, takes 0 to leave collections to V8, and rejects a negative one', () => {
    expect(loadReconcilerConfig(['--server', 'http://m:5001']).heapHeadroomBytes).toBe(3 * 1024 * 1024);
    expect(loadReconcilerConfig(['--server', 'http://m:5001', '--heap-headroom-bytes', '0']).heapHeadroomBytes).toBe(0);
    expect(() => loadReconcilerConfig(['--server', 'http://m:5001', '--heap-headroom-bytes', '-1'])).toThrow('--heap-headroom-bytes');
  });
});

describe('commands', () => {
  it('render --help without requiring flags', () => {
    const r = loadCommand('reconciler', ['--help'], {});
    expect(r.kind).toBe('help');
    expect(r.kind === 'help' && r.text).toContain('--server');
    expect(r.kind === 'help' && r.text).toContain('ECS_ID_MAPPER_SERVER');
  });

  it('backup and restore refuse an empty file name and -, which reads as a stream', () => {
    for (const command of ['backup', 'restore']) {
      expect(() => loadCommand(command, ['--store', 'sqlite:/tmp/x.db', ''], {})).toThrow(`${command} needs `);
      expect(() => loadCommand(command, ['--store', 'sqlite:/tmp/x.db', '-'], {})).toThrow(`${command} works on a file, not standard`);
    }
    expect(loadCommand('backup', ['--store', 'sqlite:/tmp/x.db', './-'], {})).toMatchObject({ kind: 'run', config: { destination: './-' } });
  });

  it('simulate-host refuses a host the reconciler would refuse, and more tasks than host ports', () => {
    expect(() => loadCommand('simulate-host', ['--tasks', '10001'], {})).toThrow('--tasks: must be at most 10000');
    expect(() => loadCommand('simulate-host', ['--cluster', ''], {})).toThrow(/^--cluster: an ECS cluster name is 1 to 255/);
    expect(() => loadCommand('simulate-host', ['--cluster', 'a/b'], {})).toThrow(/^--cluster: /);
    expect(() => loadCommand('simulate-host', ['--instance-id', 'not-an-instance'], {})).toThrow(/^--instance-id: expected an EC2 instance id/);
    // Its control API has no authentication: loopback only, as its help says.
    expect(() => loadCommand('simulate-host', ['--host', '0.0.0.0'], {})).toThrow('--host: "0.0.0.0" is not a loopback address (127.0.0.1, ::1 or localhost): the control API has no authentication');
    for (const host of ['127.0.0.2', '::1', 'localhost']) expect(loadCommand('simulate-host', ['--host', host], {}).kind).toBe('run');
    expect(loadCommand('simulate-host', ['--cluster', 'prod_east-1', '--instance-id', 'i-0abc12345678'], {})).toMatchObject({ config: { cluster: 'prod_east-1', instanceId: 'i-0abc12345678' } });
  });

  it('simulate-host --pending-for: 1s unless given, 0 turns it off, anything but a duration is refused in one line', () => {
    expect(loadCommand('simulate-host', [], {})).toMatchObject({ config: { pendingForMs: 1000 } });
    expect(loadCommand('simulate-host', ['--pending-for', '0'], {})).toMatchObject({ config: { pendingForMs: 0 } });
    expect(loadCommand('simulate-host', [], { ECS_ID_MAPPER_PENDING_FOR: '250ms' })).toMatchObject({ config: { pendingForMs: 250 } });
    expect(() => loadCommand('simulate-host', ['--pending-for', 'soon'], {})).toThrow('--pending-for: not a duration: "soon"');
    expect(() => loadCommand('simulate-host', ['--pending-for', '-1s'], {})).toThrow(/^--pending-for: /);
    expect(() => loadCommand('simulate-host', ['--pending-for', '600h'], {})).toThrow(/^--pending-for: must be at most 596h/);
  });

  it('reject an unknown command', () => {
    expect(() => loadCommand('serve', [], {})).toThrow('unknown command "serve"');
  });

  it('lookup takes exactly one id', () => {
    expect(() => loadCommand('lookup', [], {})).toThrow('lookup needs one id');
    expect(() => loadCommand('lookup', [''], {})).toThrow('lookup needs one id, got an empty one');
    const r = loadCommand('lookup', ['abc', '--json'], { ECS_ID_MAPPER_SERVER: 'http://h:1' });
    expect(r).toMatchObject({ kind: 'run', command: 'lookup', config: { id: 'abc', json: true } });
  });

  it('simpledb-local falls back to the standard AWS key variables', () => {
    const r = loadCommand('simpledb-local', [], { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' });
    expect(r).toMatchObject({ kind: 'run', config: { accessKeyId: 'AK', secretAccessKey: 'SK' } });
    expect(() => loadCommand('simpledb-local', [], {})).toThrow(/needs --access-key-id/);
  });
});

describe('unknown ECS_ID_MAPPER_* variables', () => {
  it('are warned about, with the closest setting when one is near, and change nothing', () => {
    const env = { ECS_ID_MAPPER_RETENTON: '1d', ECS_ID_MAPPER_PORT: '5002', ECS_ID_MAPPER_SERVER: 'http://mapper:5001', ECS_ID_MAPPER_FOO: 'x', PATH: '/bin' };
    const loaded = loadCommand('server', [], env);
    expect(loaded.kind === 'run' && loaded.warnings).toEqual([
      'ECS_ID_MAPPER_FOO is not a setting of any command; it is ignored',
      'ECS_ID_MAPPER_RETENTON is not a setting of any command; it is ignored (did you mean ECS_ID_MAPPER_RETENTION?)',
    ]);
    // ECS_ID_MAPPER_SERVER is the reconciler's: one environment may serve both commands.
    expect(loaded.kind === 'run' && (loaded.config as { retentionMs: number }).retentionMs).toBe(7 * 24 * 3_600_000);
  });

  it('warn about nothing when every variable is some command\'s setting', () => {
    const loaded = loadCommand('reconciler', [], { ECS_ID_MAPPER_SERVER: 'http://mapper:5001', ECS_ID_MAPPER_REPORT_TOKEN: 't', ECS_ID_MAPPER_STORE: 'sqlite::memory:' });
    expect(loaded.kind === 'run' && loaded.warnings).toEqual([]);
  });
});

describe('NODE_EXTRA_CA_CERTS', () => {
  const server = ['--server', 'https://mapper.internal'];
  const warningsWith = (path: string) => {
    const loaded = loadCommand('reconciler', server, { NODE_EXTRA_CA_CERTS: path });
    return loaded.kind === 'run' ? loaded.warnings : [];
  };
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const inDir = (name: string, content: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-extra-ca-'));
    dirs.push(dir);
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('warns nothing when the file holds a certificate', () => {
    expect(warningsWith(fileURLToPath(SELF_SIGNED_CERT))).toEqual([]);
  });

  it('warns nothing for a private CA\'s root, alone or in a bundle with its intermediate', () => {
    expect(warningsWith(fileURLToPath(PRIVATE_CA_CERT))).toEqual([]);
    const bundle = inDir('bundle.pem', readFileSync(INTERMEDIATE_CERT, 'utf8') + readFileSync(PRIVATE_CA_CERT, 'utf8'));
    expect(warningsWith(bundle)).toEqual([]);
  });

  it('warns at start when the file holds no root, only certificates another CA issued (a server\'s own, an intermediate)', () => {
    for (const cert of [PRIVATE_CA_LEAF_CERT, INTERMEDIATE_CERT]) {
      const path = fileURLToPath(cert);
      expect(warningsWith(path)).toEqual([
        `NODE_EXTRA_CA_CERTS=${path} holds no root certificate, only certificates another CA issued (a server's own certificate, or an intermediate without its root); Node verifies a chain up to a certificate that issued itself: give it the private CA's root certificate`,
      ]);
    }
  });

  it('warns at start when the file is missing: Node ignores it and no private CA is trusted', () => {
    expect(warningsWith('/nonexistent/ca.pem')).toEqual([
      'NODE_EXTRA_CA_CERTS=/nonexistent/ca.pem cannot be read (ENOENT); Node ignores it, so a server or Vault behind a private CA will not be trusted',
    ]);
  });

  it('warns at start when the file is empty, which Node ignores without a word', () => {
    const path = inDir('ca.pem', '');
    expect(warningsWith(path)).toEqual([`NODE_EXTRA_CA_CERTS=${path} is empty; Node ignores it, so a server or Vault behind a private CA will not be trusted`]);
  });

  it('warns at start when the file holds no PEM certificate (a key, garbage, a broken certificate)', () => {
    for (const content of ['-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n', 'not a pem\n', '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n']) {
      const path = inDir('ca.pem', content);
      expect(warningsWith(path)).toEqual([
        `NODE_EXTRA_CA_CERTS=${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); Node ignores it, so a server or Vault behind a private CA will not be trusted`,
      ]);
    }
  });
});

describe('unknown flags', () => {
  it('are refused with the closest flag named when one is near', () => {
    expect(() => loadServerConfig(['--retenton', '1d'])).toThrow('unknown flag "--retenton" (did you mean --retention? see --help)');
    expect(() => loadServerConfig(['--prot', '1'])).toThrow('unknown flag "--prot" (did you mean --port? see --help)');
    expect(() => loadServerConfig(['--foo'])).toThrow('unknown flag "--foo" (see --help)');
  });
});

describe('--host-gone-after', () => {
  it('defaults to an hour, takes 0 for never, and must be longer than --host-stale-after', () => {
    expect(loadServerConfig([]).hostGoneAfterMs).toBe(3_600_000);
    expect(loadServerConfig(['--host-gone-after', '0']).hostGoneAfterMs).toBe(0);
    expect(() => loadServerConfig(['--host-gone-after', '10m'])).toThrow('--host-gone-after (600 s) must be longer than --host-stale-after (900 s), or 0 to never retire hosts');
  });
});

describe('report tokens', () => {
  it.each([
    ['a trailing newline', 's3cret-token\n', 'ends with a line break (read from a file with a trailing newline?)'],
    ['a trailing CRLF', 's3cret-token\r\n', 'ends with a line break (read from a file with a trailing newline?)'],
    ['a tab inside', 's3cret\ttoken', 'holds a control character'],
    ['a non-ASCII letter', 's3crét-token', 'holds a character outside printable ASCII'],
    ['a leading space', ' s3cret-token', 'starts or ends with a space'],
  ])('are refused, without being quoted, when they hold %s', (_what, token, problem) => {
    for (const [load, source] of [
      [() => loadServerConfig(['--report-token', token]), '--report-token'],
      [() => loadServerConfig(['--report-token', 'new-token', '--report-token-previous', token]), '--report-token-previous'],
      [() => loadReconcilerConfig(['--server', 'http://127.0.0.1:5001', '--report-token', token]), '--report-token'],
      [() => loadServerConfig([], { ECS_ID_MAPPER_REPORT_TOKEN: token }), 'ECS_ID_MAPPER_REPORT_TOKEN'],
    ] as const) {
      expect(load).toThrow(`${source}: the token ${problem}; an HTTP header cannot carry it as it is`);
      expect(load).not.toThrow(/s3cr/);
    }
  });

  it('are refused empty on the command line, which would open the report routes over a token in the environment', () => {
    expect(() => loadServerConfig(['--report-token='], { ECS_ID_MAPPER_REPORT_TOKEN: 's3cret' })).toThrow(/^--report-token: empty; leave the flag out/);
    expect(() => loadReconcilerConfig(['--server', 'http://127.0.0.1:5001', '--report-token', ''])).toThrow(/^--report-token: empty/);
    expect(loadServerConfig([], { ECS_ID_MAPPER_REPORT_TOKEN: '' }).reportToken).toBeUndefined();
  });

  it('may hold any printable ASCII, spaces inside included', () => {
    expect(loadServerConfig(['--report-token', 'a b~!@#$%^&*()_+{}|:"<>?']).reportToken).toBe('a b~!@#$%^&*()_+{}|:"<>?');
  });
});

describe('--report-token-previous', () => {
  it('is accepted beside --report-token, by flag or env var', () => {
    const config = loadServerConfig(['--report-token', 'new'], { ECS_ID_MAPPER_REPORT_TOKEN_PREVIOUS: 'old' });
    expect([config.reportToken, config.reportTokenPrevious]).toEqual(['new', 'old']);
    expect(loadServerConfig([]).reportTokenPrevious).toBeUndefined();
  });

  it('is refused alone, without echoing it, since it would leave reports open to anyone', () => {
    expect(() => loadServerConfig(['--report-token-previous', 'old-s3cret'])).toThrow('--report-token-previous needs --report-token (the new token): alone it would leave reports open to anyone');
    expect(() => loadServerConfig(['--report-token-previous', 'old-s3cret'])).not.toThrow(/old-s3cret/);
  });

  it('may come without --report-token when Vault holds the current token', () => {
    const config = loadServerConfig(['--report-token-previous', 'old', '--vault-addr', 'http://127.0.0.1:8200', '--vault-token', 't']);
    expect(config.reportTokenPrevious).toBe('old');
  });
});
