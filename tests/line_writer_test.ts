import { assert, assertEquals } from "@std/assert";
import { createLineWriter } from "../lib/observe/line_writer.ts";

/** A sink that records each write and accepts at most `chunk` bytes of it. */
function recordingSink(chunk = Infinity, pause = 0) {
  const writes: string[] = [];
  return {
    writes,
    text: () => writes.join(""),
    async write(bytes: Uint8Array) {
      if (pause) await new Promise((resolve) => setTimeout(resolve, pause));
      const taken = bytes.subarray(0, Math.min(bytes.length, chunk));
      writes.push(new TextDecoder().decode(taken));
      return taken.length;
    },
  };
}

Deno.test("createLineWriter() batches a burst of lines into one write", async () => {
  const sink = recordingSink();
  const writer = createLineWriter(sink);
  for (let i = 0; i < 1000; i++) writer.line(`line ${i}`);
  assertEquals(sink.writes.length, 0, "nothing is written synchronously");
  await new Promise((resolve) => setTimeout(resolve, 30));
  assertEquals(sink.writes.length, 1);
  assertEquals(sink.text().split("\n").length, 1001);
  await writer.flush();
});

Deno.test("createLineWriter() flush() writes every line, completing partial writes", async () => {
  const sink = recordingSink(7);
  const writer = createLineWriter(sink, { delay: 60_000 });
  const expected = Array.from({ length: 50 }, (_, i) => `connection ${i}\n`)
    .join("");
  for (let i = 0; i < 50; i++) writer.line(`connection ${i}`);
  await writer.flush();
  assertEquals(sink.text(), expected);
  assert(sink.writes.every((write) => write.length <= 7));
});

Deno.test("createLineWriter() writes a full batch without waiting", async () => {
  const sink = recordingSink();
  const writer = createLineWriter(sink, { delay: 60_000, batchSize: 100 });
  for (let i = 0; i < 20; i++) writer.line("0123456789");
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert(sink.writes.length >= 1);
  await writer.flush();
  assertEquals(sink.text().length, 220);
});

Deno.test("createLineWriter() drops and counts lines when the sink falls behind", async () => {
  const sink = recordingSink(Infinity, 20);
  const writer = createLineWriter(sink, { maxBuffered: 100 });
  for (let i = 0; i < 50; i++) writer.line("0123456789");
  await writer.flush();
  const text = sink.text();
  const kept = text.split("\n").filter((line) => line === "0123456789").length;
  assertEquals(writer.dropped, 50 - kept);
  assert(writer.dropped > 0);
  assert(
    text.includes(`(${writer.dropped} log lines dropped: output was too slow)`),
    text,
  );
});

Deno.test("createLineWriter() survives a sink that fails, counts every lost line and tells once", async () => {
  const errors: unknown[] = [];
  let writes = 0;
  const writer = createLineWriter({
    write: () => {
      writes++;
      return Promise.reject(new Deno.errors.BrokenPipe("closed"));
    },
  }, { onError: (error) => errors.push(error) });
  writer.line("lost");
  await writer.flush();
  assertEquals(writer.dropped, 1);
  // It goes on trying, never throws, and says so only once.
  writer.line("also lost");
  writer.line("and this");
  await writer.flush();
  assertEquals(writer.dropped, 3);
  assertEquals(writes, 2);
  assertEquals(errors.length, 1);
  assert(errors[0] instanceof Deno.errors.BrokenPipe);
});

Deno.test("createLineWriter() counts as lost only the lines whose end a failed write did not reach", async () => {
  const written: string[] = [];
  let writes = 0;
  const writer = createLineWriter({
    write: (bytes) => {
      // The first write takes one line and a half; the next fails.
      if (writes++ > 0) return Promise.reject(new Error("disk full"));
      written.push(new TextDecoder().decode(bytes.subarray(0, 16)));
      return Promise.resolve(16);
    },
  });
  for (const line of ["0123456789", "abcdefghij", "ABCDEFGHIJ"]) {
    writer.line(line);
  }
  await writer.flush();
  assertEquals(written, ["0123456789\nabcde"]);
  assertEquals(writer.dropped, 2);
});

Deno.test("createLineWriter() flush() returns after a failed write and a later drop (it spun forever)", async () => {
  let writes = 0;
  const sink = {
    write(bytes: Uint8Array) {
      if (writes++ === 0) return Promise.reject(new Error("gone"));
      return Promise.resolve(bytes.length);
    },
  };
  const writer = createLineWriter(sink, { maxBuffered: 20, onError() {} });
  writer.line("a");
  await writer.flush();
  writer.line("x".repeat(30));
  await writer.flush();
  assertEquals(writer.dropped, 2);
});

Deno.test("createLineWriter() keeps writing after a failed write and a drop that its timer saw first", async () => {
  let writes = 0;
  const written: string[] = [];
  const sink = {
    write(bytes: Uint8Array) {
      if (writes++ === 0) return Promise.reject(new Error("gone"));
      written.push(new TextDecoder().decode(bytes));
      return Promise.resolve(bytes.length);
    },
  };
  const writer = createLineWriter(sink, {
    maxBuffered: 20,
    delay: 5,
    onError() {},
  });
  writer.line("a");
  await writer.flush();
  // Dropped with nothing queued, after the failure (no notice to write):
  // the batch timer fired with nothing to drain, and the drain it started
  // ended before it was kept as the one in flight, so no later line was
  // ever written and flush() spun forever.
  writer.line("x".repeat(30));
  await new Promise((resolve) => setTimeout(resolve, 30));
  writer.line("after");
  await new Promise((resolve) => setTimeout(resolve, 30));
  assertEquals(written, ["after\n"]);
  await writer.flush();
  assertEquals(writer.dropped, 2);
});
