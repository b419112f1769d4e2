import { afterEach, describe, expect, it } from 'vitest';
import { readFixture } from '../../test/fixtures.js';
import { refusedPort, reply, startLoopback, type LoopbackServer } from '../../test/support/loopback.js';
import { createEcsAgentClient } from './ecs-agent.js';
import { failure } from '../../test/support/observation.js';

let server: LoopbackServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A loopback agent answering each path with a fixed status and body. */
async function agent(routes: Record<string, [number, string]>, timeoutMs = 2000) {
  server = await startLoopback((req, res) => {
    const route = routes[req.url ?? ''];
    if (route) reply(res, route[0], route[1]);
    else reply(res, 200, readFixture('ecs-agent/root-available-commands.json'));
  });
  return createEcsAgentClient({ baseUrl: server.url, timeoutMs });
}

/** A Docker container id as Docker and the agent give it. */
const FULL_ID = '79c796ed2a7f864f485c76f83f3165488097279d296a7c05bd5201a1c69b2920';

describe('ECS agent client: /v1/tasks', () => {
  it('parses the documented listing (long ARN, old agent fields only)', async () => {
    const client = await agent({ '/v1/tasks': [200, readFixture('ecs-agent/v1-tasks.docs.json')] });
    const tasks = await client.tasks();
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({
      arn: 'arn:aws:ecs:us-west-2:012345678910:task/default/example5-58ff-46c9-ae05-543f8example',
      task_id: 'example5-58ff-46c9-ae05-543f8example',
      family: 'hello_world',
      version: '8',
      desired_status: 'RUNNING',
      known_status: 'RUNNING',
    });
    expect(tasks[0].containers).toEqual([
      {
        docker_id: '9581a69a761a557fbfce1d0f6745e4af5b9dbfb86b6b2c5c4df156f1a5932ff1',
        docker_name: 'ecs-hello_world-8-mysql-fcae8ac8f9f1d89d8301',
        name: 'mysql',
        image: null,
        started_at: null,
        ports: [],
        restart_count: null,
      },
      {
        docker_id: 'bf25c5c5b2d4dba68846c7236e75b6915e1e778d31611e3c6a06831e39814a15',
        docker_name: 'ecs-hello_world-8-wordpress-e8bfddf9b488dff36c00',
        name: 'wordpress',
        image: null,
        started_at: null,
        ports: [],
        restart_count: null,
      },
    ]);
  });

  it('takes the task id from old short ARNs and reads a STOPPED task without DesiredStatus', async () => {
    const client = await agent({ '/v1/tasks': [200, readFixture('ecs-agent/v1-tasks-old-arn-stopped.docs.json')] });
    const tasks = await client.tasks();
    expect(tasks.map((t) => [t.task_id, t.known_status, t.desired_status, t.containers.length])).toEqual([
      ['090eff9b-1ce3-4db6-848a-a8d14064fd24', 'STOPPED', null, 2],
      ['1810e302-eaea-4da9-a638-097bea534740', 'RUNNING', 'RUNNING', 2],
    ]);
  });

  it('reads the newer-agent fields: image, times, ports, restart count', async () => {
    const client = await agent({ '/v1/tasks': [200, readFixture('ecs-agent/v1-tasks-bridge-full.composed.json')] });
    const tasks = await client.tasks();
    expect(tasks.map((t) => [t.task_id, t.known_status, t.desired_status])).toEqual([
      ['b8b1cf532d0e46ba8d44a40d1de16772', 'RUNNING', 'RUNNING'],
      ['027002862d4b485ba3da5e935e0bc10c', 'STOPPED', null],
      ['265f161270634aeaab7d0e88c29389c3', 'PENDING', 'RUNNING'],
    ]);
    const [mysql, wordpress] = tasks[0].containers;
    expect(mysql).toEqual({
      docker_id: '9581a69a761a557fbfce1d0f6745e4af5b9dbfb86b6b2c5c4df156f1a5932ff1',
      docker_name: 'ecs-hello_world-8-mysql-fcae8ac8f9f1d89d8301',
      name: 'mysql',
      image: 'mysql',
      started_at: '2023-10-08T20:09:11.9123Z',
      ports: [{ container_port: 3306, host_port: 32768, protocol: 'tcp' }],
      restart_count: null,
    });
    expect(wordpress.restart_count).toBe(0);
    expect(wordpress.ports).toEqual([{ container_port: 80, host_port: 80, protocol: 'tcp' }]);
    expect(tasks[1].containers).toEqual([]);
  });

  it('reads the agent test listing: a port without host port, extra Networks and Volumes ignored', async () => {
    // The agent's unit test names its container with a placeholder id; a real agent lists Docker's full one.
    const body = readFixture('ecs-agent/v1-tasks.ecs-agent-test.json').replace('c0123456789ABC', FULL_ID);
    const client = await agent({ '/v1/tasks': [200, body] });
    const [task] = await client.tasks();
    expect(task).toMatchObject({ arn: 't1', task_id: 't1', family: 'sleep', version: '1' });
    expect(task.containers[0]).toMatchObject({ docker_id: FULL_ID, image: 'busybox', ports: [{ container_port: 80, host_port: null, protocol: 'tcp' }] });
  });

  it.each([
    ['the agent test\'s placeholder', 'c0123456789ABC'],
    ['upper case', FULL_ID.toUpperCase()],
    ['12 characters', FULL_ID.slice(0, 12)],
  ])('fails with ERR_GARBAGE, naming the container, on a DockerId that is not a full Docker id: %s', async (_name, id) => {
    const client = await agent({ '/v1/tasks': [200, readFixture('ecs-agent/v1-tasks.docs.json').replace('bf25c5c5b2d4dba68846c7236e75b6915e1e778d31611e3c6a06831e39814a15', id)] });
    const error = await failure(client.tasks());
    expect(error).toMatchObject({ code: 'ERR_GARBAGE' });
    expect(error.message).toBe(`ECS agent /v1/tasks: Tasks[0].Containers[1].DockerId: not a full Docker container id (64 lower-case hex): ${JSON.stringify(id)}`);
  });

  it('accepts an empty listing as a valid observation of no tasks', async () => {
    const client = await agent({ '/v1/tasks': [200, '{"Tasks":[]}'] });
    expect(await client.tasks()).toEqual([]);
  });

  it.each([
    [404, 'ecs-agent/v1-tasks-error-list.json'],
    [500, 'ecs-agent/v1-tasks-error-list.json'],
    [400, 'ecs-agent/v1-tasks-error-single-task.json'],
  ])('fails with ERR_HTTP_STATUS on %i with a zero-valued body', async (status, fixture) => {
    const client = await agent({ '/v1/tasks': [status, readFixture(fixture)] });
    const error = await failure(client.tasks());
    expect(error).toMatchObject({ source: 'agent', code: 'ERR_HTTP_STATUS', status });
  });

  it('fails with ERR_ZERO_VALUE on 200 {"Tasks":null}', async () => {
    const client = await agent({ '/v1/tasks': [200, readFixture('ecs-agent/v1-tasks-error-list.json')] });
    expect(await failure(client.tasks())).toMatchObject({ code: 'ERR_ZERO_VALUE' });
  });

  it('fails with ERR_WRONG_PATH when the answer is the AvailableCommands index', async () => {
    const client = await agent({});
    expect(await failure(client.tasks())).toMatchObject({ code: 'ERR_WRONG_PATH' });
  });

  it.each([
    ['a single task where a listing is expected', readFixture('ecs-agent/v1-tasks-dockerid.docs.json')],
    ['the zero-valued single task', readFixture('ecs-agent/v1-tasks-error-single-task.json')],
    ['HTML', '<html>oops</html>'],
    ['truncated JSON', '{"Tasks":[{"Arn":'],
    ['a JSON array', '[]'],
    ['Tasks of the wrong type', '{"Tasks":{}}'],
    ['an unknown KnownStatus', '{"Tasks":[{"Arn":"a/b","KnownStatus":"DEAD","Family":"f","Version":"1","Containers":[]}]}'],
    ['an empty Arn', '{"Tasks":[{"Arn":"","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[]}]}'],
    ['a numeric DockerId', '{"Tasks":[{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":1,"DockerName":"n","Name":"c"}]}]}'],
    ['a CreatedAt that is no timestamp, though it is not kept', '{"Tasks":[{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":"x","DockerName":"n","Name":"c","CreatedAt":"yesterday"}]}]}'],
    ['a numeric ImageID, though it is not kept', '{"Tasks":[{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":"x","DockerName":"n","Name":"c","ImageID":7}]}]}'],
    ['a port out of range', '{"Tasks":[{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":"x","DockerName":"n","Name":"c","Ports":[{"ContainerPort":70000}]}]}]}'],
  ])('fails with ERR_GARBAGE on %s', async (_name, body) => {
    const client = await agent({ '/v1/tasks': [200, body] });
    expect(await failure(client.tasks())).toMatchObject({ source: 'agent', code: 'ERR_GARBAGE' });
  });

  it('fails with ERR_GARBAGE on a Docker id listed twice in one task', async () => {
    const c = `{"DockerId":"${FULL_ID}","DockerName":"n","Name":"c"}`;
    const client = await agent({ '/v1/tasks': [200, `{"Tasks":[{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[${c},${c}]}]}`] });
    const error = await failure(client.tasks());
    expect(error).toMatchObject({ code: 'ERR_GARBAGE', message: `ECS agent /v1/tasks: Tasks[0]: container ${FULL_ID} is listed twice in this task` });
  });

  it('reads a listing whose Tasks key comes twice afresh: an id of the first one is no duplicate in the second', async () => {
    const t = `{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":"${FULL_ID}","DockerName":"n","Name":"c"}]}`;
    const client = await agent({ '/v1/tasks': [200, `{"Tasks":[${t}],"Tasks":[${t}]}`] });
    expect((await client.tasks()).map((task) => task.containers[0].docker_id)).toEqual([FULL_ID]);
  });

  it('skips a container the agent has not created yet (empty DockerId)', async () => {
    const client = await agent({
      '/v1/tasks': [200, '{"Tasks":[{"Arn":"a/b","KnownStatus":"PENDING","DesiredStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":"","DockerName":"","Name":"c"}]}]}'],
    });
    const [task] = await client.tasks();
    expect(task.containers).toEqual([]);
  });

  it('leaves out a port range the agent lists before Docker bound it (no ContainerPort), not port 0', async () => {
    // agent/handlers/v1: a range is ContainerPortRange with ContainerPort omitted until its bindings are known.
    const ports = '[{"ContainerPortRange":"8000-8010","Protocol":"tcp"},{"ContainerPort":80,"Protocol":"tcp","HostPort":32768}]';
    const client = await agent({
      '/v1/tasks': [200, `{"Tasks":[{"Arn":"a/b","KnownStatus":"RUNNING","Family":"f","Version":"1","Containers":[{"DockerId":"${FULL_ID}","DockerName":"n","Name":"c","Ports":${ports}}]}]}`],
    });
    const [task] = await client.tasks();
    expect(task.containers[0].ports).toEqual([{ container_port: 80, host_port: 32768, protocol: 'tcp' }]);
  });
});

