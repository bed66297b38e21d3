<#
.SYNOPSIS
Installs greeter's binary for this Windows machine.

.DESCRIPTION
  irm https://github.com/greeter-dev/greeter/releases/latest/download/install.ps1 -OutFile install.ps1
  powershell -ExecutionPolicy Bypass -File install.ps1

(Download, then run: a failed download then stops before anything runs.)

Downloads the release's SHA256SUMS and the binary for this processor,
refuses the binary unless its checksum matches, and only then puts it in
place. Settings (environment variables), all optional:

  GREETER_INSTALL_DIR  where greeter.exe goes
                       (default $env:LOCALAPPDATA\Programs\greeter)
  GREETER_VERSION      a version such as 0.1.0 (default: the latest release)
  GREETER_BASE_URL     the releases URL (default below), e.g. a mirror
  GREETER_OS, GREETER_ARCH  use instead of the detected OS and processor

Works in Windows PowerShell 5.1 and PowerShell 7. Exit code (when run as a
file): 0 installed, 1 not installed; the reason is one line on stderr.
#>

$GreeterDefaultBaseUrl = 'https://github.com/greeter-dev/greeter/releases'

function Install-Greeter {
  Set-StrictMode -Version 3.0
  $ErrorActionPreference = 'Stop'
  # Windows PowerShell 5.1 downloads many times slower with a progress bar.
  $ProgressPreference = 'SilentlyContinue'
  if ($PSVersionTable.PSVersion.Major -lt 6) {
    # 5.1 may not offer TLS 1.2 by default, and GitHub requires it.
    $protocols = [Net.ServicePointManager]::SecurityProtocol
    [Net.ServicePointManager]::SecurityProtocol = $protocols -bor [Net.SecurityProtocolType]::Tls12
  }

  $baseUrl = $GreeterDefaultBaseUrl
  if ($env:GREETER_BASE_URL) { $baseUrl = $env:GREETER_BASE_URL.TrimEnd('/') }
  $version = 'latest'
  if ($env:GREETER_VERSION) { $version = $env:GREETER_VERSION -replace '^v', '' }

  $os = $env:GREETER_OS
  if (-not $os) {
    $os = 'Windows'
    if ([Environment]::OSVersion.Platform -ne 'Win32NT') {
      $os = [string][Environment]::OSVersion.Platform
    }
  }
  if ($os -ne 'Windows') {
    throw "This is not Windows ($os): run install.sh instead: " +
      "curl -fsSLo install.sh $baseUrl/latest/download/install.sh && sh install.sh"
  }

  # A 32-bit PowerShell on 64-bit Windows sees the real processor only here.
  $arch = $env:GREETER_ARCH
  if (-not $arch) { $arch = $env:PROCESSOR_ARCHITEW6432 }
  if (-not $arch) { $arch = $env:PROCESSOR_ARCHITECTURE }
  switch -regex ($arch) {
    '^(AMD64|x86_64|x64)$' { $archPart = 'x86_64'; break }
    '^(ARM64|aarch64)$' { $archPart = 'aarch64'; break }
    default {
      throw "Unsupported processor `"$arch`": greeter's Windows binaries " +
        'are for 64-bit x86_64 (AMD64) and ARM64; elsewhere run it with ' +
        'Deno (deno run --allow-net main.ts from a clone of the repository)'
    }
  }
  $target = "$archPart-pc-windows-msvc"

  if ($version -eq 'latest') {
    $releaseUrl = "$baseUrl/latest/download"
    $releaseName = 'the latest release'
    $releaseHint = "; is there a release at ${baseUrl}?"
  } else {
    $releaseUrl = "$baseUrl/download/v$version"
    $releaseName = "release v$version"
    $releaseHint = "; is there a release v$version at ${baseUrl}?"
  }

  $tmp = Join-Path ([IO.Path]::GetTempPath()) "greeter-install-$([Guid]::NewGuid())"
  New-Item -ItemType Directory -Path $tmp | Out-Null
  try {
    function Get-Download([string]$url, [string]$path, [string]$hint) {
      try {
        Invoke-WebRequest -Uri $url -OutFile $path -UseBasicParsing -TimeoutSec 120
      } catch {
        $reason = ($_.Exception.Message -split "`r?`n")[0]
        throw "Cannot download $url ($reason)$hint"
      }
    }

    $sumsPath = Join-Path $tmp 'SHA256SUMS'
    Get-Download "$releaseUrl/SHA256SUMS" $sumsPath $releaseHint
    # Lines are "HEX  NAME" (or "HEX *NAME"); names are greeter-VERSION-TARGET.exe.
    $sums = @{}
    foreach ($line in Get-Content -LiteralPath $sumsPath) {
      if ($line -match '^([0-9a-fA-F]{64}) [ *](\S+)$') {
        $sums[$Matches[2]] = $Matches[1].ToLowerInvariant()
      }
    }
    $asset = $null
    if ($version -eq 'latest') {
      $pattern = '^greeter-.+-' + [regex]::Escape($target) + '\.exe$'
      $asset = @($sums.Keys | Where-Object { $_ -match $pattern }) |
        Select-Object -First 1
    } elseif ($sums.ContainsKey("greeter-$version-$target.exe")) {
      $asset = "greeter-$version-$target.exe"
    }
    if (-not $asset) {
      throw "No greeter binary for $target in $releaseName " +
        "($releaseUrl/SHA256SUMS does not list one)"
    }
    $expected = $sums[$asset]
    $suffix = '-' + [regex]::Escape($target) + '\.exe$'
    $installedVersion = ($asset -replace '^greeter-', '') -replace $suffix, ''

    $download = Join-Path $tmp 'greeter.exe'
    Get-Download "$releaseUrl/$asset" $download ''
    $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $download).Hash.ToLowerInvariant()
    if ($actual -ne $expected) {
      throw "Checksum mismatch for ${asset}: SHA256SUMS says $expected, the " +
        "download is $actual; nothing was installed (try again, or report it)"
    }

    $installDir = $env:GREETER_INSTALL_DIR
    if (-not $installDir) {
      if (-not $env:LOCALAPPDATA) {
        throw 'LOCALAPPDATA is not set: set GREETER_INSTALL_DIR to where greeter should go'
      }
      $installDir = Join-Path $env:LOCALAPPDATA 'Programs\greeter'
    }
    $destination = Join-Path $installDir 'greeter.exe'
    $staged = Join-Path $installDir '.greeter.new.exe'
    try {
      New-Item -ItemType Directory -Force -Path $installDir | Out-Null
      # Copy next to the destination, then rename over it, so that no
      # half-written greeter.exe is ever at the final path.
      Copy-Item -LiteralPath $download -Destination $staged -Force
      Move-Item -LiteralPath $staged -Destination $destination -Force
    } catch {
      Remove-Item -LiteralPath $staged -Force -ErrorAction SilentlyContinue
      $reason = ($_.Exception.Message -split "`r?`n")[0]
      throw "Cannot write $destination ($reason): if greeter is running, " +
        'stop it; or choose another GREETER_INSTALL_DIR'
    }
  } finally {
    Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
  }

  Write-Host "Installed greeter $installedVersion ($target) to $destination"
  $onPath = @($env:PATH -split [IO.Path]::PathSeparator |
      Where-Object { $_ -and ($_.TrimEnd('\', '/') -eq $installDir.TrimEnd('\', '/')) })
  if ($onPath.Count -gt 0) {
    Write-Host 'Run it: greeter --help'
  } else {
    Write-Host "$installDir is not on your PATH. Run it as & '$destination' --help"
    Write-Host 'or add it to your PATH for new terminals:'
    Write-Host ("  [Environment]::SetEnvironmentVariable('Path', " +
      "[Environment]::GetEnvironmentVariable('Path', 'User') + ';$installDir', 'User')")
  }
}

try {
  Install-Greeter
  $GreeterInstallExitCode = 0
} catch {
  [Console]::Error.WriteLine('install.ps1: ' + ($_.Exception.Message -split "`r?`n")[0])
  $GreeterInstallExitCode = 1
}
Remove-Item Function:\Install-Greeter -ErrorAction SilentlyContinue
# Run as a file, exit with the code; piped into iex, exiting would close the
# user's PowerShell window.
if ($PSCommandPath) { exit $GreeterInstallExitCode }
