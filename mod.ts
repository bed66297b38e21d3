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
  type ConnectionRecord,
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_HOSTNAME,
  DEFAULT_LINGER,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_PORT,
  DEFAULT_TIMEOUT,
  type ListenTarget,
  type ServeGreetingOptions,
  type TlsOptions,
} from "./lib/server/options.ts";
export { ListenError } from "./lib/server/listeners.ts";
export {
  type GreetingServer,
  serveGreeting,
} from "./lib/server/serve_greeting.ts";
export {
  compileTemplate,
  type CompileTemplateOptions,
  type GreetingContext,
  type GreetingSource,
  hasPlaceholders,
  TEMPLATE_PLACEHOLDERS,
  type TemplatePlaceholder,
} from "./lib/greeting/template.ts";
export {
  daytimeGreeting,
  PRESET_NAMES,
  PRESET_PORTS,
  presetGreeting,
  type PresetName,
  qotdGreeting,
  timeGreeting,
} from "./lib/greeting/presets.ts";
export {
  type AdmissionOptions,
  REFUSE_REASONS,
  type RefuseReason,
} from "./lib/server/admission.ts";
export { type Cidr, parseCidr } from "./lib/net/ip.ts";
export {
  DEFAULT_MESSAGE,
  encodeGreeting,
  type EncodeGreetingOptions,
  GREETING_ENCODINGS,
  type GreetingEncoding,
  LINE_ENDINGS,
  type LineEnding,
} from "./lib/greeting/encode.ts";
export {
  type ClientTlsOptions,
  DEFAULT_CLIENT_TIMEOUT,
  fetchGreeting,
  type FetchGreetingOptions,
  GreetingTimeoutError,
  readGreeting,
} from "./lib/client/read_greeting.ts";
export {
  CONNECTION_OUTCOMES,
  type ConnectionOutcome,
  type ServerStats,
} from "./lib/server/stats.ts";
export { formatAddress } from "./lib/net/address.ts";
export {
  type ByteSink,
  createLineWriter,
  type LineWriter,
  type LineWriterOptions,
} from "./lib/observe/line_writer.ts";
