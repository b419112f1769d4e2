# syntax=docker/dockerfile:1
# One image for every command: `server` (the default CMD), `reconciler`, `lookup`, `simulate-host`,
# `simpledb-local`. Build: docker build -t ecs-id-mapper .   See docs/deploy.md.
#
# Node 22 is the LTS line this image pins; the code targets Node >= 20 (package.json engines).
ARG NODE_IMAGE=node:22-bookworm-slim

# --- builder: all dependencies, the TypeScript build, then dev dependencies pruned ----------------
FROM ${NODE_IMAGE} AS builder
# better-sqlite3 compiles its native addon with node-gyp when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script runs the build, and the sources are not here yet; the one
# dependency whose install script matters (better-sqlite3) is rebuilt explicitly.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY bench ./bench
COPY cli ./cli
COPY config ./config
COPY reconciler ./reconciler
COPY secrets ./secrets
COPY storage ./storage
COPY tools ./tools
COPY wire ./wire
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: production dependencies, compiled JS, the launcher; no compilers, non-root --------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=builder /app/package.json ./package.json
COPY --from=builder /app/node_modules ./node_modules
COPY --from=builder /app/dist ./dist
COPY bin ./bin
# The lookup page's static files are served from the source tree, not compiled.
COPY api/web ./api/web
# /app/data: the default SQLite store (sqlite:./data/ecs-id-mapper.db);
# /var/lib/ecs-id-mapper: the reconciler's outbox (--state-dir). Both owned by the runtime user.
RUN mkdir -p /app/data /var/lib/ecs-id-mapper \
 && chown node:node /app/data /var/lib/ecs-id-mapper
# `node` (uid 1000) ships with the official Node images. The reconciler needs read access to the
# Docker socket: run it with the socket's group (`--group-add <gid>`) or as root (charts/ecs).
USER node
# 5001: server (API, /metrics, /health). 9471: reconciler /metrics and /healthz.
EXPOSE 5001 9471
# A hint for `docker run`: the server's health route. ECS and the reconciler use their own checks
# (charts/ecs), since this one only fits the default command.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5001/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["./bin/ecs-id-mapper"]
CMD ["server"]
