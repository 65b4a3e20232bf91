/** Compiler defaults (Felix 1.x defaults adapted to our prefix and failsafe ports). */
import type { CompilerConfig } from './types.js';

export function defaultCompilerConfig(): CompilerConfig {
  return {
    interfacePrefix: 'cali',
    acceptMarkBit: 0x1000000,
    endpointToHostAction: 'DROP',
    maxIpsetSize: 1048576,
    failsafeInboundHostPorts: [
      { protocol: 'tcp', port: 22 },
      { protocol: 'udp', port: 68 },
    ],
    failsafeOutboundHostPorts: [
      { protocol: 'udp', port: 53 },
      { protocol: 'udp', port: 67 },
      { protocol: 'tcp', port: 179 },
      { protocol: 'tcp', port: 2379 },
      { protocol: 'tcp', port: 2380 },
      { protocol: 'tcp', port: 6443 },
    ],
  };
}
