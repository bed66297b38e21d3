// A greeter worker that crashes 200 ms after it is told to start, when it
// is not the first: for tests/workers_test.ts.
import "../lib/cli/workers/entry.ts";

globalThis.addEventListener("message", (event) => {
  const { data } = event as MessageEvent<
    { type: string; prepared?: { options: { listen?: { port?: number }[] } } }
  >;
  // The others listen on the port the first chose (the command's is 0).
  if (data.type === "start" && data.prepared?.options.listen?.[0].port) {
    setTimeout(() => {
      throw new Error("boom");
    }, 200);
  }
});
