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
RUN npm run build && npm pack --ignore-scripts --silent --pack-destination /tmp && mv /tmp/calico-agent-*.tgz /tmp/calico-agent.tgz

FROM node:20-bookworm-slim
# kmod: modprobe, for the netfilter modules the tools load from the host's /lib/modules.
# libjemalloc2: the agent's malloc (agent/launcher.sh says why).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables ipset iproute2 kmod util-linux procps libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
# The package as users install it: calicoctl, calico-agent and calico-docker-plugin on PATH
# (`docker exec calico-agent calicoctl profile show`, `docker run IMAGE calicoctl …`).
COPY --from=build /tmp/calico-agent.tgz /tmp/
RUN npm install -g --no-audit --no-fund --loglevel=error /tmp/calico-agent.tgz && rm /tmp/calico-agent.tgz
COPY deploy/docker-entrypoint.sh /usr/local/bin/calico-entrypoint
ENTRYPOINT ["calico-entrypoint"]
