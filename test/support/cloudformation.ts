// A small, offline CloudFormation template checker for charts/ecs (no validator on npm both works
// offline and is kept up to date: the npm `cfn-lint` ships a 2019 resource specification, cfn-lint
// proper is Python). It checks what most often breaks a template before AWS sees it:
//   - YAML with the short-form intrinsic tags (!Ref, !Sub, !GetAtt, ...) parses into the long form;
//   - every resource type is one we know, has its required properties and no unknown ones;
//   - every Ref / GetAtt / ${} in Sub / Condition / DependsOn names something that exists
//     (GetAtt attributes are checked against the type's documented return values);
//   - Outputs have a Value and Export names are unique.
// The per-type tables below cover the types charts/ecs uses; they were written from the AWS
// CloudFormation resource reference pages. A new type must be added here before it can be used.
import { parse, type CollectionTag, type ScalarTag } from 'yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---------------------------------------------------------------------------------------------
// parsing

const FN_SCALAR_OR_SEQ = ['Sub', 'Join', 'If', 'Equals', 'Select', 'Split', 'FindInMap', 'ImportValue', 'Not', 'And', 'Or', 'Base64', 'GetAZs', 'Cidr'] as const;

function intrinsicTags(): Array<ScalarTag | CollectionTag> {
  const tags: Array<ScalarTag | CollectionTag> = [
    { tag: '!Ref', resolve: (v: string) => ({ Ref: v }) },
    { tag: '!Condition', resolve: (v: string) => ({ Condition: v }) },
    {
      tag: '!GetAtt',
      resolve: (v: string) => {
        const dot = v.indexOf('.');
        return { 'Fn::GetAtt': dot < 0 ? [v] : [v.slice(0, dot), v.slice(dot + 1)] };
      },
    },
    { tag: '!GetAtt', collection: 'seq', resolve: (seq) => ({ 'Fn::GetAtt': seq.toJSON() }) },
  ];
  for (const fn of FN_SCALAR_OR_SEQ) {
    tags.push({ tag: `!${fn}`, resolve: (v: string) => ({ [`Fn::${fn}`]: v }) });
    tags.push({ tag: `!${fn}`, collection: 'seq', resolve: (seq) => ({ [`Fn::${fn}`]: seq.toJSON() }) });
    tags.push({ tag: `!${fn}`, collection: 'map', resolve: (map) => ({ [`Fn::${fn}`]: map.toJSON() }) });
  }
  return tags;
}

/** Parses a CloudFormation YAML template into its JSON (long-form intrinsic) shape. */
export function parseTemplate(text: string): Record<string, Json> {
  const doc = parse(text, { customTags: intrinsicTags(), prettyErrors: true, uniqueKeys: true, strict: true });
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('a template must be a YAML mapping');
  return doc as Record<string, Json>;
}

// ---------------------------------------------------------------------------------------------
// what we know about resource types

interface TypeSpec {
  required: string[];
  properties: string[];
  attributes: string[];
}

