// Tasks derived from a real Docker engine's containers and their ECS labels, so the simulated agent
// lists exactly what the engine runs: running → RUNNING, created only → PENDING, all exited →
// STOPPED, removed → gone from the listing. Containers without a task-arn label are not ECS's.
import { taskIdFromArn } from '../../wire/index.js';
import { ECS_LABELS, type DockerContainer } from '../../reconciler/sources/types.js';
import type { SimTask, SimTaskStatus } from './model.js';

function taskStatus(containers: DockerContainer[]): SimTaskStatus {
  if (containers.some((c) => c.state === 'running' || c.state === 'restarting' || c.state === 'paused')) return 'RUNNING';
  if (containers.some((c) => c.state === 'created')) return 'PENDING';
  return 'STOPPED';
}

export function tasksFromContainers(containers: DockerContainer[]): SimTask[] {
  const byArn = new Map<string, DockerContainer[]>();
  for (const c of containers) {
    const arn = c.labels[ECS_LABELS.taskArn];
    if (!arn) continue;
    const group = byArn.get(arn) ?? [];
    group.push(c);
    byArn.set(arn, group);
  }
  // Docker lists newest first; a stable order (by ARN, containers by name) keeps listings comparable.
  return [...byArn].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([arn, unsorted]) => {
    const group = [...unsorted].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const labels = group[0].labels;
    const known = taskStatus(group);
    return {
      arn,
      task_id: taskIdFromArn(arn) ?? arn.slice(arn.lastIndexOf('/') + 1),
      family: labels[ECS_LABELS.family] || 'unknown',
      version: labels[ECS_LABELS.version] || '0',
      desired_status: known === 'STOPPED' ? null : 'RUNNING',
      known_status: known,
      containers: group.map((c) => ({
        docker_id: c.id,
        docker_name: c.name,
        name: c.labels[ECS_LABELS.containerName] || c.name,
        image: c.image,
        // Docker's listing gives no image id here; v1 then shows "ImageID": "", as the agent does for an unset one.
        image_id: '',
        created_at: null,
        started_at: null,
        ports: [],
        restart_count: null,
        exit_code: c.state === 'exited' || c.state === 'dead' ? c.exit_code : null,
      })),
      // Listed by Docker, so created.
      creation: 'created' as const,
      listed_at: null,
      stopped_at: null,
    };
  });
}
