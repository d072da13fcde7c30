#!/usr/bin/env bash
# Installs every Debian package privmta and its tests need. Idempotent: a
# second run only checks. Non-interactive, as root, on Debian 12.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang-format git ca-certificates openssl
  libzmq3-dev libczmq-dev libsodium-dev
  libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev lmdb-utils
  libclamav-dev libopendkim-dev libmilter-dev libgmime-3.0-dev
  libcurl4-openssl-dev libyaml-dev libjansson-dev libssl-dev
  libcriterion-dev libarchive-dev libytnef0-dev libmicrohttpd-dev libsystemd-dev
  libseccomp-dev
  clang libclang-rt-14-dev
  postfix libsasl2-modules sasl2-bin swaks libnet-ssleay-perl spamassassin spamd
  procps iproute2 nftables netcat-openbsd zip p7zip-full jq python3 fiu-utils
  dpkg-dev file systemd systemd-container curl chromium
  gdb  # tests: the stacks of a daemon that does not stop (lib.sh)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Without this preseed the postfix package writes an /etc/postfix/main.cf for an
# "Internet Site"; every privmta node brings its own config directory instead.
echo "postfix postfix/main_mailer_type select No configuration" \
  | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
