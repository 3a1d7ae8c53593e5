#!/usr/bin/env bash
# Install the third-party DHT peers the interop tests and the fixture capture need,
# when they are missing. Idempotent: does nothing when all is in place.
#
#   * libtorrent-rasterbar's Python bindings (Debian package python3-libtorrent),
#     importable by Debian's own /usr/bin/python3 (not a pyenv python3);
#   * Node.js and npm, then `npm ci` in interop/js (webtorrent's bittorrent-dht,
#     version pinned in interop/js/package.json + package-lock.json);
#   * the `cryptography` package for the capture harness's python3, when no
#     python3 has it (Debian package python3-cryptography).
#
# Exits non-zero with a message when an install fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lt_python=${LT_PYTHON:-/usr/bin/python3}

die() { echo "install-peers: $*" >&2; exit 1; }
say() { echo "install-peers: $*" >&2; }

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot apt-get install"
    sudo_cmd=(sudo)
fi

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    if [ $apt_updated -eq 0 ]; then
        say "apt-get update"
        "${sudo_cmd[@]}" apt-get update || die "apt-get update failed"
        apt_updated=1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y "$@" \
        || die "apt-get install $* failed"
}

# 1. libtorrent for /usr/bin/python3.
if "$lt_python" -c 'import libtorrent' 2>/dev/null; then
    say "libtorrent $("$lt_python" -c 'import libtorrent; print(libtorrent.__version__)') already importable by $lt_python"
else
    apt_install python3-libtorrent
    "$lt_python" -c 'import libtorrent' \
        || die "python3-libtorrent installed, but 'import libtorrent' fails under $lt_python"
fi

# 2. The capture harness's ed25519 signer.
if python3 -c 'import cryptography' 2>/dev/null || /usr/bin/python3 -c 'import cryptography' 2>/dev/null; then
    say "python cryptography present"
else
    apt_install python3-cryptography
    /usr/bin/python3 -c 'import cryptography' || die "python3-cryptography installed, but does not import"
fi

# 3. Node.js + bittorrent-dht.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
command -v node >/dev/null || die "node still not found after installing nodejs"
command -v npm >/dev/null || die "npm still not found after installing npm"

js="$root/interop/js"
[ -f "$js/package-lock.json" ] || die "$js/package-lock.json missing"
if (cd "$js" && npm ls --all >/dev/null 2>&1) && [ -f "$js/node_modules/bittorrent-dht/index.js" ]; then
    say "interop/js node_modules up to date"
else
    say "npm ci in interop/js"
    (cd "$js" && npm ci --no-audit --no-fund) || die "npm ci in interop/js failed"
    (cd "$js" && npm ls --all >/dev/null) || die "npm ls in interop/js reports problems after npm ci"
fi

say "ok: libtorrent (python3-libtorrent), bittorrent-dht $(node -p "require('$js/node_modules/bittorrent-dht/package.json').version") on node $(node --version)"