const TYPES: Record<string, TypeSpec> = {
  'AWS::Logs::LogGroup': {
    required: [],
    properties: ['LogGroupName', 'RetentionInDays', 'KmsKeyId', 'DataProtectionPolicy', 'LogGroupClass', 'Tags', 'FieldIndexPolicies', 'ResourcePolicyDocument', 'DeletionProtectionEnabled', 'BearerTokenAuthenticationEnabled'],
    attributes: ['Arn'],
  },
  'AWS::IAM::Role': {
    required: ['AssumeRolePolicyDocument'],
    properties: ['AssumeRolePolicyDocument', 'Description', 'ManagedPolicyArns', 'MaxSessionDuration', 'Path', 'PermissionsBoundary', 'Policies', 'RoleName', 'Tags'],
    attributes: ['Arn', 'RoleId'],
  },
  'AWS::EC2::SecurityGroup': {
    required: ['GroupDescription'],
    properties: ['GroupDescription', 'GroupName', 'SecurityGroupEgress', 'SecurityGroupIngress', 'Tags', 'VpcId'],
    attributes: ['GroupId', 'VpcId'],
  },
  'AWS::EC2::SecurityGroupIngress': {
    required: ['IpProtocol'],
    properties: ['CidrIp', 'CidrIpv6', 'Description', 'FromPort', 'GroupId', 'GroupName', 'IpProtocol', 'SourcePrefixListId', 'SourceSecurityGroupId', 'SourceSecurityGroupName', 'SourceSecurityGroupOwnerId', 'ToPort'],
    attributes: ['Id'],
  },
  'AWS::ElasticLoadBalancingV2::LoadBalancer': {
    required: [],
    properties: ['IpAddressType', 'LoadBalancerAttributes', 'Name', 'Scheme', 'SecurityGroups', 'SubnetMappings', 'Subnets', 'Tags', 'Type', 'EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic', 'EnablePrefixForIpv6SourceNat', 'MinimumLoadBalancerCapacity', 'Ipv4IpamPoolId'],
    attributes: ['CanonicalHostedZoneID', 'DNSName', 'LoadBalancerArn', 'LoadBalancerFullName', 'LoadBalancerName', 'SecurityGroups'],
  },
  'AWS::ElasticLoadBalancingV2::TargetGroup': {
    required: [],
    properties: ['HealthCheckEnabled', 'HealthCheckIntervalSeconds', 'HealthCheckPath', 'HealthCheckPort', 'HealthCheckProtocol', 'HealthCheckTimeoutSeconds', 'HealthyThresholdCount', 'IpAddressType', 'Matcher', 'Name', 'Port', 'Protocol', 'ProtocolVersion', 'Tags', 'TargetGroupAttributes', 'TargetType', 'Targets', 'UnhealthyThresholdCount', 'VpcId'],
    attributes: ['LoadBalancerArns', 'TargetGroupArn', 'TargetGroupFullName', 'TargetGroupName'],
  },
  'AWS::ElasticLoadBalancingV2::Listener': {
    required: ['DefaultActions', 'LoadBalancerArn'],
    properties: ['AlpnPolicy', 'Certificates', 'DefaultActions', 'LoadBalancerArn', 'MutualAuthentication', 'Port', 'Protocol', 'SslPolicy', 'ListenerAttributes'],
    attributes: ['ListenerArn'],
  },
  'AWS::ECS::TaskDefinition': {
    required: [],
    properties: ['ContainerDefinitions', 'Cpu', 'EphemeralStorage', 'ExecutionRoleArn', 'Family', 'InferenceAccelerators', 'IpcMode', 'Memory', 'NetworkMode', 'PidMode', 'PlacementConstraints', 'ProxyConfiguration', 'RequiresCompatibilities', 'RuntimePlatform', 'Tags', 'TaskRoleArn', 'Volumes', 'EnableFaultInjection'],
    attributes: ['TaskDefinitionArn'],
  },
  'AWS::ECS::Service': {
    required: [],
    properties: ['AvailabilityZoneRebalancing', 'CapacityProviderStrategy', 'Cluster', 'DeploymentConfiguration', 'DeploymentController', 'DesiredCount', 'EnableECSManagedTags', 'EnableExecuteCommand', 'HealthCheckGracePeriodSeconds', 'LaunchType', 'LoadBalancers', 'NetworkConfiguration', 'PlacementConstraints', 'PlacementStrategies', 'PlatformVersion', 'PropagateTags', 'Role', 'SchedulingStrategy', 'ServiceConnectConfiguration', 'ServiceName', 'ServiceRegistries', 'Tags', 'TaskDefinition', 'VolumeConfigurations', 'VpcLatticeConfigurations'],
    attributes: ['Name', 'ServiceArn'],
  },
  'AWS::Route53::RecordSet': {
    required: ['Name', 'Type'],
    properties: ['AliasTarget', 'CidrRoutingConfig', 'Comment', 'Failover', 'GeoLocation', 'GeoProximityLocation', 'HealthCheckId', 'HostedZoneId', 'HostedZoneName', 'MultiValueAnswer', 'Name', 'Region', 'ResourceRecords', 'SetIdentifier', 'TTL', 'Type', 'Weight'],
    attributes: [],
  },
  'AWS::ServiceDiscovery::Service': {
    required: [],
    properties: ['Description', 'DnsConfig', 'HealthCheckConfig', 'HealthCheckCustomConfig', 'Name', 'NamespaceId', 'ServiceAttributes', 'Tags', 'Type'],
    attributes: ['Arn', 'Id', 'Name'],
  },
  'AWS::SDB::Domain': { required: [], properties: ['Description'], attributes: [] },
  'AWS::SSM::Parameter': {
    required: ['Type', 'Value'],
    properties: ['AllowedPattern', 'DataType', 'Description', 'Name', 'Policies', 'Tags', 'Tier', 'Type', 'Value'],
    attributes: ['Type', 'Value'],
  },
};

