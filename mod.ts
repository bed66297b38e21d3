/**
 * greeter: a TCP server that writes a greeting to every client and closes
 * the connection, plus the client that reads it.
 *
 * ```ts
 * import { encodeGreeting, fetchGreeting, serveGreeting } from "./mod.ts";
 *
 * await using server = serveGreeting({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   greeting: encodeGreeting("Hello"),
 * });
 * const bytes = await fetchGreeting({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 * });
 * console.log(new TextDecoder().decode(bytes)); // "Hello\r\n"
 * ```
 *
 * @module
 */
export {
  type AcceptErrorKind,
  type ConnectionRecord,
  type ListenTarget,
  type ProxyProtocolOptions,
  type ReloadOptions,
  type ServeGreetingOptions,
  type TlsOptions,
} from "./lib/server/options.ts";
export {
  type AdmissionOptions,
  REFUSE_REASONS,
  type RefuseReason,
} from "./lib/server/admission.ts";
export { ListenError } from "./lib/server/listeners.ts";
export {
  type GreetingServer,
  serveGreeting,
} from "./lib/server/serve_greeting.ts";
export {
  CONNECTION_OUTCOMES,
  type ConnectionOutcome,
  type ServerStats,
} from "./lib/server/stats.ts";
export {
  TARPIT_STYLES,
  type TarpitOptions,
  type TarpitStats,
  type TarpitStyle,
} from "./lib/server/tarpit.ts";
export {
  compileTemplate,
  type CompileTemplateOptions,
  encodeGreeting,
  type EncodeGreetingOptions,
  EncodingError,
  type GreetingContext,
  type GreetingEncoding,
  type GreetingSource,
  type LineEnding,
  TemplateError,
} from "./lib/greeting/template.ts";
export {
  presetGreeting,
  type PresetName,
  QuoteError,
} from "./lib/greeting/presets.ts";
export { type Cidr, parseCidr } from "./lib/net/ip.ts";
export {
  identifyProbe,
  type Probe,
  PROBE_KINDS,
  type ProbeKind,
} from "./lib/net/probe.ts";
export {
  type AddressMask,
  type AddressMaskOptions,
  createAddressMask,
} from "./lib/net/address_privacy.ts";
export { ValueError } from "./lib/net/value_error.ts";
export {
  type ClientTlsOptions,
  fetchGreeting,
  type FetchGreetingOptions,
  GreetingTimeoutError,
  readGreeting,
} from "./lib/client/read_greeting.ts";
export {
  checkGreeting,
  type CheckGreetingOptions,
  type CheckResult,
} from "./lib/client/check.ts";