describe('ECS agent client: /v1/metadata', () => {
  it('parses the documented metadata', async () => {
    const client = await agent({ '/v1/metadata': [200, readFixture('ecs-agent/v1-metadata.docs.json')] });
    expect(await client.metadata()).toEqual({
      cluster: 'cluster_name',
      container_instance_arn: 'arn:aws:ecs:region:aws_account_id:container-instance/cluster_name/container_instance_id',
      version: 'Amazon ECS Agent - v1.30.0 (02ff320c)',
    });
  });

  it('parses the agent test metadata', async () => {
    const client = await agent({ '/v1/metadata': [200, readFixture('ecs-agent/v1-metadata.ecs-agent-test.json')] });
    expect(await client.metadata()).toEqual({ cluster: 'test-cluster', container_instance_arn: 'test/arn', version: '1.0.0' });
  });

  it.each([
    ['arn:aws:ecs:eu-west-1:123456789012:cluster/prod-web', 'prod-web'],
    ['arn:aws-cn:ecs:cn-north-1:123456789012:cluster/batch', 'batch'],
  ])('reduces a cluster given as an ARN (ECS_CLUSTER takes one) to its name, as task ARNs and filters have it: %s', async (arn, name) => {
    const body = { ...JSON.parse(readFixture('ecs-agent/v1-metadata.docs.json')) as Record<string, string>, Cluster: arn };
    const client = await agent({ '/v1/metadata': [200, JSON.stringify(body)] });
    expect((await client.metadata()).cluster).toBe(name);
  });

  it('fails with ERR_ZERO_VALUE on 200 with the zero-valued metadata (empty Cluster)', async () => {
    const client = await agent({ '/v1/metadata': [200, readFixture('ecs-agent/v1-metadata-error.json')] });
    expect(await failure(client.metadata())).toMatchObject({ code: 'ERR_ZERO_VALUE' });
  });

  it('fails with ERR_HTTP_STATUS on 500 with the zero-valued metadata', async () => {
    const client = await agent({ '/v1/metadata': [500, readFixture('ecs-agent/v1-metadata-error.json')] });
    expect(await failure(client.metadata())).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 500 });
  });

  it.each([
    ['Cluster', 255],
    ['ContainerInstanceArn', 1024],
    ['Version', 255],
  ])('fails with ERR_GARBAGE on a %s longer than the server takes (%i characters)', async (key, max) => {
    const body = { ...JSON.parse(readFixture('ecs-agent/v1-metadata.docs.json')) as Record<string, string>, [key]: 'x'.repeat(max + 1) };
    const client = await agent({ '/v1/metadata': [200, JSON.stringify(body)] });
    expect(await failure(client.metadata())).toMatchObject({
      code: 'ERR_GARBAGE', message: `ECS agent /v1/metadata: metadata.${key}: longer than the ${max} characters the server takes (${max + 1})`,
    });
  });

  it('fails with ERR_WRONG_PATH on the AvailableCommands index', async () => {
    const client = await agent({});
    expect(await failure(client.metadata())).toMatchObject({ code: 'ERR_WRONG_PATH' });
  });

  it('fails with ERR_GARBAGE when Cluster is not a string', async () => {
    const client = await agent({ '/v1/metadata': [200, '{"Cluster":5}'] });
    expect(await failure(client.metadata())).toMatchObject({ code: 'ERR_GARBAGE' });
  });
});

