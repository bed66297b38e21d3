# greeter in a container: compiled with deno compile in the official Deno
# image, then run as a non-root user from a minimal image with only the
# C runtime libraries the binary needs.
#
#   docker build -t greeter .
#   docker run --rm -p 8080:8080 greeter
#
# Building needs network access: deno compile downloads the Deno runtime
# (denort) for the platform being built.

FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock main.ts mod.ts ./
COPY lib/ lib/
# deno.json maps @std to these typed shims: the build needs them.
COPY types/ types/
COPY scripts/ scripts/
# uname -m is x86_64 or aarch64, so this builds for the image's platform
# (docker build --platform linux/arm64 builds the aarch64 binary).
RUN deno task compile --target "$(uname -m)-unknown-linux-gnu" \
  && cp dist/greeter-*-"$(uname -m)"-unknown-linux-gnu /greeter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /greeter /usr/local/bin/greeter
# The image's unprivileged "nonroot" user; port 8080 needs no privilege.
USER 65532:65532
EXPOSE 8080
# greeter's own probe: exits 0 only when the exact greeting arrives in time. If you
# change the port in the command, change it here too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/greeter", "check", "127.0.0.1:8080", "--timeout", "2000"]
ENTRYPOINT ["/usr/local/bin/greeter"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
