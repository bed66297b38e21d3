#!/bin/sh
# Installs greeter's binary for this Linux or macOS machine:
#
#   curl -fsSLo install.sh \
#     https://github.com/greeter-dev/greeter/releases/latest/download/install.sh && sh install.sh
#
# (Download, then run: piped into sh, a failed download would run an empty
# script and "succeed".)
#
# It downloads the release's SHA256SUMS and the binary for this OS and
# processor, refuses the binary unless its checksum matches and it runs here,
# and only then puts it in place. Settings, all optional:
#
#   GREETER_INSTALL_DIR  where greeter goes (default ~/.local/bin)
#   GREETER_VERSION      a version such as 0.1.0 (default: the latest release)
#   GREETER_BASE_URL     the releases URL (default below), e.g. a mirror
#   GREETER_DOWNLOADER   curl or wget (default: whichever is installed)
#   GREETER_OS, GREETER_ARCH  use instead of `uname -s` and `uname -m`
#
# Exit codes: 0 installed, 1 not installed (the reason is one line on stderr).
set -eu

DEFAULT_BASE_URL="https://github.com/greeter-dev/greeter/releases"

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

base_url=${GREETER_BASE_URL:-$DEFAULT_BASE_URL}
base_url=${base_url%/}
version=${GREETER_VERSION:-latest}
version=${version#v}
os=${GREETER_OS:-$(uname -s)}
arch=${GREETER_ARCH:-$(uname -m)}

case $os in
  Linux) os_part=unknown-linux-gnu ;;
  Darwin) os_part=apple-darwin ;;
  MINGW* | MSYS* | CYGWIN* | Windows*)
    fail "This is Windows: run install.ps1 in PowerShell instead:" \
      "irm $base_url/latest/download/install.ps1 -OutFile install.ps1;" \
      "powershell -ExecutionPolicy Bypass -File install.ps1" ;;
  *)
    fail "Unsupported operating system \"$os\": greeter's binaries are for" \
      "Linux, macOS and Windows; elsewhere run it with Deno" \
      "(deno run --allow-net main.ts from a clone of the repository)" ;;
esac
case $arch in
  x86_64 | amd64) arch_part=x86_64 ;;
  aarch64 | arm64) arch_part=aarch64 ;;
  *)
    fail "Unsupported processor \"$arch\" on $os: greeter's binaries are" \
      "for x86_64 and aarch64 (arm64); elsewhere run it with Deno" \
      "(deno run --allow-net main.ts from a clone of the repository)" ;;
esac
target=$arch_part-$os_part

downloader=${GREETER_DOWNLOADER:-}
if [ -z "$downloader" ]; then
  if command -v curl >/dev/null 2>&1; then
    downloader=curl
  elif command -v wget >/dev/null 2>&1; then
    downloader=wget
  else
    fail "Neither curl nor wget is installed: install one and run this again"
  fi
fi
case $downloader in
  curl | wget) command -v "$downloader" >/dev/null 2>&1 ||
    fail "GREETER_DOWNLOADER is $downloader, which is not installed" ;;
  *) fail "GREETER_DOWNLOADER must be curl or wget, not \"$downloader\"" ;;
esac

# download URL FILE [HINT]: on failure, one line naming the URL, the reason
# the downloader gave (404, no route, ...) and the hint.
download() {
  if [ "$downloader" = curl ]; then
    curl --fail --silent --show-error --location --connect-timeout 20 \
      --retry 2 --output "$2" "$1" 2>"$tmp/download.err" ||
      download_failed "$1" "${3:-}"
  else
    wget --no-verbose --timeout=20 --tries=3 --output-document="$2" "$1" \
      2>"$tmp/download.err" || download_failed "$1" "${3:-}"
  fi
}

download_failed() {
  reason=$(tail -n 1 "$tmp/download.err" | sed -e 's/^curl: ([0-9]*) //' \
    -e 's/^.*ERROR \([0-9]\)/error \1/' -e 's/\.$//')
  fail "Cannot download $1${reason:+ ($reason)}$2"
}

