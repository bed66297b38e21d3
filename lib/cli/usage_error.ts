/**
 * A mistake in what greeter was asked to do (a flag, a value, a file named
 * on the command line): reported as one line, with exit code 2. It has a
 * module of its own so the library does not pull in the argument parser.
 */
export class UsageError extends Error {
  /** Says what is wrong and how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
