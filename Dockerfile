# calico-agent image: the agent with the kernel tools it drives (iptables nft + legacy, ipset,
# iproute2). Run privileged in the host's network namespace (see deploy/kubernetes/ and README).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY src ./src
COPY compiler ./compiler
COPY agent ./agent
COPY test ./test
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables ipset iproute2 util-linux procps \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/calico-agent
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# calicoctl is in the image too: `docker exec calico-agent calicoctl profile show`.
RUN ln -s /opt/calico-agent/dist/src/cli/main.js /usr/local/bin/calicoctl \
 && ln -s /opt/calico-agent/dist/agent/main.js /usr/local/bin/calico-agent \
 && chmod +x dist/src/cli/main.js dist/agent/main.js
ENTRYPOINT ["node", "/opt/calico-agent/dist/agent/main.js"]
