// Third-party tools the tests share: a runner, openssl with a CA and a leaf for
// localhost/127.0.0.1, promtool, and the ssh options of a test client.
import { assertEquals } from "@std/assert";

const decoder = new TextDecoder();

/** Runs `command` (with `stdin`, if given) to completion, within 20 s. */
export async function run(
  command: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs openssl and fails the test if it fails; its stdout. */
export async function openssl(args: string[], stdin?: string): Promise<string> {
  const result = await run("openssl", args, stdin);
  assertEquals(result.code, 0, result.stderr);
  return result.stdout;
}

const EC = [
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
];

/** Certificate files and their PEM text, from {@linkcode makeCertificates}. */
export interface Certificates {
  /** Paths. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** PEM text. */
  ca: string;
  cert: string;
  key: string;
  caKey: string;
}

/** A CA and a leaf certificate for localhost and 127.0.0.1, in `dir`. */
export async function makeCertificates(dir: string): Promise<Certificates> {
  await openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
    "-days",
    "1",
    "-subj",
    "/CN=greeter test CA",
  ]);
  await openssl([
    "req",
    ...EC,
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/leaf.csr`,
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${dir}/leaf.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-out",
    `${dir}/cert.pem`,
    "-days",
    "1",
    "-extfile",
    `${dir}/ext.cnf`,
  ]);
  return {
    caFile: `${dir}/ca.pem`,
    certFile: `${dir}/cert.pem`,
    keyFile: `${dir}/key.pem`,
    ca: await Deno.readTextFile(`${dir}/ca.pem`),
    cert: await Deno.readTextFile(`${dir}/cert.pem`),
    key: await Deno.readTextFile(`${dir}/key.pem`),
    caKey: await Deno.readTextFile(`${dir}/ca.key`),
  };
}

/** A self-signed certificate for localhost with `serial`, in `dir`. */
export async function selfSigned(dir: string, serial: number): Promise<void> {
  await openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/cert.pem`,
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-set_serial",
    String(serial),
  ]);
}

/** `promtool check metrics` on `text`: its exit code and its report. */
export async function promtoolCheck(text: string): Promise<[number, string]> {
  const { code, stdout, stderr } = await run(
    "promtool",
    ["check", "metrics"],
    text,
  );
  return [code, (stdout + stderr).trim()];
}

/**
 * The options of an OpenSSH client run by a test: no prompt, no known-hosts
 * file read or written.
 */
export const SSH_TEST_OPTIONS: readonly string[] = [
  "-o",
  "BatchMode=yes",
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
];