/** Container definition fields (AWS::ECS::TaskDefinition ContainerDefinition) we accept. */
const CONTAINER_DEFINITION_FIELDS = new Set(['Command', 'Cpu', 'DependsOn', 'DisableNetworking', 'DnsSearchDomains', 'DnsServers', 'DockerLabels', 'DockerSecurityOptions', 'EntryPoint', 'Environment', 'EnvironmentFiles', 'Essential', 'ExtraHosts', 'FirelensConfiguration', 'HealthCheck', 'Hostname', 'Image', 'Interactive', 'Links', 'LinuxParameters', 'LogConfiguration', 'Memory', 'MemoryReservation', 'MountPoints', 'Name', 'PortMappings', 'Privileged', 'PseudoTerminal', 'ReadonlyRootFilesystem', 'RepositoryCredentials', 'ResourceRequirements', 'RestartPolicy', 'Secrets', 'StartTimeout', 'StopTimeout', 'SystemControls', 'Ulimits', 'User', 'VolumesFrom', 'WorkingDirectory', 'CredentialSpecs', 'VersionConsistency']);

const PSEUDO_PARAMETERS = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);
const TOP_LEVEL = new Set(['AWSTemplateFormatVersion', 'Description', 'Metadata', 'Parameters', 'Rules', 'Mappings', 'Conditions', 'Transform', 'Resources', 'Outputs']);
const RESOURCE_KEYS = new Set(['Type', 'Properties', 'DependsOn', 'Condition', 'Metadata', 'DeletionPolicy', 'UpdateReplacePolicy', 'UpdatePolicy', 'CreationPolicy']);
const PARAMETER_TYPES = /^(String|Number|List<Number>|CommaDelimitedList|AWS::[A-Za-z0-9:]+|List<AWS::[A-Za-z0-9:]+>|AWS::SSM::Parameter::Value<.+>)$/;

export function knownResourceTypes(): string[] {
  return Object.keys(TYPES);
}

// ---------------------------------------------------------------------------------------------
// checking

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every `${Name}` / `${Name.Attr}` in a Fn::Sub string (`${!Literal}` is an escape, not a reference). */
export function subReferences(text: string): string[] {
  return [...text.matchAll(/\$\{([^}!][^}]*)\}/g)].map((m) => m[1].trim());
}

/**
 * Returns the problems found in a parsed template; an empty list means it passed every check.
 * Messages name the path (Resources.X.Properties.Y) so a failing test says where to look.
 */
