/**
 * The state module's public face: desired/actual kernel state and the engine
 * slice, diff → plan, validation, rendering. Pure data; nothing here talks to
 * the kernel or the engine.
 */
export type * from './types.js'
export { desiredFromConfig, FORWARDING_SYSCTLS, LEARNED_ROUTE_METRIC, OVERLAY_ROUTE_METRIC, type KernelConfig } from './desired.js'
export { diff, inSync, PHASES } from './diff.js'
export { validate, hasErrors } from './validate.js'
export { renderPlan, renderAction, renderRoute, renderRule, renderAddress, summarizePlan, planToJson } from './render.js'
export { normalizeState, normalizeActual, kernelMetric, EMPTY_STATE, IP6_DEFAULT_METRIC } from './normalize.js'
export { routeKey, ruleKey, addressKey, routeEqual } from './keys.js'
export { simulate } from './simulate.js'
export {
  engineFromConfig,
  engineClasses,
  diffEngine,
  engineStateEqual,
  normalizeEngineState,
  shortKey,
  type EngineState,
  type EngineUplink,
  type EngineClass,
  type EngineAction,
  type EngineFacts,
  type PeerNamer,
} from './engine.js'
export { computeMeshRoutes, type ConnectedPeer, type MeshRoutes, type FibEntry, type Rejection, type PeerHello } from './routes.js'
export { desiredNode, type NodeState, type NodeFacts } from './node.js'
export { tunMtuOf, DEFAULT_PATH_MTU } from './mtu.js'
export {
  firewallFromInputs,
  emptyFirewall,
  renderNft,
  diffFirewall,
  ingressIssues,
  tableName,
  type FirewallInputs,
  type FirewallState,
  type FirewallAction,
  type IngressRule,
  type ListeningSocket,
} from './firewall.js'
export { firewallInputs, type GatewayFacts } from './gateway.js'