describe('ECS agent client: transport failures', () => {
  it('fails with ERR_TIMEOUT when the agent never answers', async () => {
    server = await startLoopback(() => {
      // never answers
    });
    const client = createEcsAgentClient({ baseUrl: server.url, timeoutMs: 150 });
    expect(await failure(client.tasks())).toMatchObject({ source: 'agent', code: 'ERR_TIMEOUT' });
  });

  it('fails with ERR_TIMEOUT when the body stalls after the headers', async () => {
    server = await startLoopback((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"Tasks":[');
    });
    const client = createEcsAgentClient({ baseUrl: server.url, timeoutMs: 150 });
    expect(await failure(client.tasks())).toMatchObject({ code: 'ERR_TIMEOUT' });
  });

  it('fails with ERR_UNREACHABLE when the port is refused', async () => {
    const port = await refusedPort();
    const client = createEcsAgentClient({ baseUrl: new URL(`http://127.0.0.1:${port}`), timeoutMs: 1000 });
    expect(await failure(client.metadata())).toMatchObject({ source: 'agent', code: 'ERR_UNREACHABLE' });
  });

  it('rethrows the caller abort as is, not as a failed observation', async () => {
    server = await startLoopback(() => {
      // never answers
    });
    const client = createEcsAgentClient({ baseUrl: server.url, timeoutMs: 5000 });
    const controller = new AbortController();
    const pending = client.tasks(controller.signal);
    controller.abort(new Error('shutting down'));
    await expect(pending).rejects.toThrow('shutting down');
  });
});