export function checkTemplate(template: Record<string, Json>): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(template)) if (!TOP_LEVEL.has(key)) problems.push(`unknown top-level section ${key}`);

  const parameters = isObject(template.Parameters) ? template.Parameters : {};
  const resources = isObject(template.Resources) ? template.Resources : {};
  const conditions = isObject(template.Conditions) ? template.Conditions : {};
  const mappings = isObject(template.Mappings) ? template.Mappings : {};
  if (Object.keys(resources).length === 0) problems.push('Resources is empty or missing');

  for (const [name, p] of Object.entries(parameters)) {
    if (!isObject(p) || typeof p.Type !== 'string' || !PARAMETER_TYPES.test(p.Type)) problems.push(`Parameters.${name}: Type missing or unknown`);
    else if (p.AllowedValues !== undefined && p.Default !== undefined && Array.isArray(p.AllowedValues) && !p.AllowedValues.includes(p.Default)) {
      problems.push(`Parameters.${name}: Default ${JSON.stringify(p.Default)} is not among AllowedValues`);
    } else if (typeof p.AllowedPattern === 'string' && typeof p.Default === 'string' && p.Default !== '' && !new RegExp(p.AllowedPattern).test(p.Default)) {
      problems.push(`Parameters.${name}: Default does not match AllowedPattern`);
    }
  }

  const refTargets = new Set([...Object.keys(parameters), ...Object.keys(resources), ...PSEUDO_PARAMETERS]);

  // Walks any value, checking intrinsic functions wherever they appear.
  const walk = (value: Json, path: string, inCondition: boolean): void => {
    if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`, inCondition));
      return;
    }
    if (!isObject(value)) return;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [fn] = keys;
      const arg = value[fn];
      if (fn === 'Ref') {
        if (typeof arg !== 'string' || !refTargets.has(arg)) problems.push(`${path}: Ref to unknown ${JSON.stringify(arg)}`);
        else if (inCondition && resources[arg] !== undefined) problems.push(`${path}: a condition may not Ref a resource (${arg})`);
        return;
      }
      if (fn === 'Fn::GetAtt') {
        if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string') {
          problems.push(`${path}: GetAtt needs Resource.Attribute`);
          return;
        }
        checkGetAtt(arg[0], String(arg[1]), path);
        return;
      }
      if (fn === 'Fn::Sub') {
        const [text, vars] = Array.isArray(arg) ? [arg[0], arg[1]] : [arg, undefined];
        if (typeof text !== 'string') {
          problems.push(`${path}: Sub needs a string`);
          return;
        }
        const local = new Set(isObject(vars) ? Object.keys(vars) : []);
        for (const ref of subReferences(text)) {
          if (local.has(ref)) continue;
          const dot = ref.indexOf('.');
          if (dot > 0 && !ref.startsWith('AWS::')) checkGetAtt(ref.slice(0, dot), ref.slice(dot + 1), path);
          else if (!refTargets.has(ref)) problems.push(`${path}: Sub references unknown \${${ref}}`);
        }
        if (isObject(vars)) walk(vars, `${path}.Sub`, inCondition);
        return;
      }
      if (fn === 'Condition' || fn === 'Fn::If') {
        const name = fn === 'Condition' ? arg : Array.isArray(arg) ? arg[0] : undefined;
        if (typeof name !== 'string' || conditions[name] === undefined) problems.push(`${path}: unknown condition ${JSON.stringify(name)}`);
        if (fn === 'Fn::If') {
          if (!Array.isArray(arg) || arg.length !== 3) problems.push(`${path}: If needs [condition, then, else]`);
          else {
            walk(arg[1], `${path}.If.then`, inCondition);
            walk(arg[2], `${path}.If.else`, inCondition);
          }
        }
        return;
      }
      if (fn === 'Fn::FindInMap') {
        if (!Array.isArray(arg) || arg.length !== 3) problems.push(`${path}: FindInMap needs 3 arguments`);
        else if (typeof arg[0] === 'string' && mappings[arg[0]] === undefined) problems.push(`${path}: unknown mapping ${arg[0]}`);
        if (Array.isArray(arg)) walk(arg, `${path}.FindInMap`, inCondition);
        return;
      }
      if (fn === 'Fn::Equals' && (!Array.isArray(arg) || arg.length !== 2)) problems.push(`${path}: Equals needs 2 arguments`);
      if (fn === 'Fn::Not' && (!Array.isArray(arg) || arg.length !== 1)) problems.push(`${path}: Not needs 1 argument`);
      if ((fn === 'Fn::And' || fn === 'Fn::Or') && (!Array.isArray(arg) || arg.length < 2 || arg.length > 10)) problems.push(`${path}: ${fn} needs 2 to 10 conditions`);
      if (fn === 'Fn::Join' && (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string')) problems.push(`${path}: Join needs [delimiter, list]`);
      if (fn === 'Fn::Select' && (!Array.isArray(arg) || arg.length !== 2)) problems.push(`${path}: Select needs [index, list]`);
      if (fn === 'Fn::Split' && (!Array.isArray(arg) || arg.length !== 2)) problems.push(`${path}: Split needs [delimiter, string]`);
      if (fn === 'Fn::Cidr' && (!Array.isArray(arg) || arg.length !== 3)) problems.push(`${path}: Cidr needs 3 arguments`);
      if (fn.startsWith('Fn::') && !['Fn::Join', 'Fn::Equals', 'Fn::Not', 'Fn::And', 'Fn::Or', 'Fn::Select', 'Fn::Split', 'Fn::Base64', 'Fn::GetAZs', 'Fn::ImportValue', 'Fn::Cidr'].includes(fn)) {
        problems.push(`${path}: unknown intrinsic ${fn}`);
      }
    }
    for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`, inCondition);
  };

  function checkGetAtt(resource: string, attribute: string, path: string): void {
    const r = resources[resource];
    if (!isObject(r)) {
      problems.push(`${path}: GetAtt on unknown resource ${resource}`);
      return;
    }
    const spec = typeof r.Type === 'string' ? TYPES[r.Type] : undefined;
    if (spec && !spec.attributes.includes(attribute)) problems.push(`${path}: ${r.Type} has no attribute ${attribute} (known: ${spec.attributes.join(', ')})`);
  }

  for (const [name, c] of Object.entries(conditions)) walk(c, `Conditions.${name}`, true);

  for (const [name, r] of Object.entries(resources)) {
    const path = `Resources.${name}`;
    if (!isObject(r)) {
      problems.push(`${path}: not a mapping`);
      continue;
    }
    for (const key of Object.keys(r)) if (!RESOURCE_KEYS.has(key)) problems.push(`${path}: unknown key ${key}`);
    const type = r.Type;
    const spec = typeof type === 'string' ? TYPES[type] : undefined;
    if (!spec) {
      problems.push(`${path}: unknown resource type ${JSON.stringify(type)}`);
      continue;
    }
    const props = isObject(r.Properties) ? r.Properties : {};
    for (const req of spec.required) if (props[req] === undefined) problems.push(`${path}: ${type} requires ${req}`);
    for (const key of Object.keys(props)) if (!spec.properties.includes(key)) problems.push(`${path}.Properties: ${type} has no property ${key}`);
    if (r.Condition !== undefined && (typeof r.Condition !== 'string' || conditions[r.Condition] === undefined)) problems.push(`${path}: unknown condition ${JSON.stringify(r.Condition)}`);
    const dependsOn = r.DependsOn === undefined ? [] : Array.isArray(r.DependsOn) ? r.DependsOn : [r.DependsOn];
    for (const d of dependsOn) if (typeof d !== 'string' || resources[d] === undefined) problems.push(`${path}: DependsOn unknown ${JSON.stringify(d)}`);
    if (type === 'AWS::ECS::TaskDefinition') checkContainerDefinitions(props, path, problems);
    walk(props, `${path}.Properties`, false);
  }

  const exports = new Set<string>();
  const outputs = isObject(template.Outputs) ? template.Outputs : {};
  for (const [name, o] of Object.entries(outputs)) {
    const path = `Outputs.${name}`;
    if (!/^[A-Za-z0-9]+$/.test(name)) problems.push(`${path}: output names are alphanumeric`);
    if (!isObject(o) || o.Value === undefined) {
      problems.push(`${path}: needs a Value`);
      continue;
    }
    for (const key of Object.keys(o)) if (!['Description', 'Value', 'Export', 'Condition'].includes(key)) problems.push(`${path}: unknown key ${key}`);
    if (o.Export !== undefined) {
      const exportName = isObject(o.Export) && o.Export.Name !== undefined ? JSON.stringify(o.Export.Name) : undefined;
      if (exportName === undefined) problems.push(`${path}: Export needs a Name`);
      else if (exports.has(exportName)) problems.push(`${path}: duplicate export name ${exportName}`);
      else exports.add(exportName);
    }
    walk(o, path, false);
  }
  return problems;
}