if [ -n "${GREETER_INSTALL_DIR:-}" ]; then
  install_dir=$GREETER_INSTALL_DIR
elif [ -n "${HOME:-}" ]; then
  install_dir=$HOME/.local/bin
else
  fail "HOME is not set: set GREETER_INSTALL_DIR to where greeter should go"
fi

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t greeter-install)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

if [ "$version" = latest ]; then
  release_url=$base_url/latest/download
  release_name="the latest release"
  release_hint="; is there a release at $base_url?"
else
  release_url=$base_url/download/v$version
  release_name="release v$version"
  release_hint="; is there a release v$version at $base_url?"
fi

download "$release_url/SHA256SUMS" "$tmp/SHA256SUMS" "$release_hint"

# Lines are "HEX  NAME" (or "HEX *NAME"); names are greeter-VERSION-TARGET.
if [ "$version" = latest ]; then
  asset=$(awk -v target="$target" '
    { name = $2; sub(/^\*/, "", name) }
    name ~ ("^greeter-[^ ]+-" target "$") { print name; exit }
  ' "$tmp/SHA256SUMS")
else
  asset=greeter-$version-$target
fi
expected=$(awk -v name="$asset" '
  name != "" && ($2 == name || $2 == "*" name) { print $1; exit }
' "$tmp/SHA256SUMS")
[ -n "$expected" ] ||
  fail "No greeter binary for $target in $release_name" \
    "($release_url/SHA256SUMS does not list one)"
installed_version=${asset#greeter-}
installed_version=${installed_version%-"$target"}

download "$release_url/$asset" "$tmp/greeter"

if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$tmp/greeter" | awk '{ print $1 }')
elif command -v shasum >/dev/null 2>&1; then
  actual=$(shasum -a 256 "$tmp/greeter" | awk '{ print $1 }')
elif command -v openssl >/dev/null 2>&1; then
  actual=$(openssl dgst -sha256 "$tmp/greeter" | awk '{ print $NF }')
else
  fail "Cannot verify the download: install sha256sum, shasum or openssl"
fi
[ "$actual" = "$expected" ] ||
  fail "Checksum mismatch for $asset: SHA256SUMS says $expected, the" \
    "download is $actual; nothing was installed (try again, or report it)"

chmod 755 "$tmp/greeter"
# A binary that cannot run here (another processor, no glibc) is not
# installed: better to say so now than when it is first used.
if ! "$tmp/greeter" --version >"$tmp/version.out" 2>&1; then
  fail "The downloaded $asset does not run on this machine" \
    "($(head -n 1 "$tmp/version.out")); nothing was installed"
fi

mkdir -p "$install_dir" ||
  fail "Cannot create $install_dir: choose another GREETER_INSTALL_DIR"
# Copy next to the destination, then rename: a running greeter keeps its
# old file, and no half-written binary is ever at the final path.
# cp applies the umask to the new file: set the mode again for all users.
{ cp "$tmp/greeter" "$install_dir/.greeter.new.$$" &&
  chmod 755 "$install_dir/.greeter.new.$$"; } || {
  rm -f "$install_dir/.greeter.new.$$"
  fail "Cannot write to $install_dir: choose another GREETER_INSTALL_DIR"
}
mv -f "$install_dir/.greeter.new.$$" "$install_dir/greeter" || {
  rm -f "$install_dir/.greeter.new.$$"
  fail "Cannot write to $install_dir: choose another GREETER_INSTALL_DIR"
}

echo "Installed greeter $installed_version ($target) to $install_dir/greeter"
case ":${PATH:-}:" in
  *":$install_dir:"*)
    echo "Run it: greeter --help" ;;
  *)
    echo "$install_dir is not on your PATH. Run it as $install_dir/greeter --help"
    echo "or add this line to your shell's profile (~/.profile, ~/.zshrc):"
    echo "  export PATH=\"$install_dir:\$PATH\"" ;;
esac
