/**
 * Transitional: the names bench/lab/benchLab.ts and infra/lab/membership/addRegion.ts still import
 * from here, while those files are being changed elsewhere. Toxiproxy now lives in one file per
 * concept: toxiproxyBinary.ts (the build), toxiproxyServer.ts (the process), toxiproxyClient.ts
 * (the HTTP API) and brokerLinkProxies.ts (the regions' broker links, formerly `BrokerLinks`).
 * Delete this file once those two import from there.
 */
export { BrokerLinkProxies as BrokerLinks, PartitionMode, brokerProxyName } from './brokerLinkProxies.js';
export { ensureToxiproxy } from './toxiproxyBinary.js';
export { ToxiproxyServer } from './toxiproxyServer.js';