function checkContainerDefinitions(props: { [key: string]: Json }, path: string, problems: string[]): void {
  const defs = props.ContainerDefinitions;
  if (!Array.isArray(defs) || defs.length === 0) {
    problems.push(`${path}: ContainerDefinitions must list at least one container`);
    return;
  }
  defs.forEach((d, i) => {
    const p = `${path}.Properties.ContainerDefinitions[${i}]`;
    if (!isObject(d)) {
      problems.push(`${p}: not a mapping`);
      return;
    }
    for (const key of Object.keys(d)) if (!CONTAINER_DEFINITION_FIELDS.has(key)) problems.push(`${p}: unknown field ${key}`);
    for (const req of ['Name', 'Image']) if (d[req] === undefined) problems.push(`${p}: requires ${req}`);
    // EC2 launch type: a container needs a memory limit or reservation unless the task sets Memory.
    if (d.Memory === undefined && d.MemoryReservation === undefined && props.Memory === undefined) problems.push(`${p}: needs Memory or MemoryReservation`);
    if (Array.isArray(d.Secrets)) {
      d.Secrets.forEach((s, j) => {
        // A secret may be chosen by Fn::If; each branch is a secret or AWS::NoValue.
        const candidates = isObject(s) && Array.isArray(s['Fn::If']) ? s['Fn::If'].slice(1) : [s];
        for (const c of candidates) {
          if (isObject(c) && c.Ref === 'AWS::NoValue') continue;
          if (!isObject(c) || c.Name === undefined || c.ValueFrom === undefined) problems.push(`${p}.Secrets[${j}]: needs Name and ValueFrom`);
        }
      });
    }
  });
}
