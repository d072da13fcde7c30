#!/usr/bin/env bash
# End-to-end: privmta as Debian packages (issue 11, part 1). cpack makes the
# three packages from this build; they are unpacked into a clean root
# (dpkg-deb -x: systemd is not PID 1 here, so no unit is started; each
# daemon runs its unit's ExecStart line with the packaged /etc file, its
# state moved into the test's folder by options, which win over the file):
#   - the files are where Debian and the units expect them, the /etc files
#     are conffiles, the packages depend on the libraries they link and the
#     agent on Postfix;
#   - every /etc file is one its daemon reads (--check-config);
#   - systemd-analyze rates the controller's and the milter's units "OK",
#     2.0 or less (the agent, root to manage Postfix, is reported);
#   - the packaged controller, agent (noop backend: no Postfix here) and
#     privmta-ctl enrol a node and push a policy it applies.
source "$(dirname "$0")/lib.sh" "$@"

for tool in cpack dpkg-deb systemd-analyze jq; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
PKG="$WORK/pkg"
ROOT="$WORK/root"
mkdir -p "$PKG" "$ROOT"
(cd "$BUILD" && cpack -G DEB -B "$PKG") >"$WORK/cpack.log" 2>&1 ||
    { fail "cpack -G DEB"; tail -20 "$WORK/cpack.log"; finish; exit 1; }
deb() { ls "$PKG"/privmta-"$1"_*.deb 2>/dev/null | head -1; }
for p in controller agent ctl web; do
    check "cpack made privmta-$p" test -f "$(deb $p)"
    dpkg-deb -x "$(deb $p)" "$ROOT"
done

# ---- what is where --------------------------------------------------------------
for f in usr/sbin/privmta-controller usr/sbin/privmta-agent usr/sbin/privmta-milter \
    usr/libexec/privmta/privmta-sigfetch usr/bin/privmta-ctl \
    etc/privmta/controller.conf etc/privmta/agent.conf etc/privmta/milter.conf \
    lib/systemd/system/privmta-controller.service lib/systemd/system/privmta-agent.service \
    lib/systemd/system/privmta-milter.service usr/lib/sysusers.d/privmta-agent.conf \
    usr/lib/sysusers.d/privmta-controller.conf usr/lib/sysusers.d/privmta-web.conf \
    usr/lib/tmpfiles.d/privmta.conf \
    usr/sbin/privmta-web etc/privmta/web.conf lib/systemd/system/privmta-web.service; do
    check "/$f is packaged" test -e "$ROOT/$f"
done
check "the agent depends on Postfix and on libclamav" bash -c \
    "dpkg-deb -f '$(deb agent)' Depends | grep -q postfix &&
     dpkg-deb -f '$(deb agent)' Depends | grep -q libclamav"
check "the controller depends on the libraries it links (liblmdb)" bash -c \
    "dpkg-deb -f '$(deb controller)' Depends | grep -q liblmdb"
check "the /etc files are conffiles" bash -c \
    "dpkg-deb --ctrl-tarfile '$(deb agent)' | tar -xO ./conffiles | grep -qx /etc/privmta/agent.conf &&
     dpkg-deb --ctrl-tarfile '$(deb controller)' | tar -xO ./conffiles | grep -qx /etc/privmta/controller.conf"
check "the postinst makes the users with systemd-sysusers" bash -c \
    "dpkg-deb --ctrl-tarfile '$(deb agent)' | tar -xO ./postinst | grep -q 'systemd-sysusers \"\$DPKG_MAINTSCRIPT_PACKAGE.conf\"'"
sysusers_has() { # PACKAGE USER...: the package's sysusers file declares each user
    local f="$ROOT/usr/lib/sysusers.d/$1.conf" u
    shift
    for u in "$@"; do grep -q "^u *$u " "$f" || return 1; done
}
check "sysusers: privmta in the controller's file" sysusers_has privmta-controller privmta
check "privmta-milter, privmta-fetch and privmta-verify in the agent's" \
    sysusers_has privmta-agent privmta-milter privmta-fetch privmta-verify
check "privmta-web in the console's" sysusers_has privmta-web privmta-web
check "no file is in two packages (dpkg would refuse the second)" bash -c \
    "for p in '$PKG'/*.deb; do dpkg-deb -c \"\$p\" | awk '\$1 !~ /^d/ { print \$6 }'; done | sort | uniq -d | grep -q . && exit 1 || exit 0"
check "agent.conf sets the packaged fetch user, milter and helper" bash -c \
    "grep -qx 'fetch_user = privmta-fetch' '$ROOT/etc/privmta/agent.conf' &&
     grep -qx 'verify_user = privmta-verify' '$ROOT/etc/privmta/agent.conf' &&
     grep -qx 'sigfetch = /usr/libexec/privmta/privmta-sigfetch' '$ROOT/etc/privmta/agent.conf' &&
     grep -qx 'milter_socket = unix:privmta/milter.sock' '$ROOT/etc/privmta/agent.conf'"
# Debian's smtpd is chrooted in /var/spool/postfix: the milter's socket
# is there, in a directory the agent's postinst makes with tmpfiles
check "the milter listens in Postfix's queue directory" \
    grep -qx 'socket = unix:/var/spool/postfix/privmta/milter.sock' "$ROOT/etc/privmta/milter.conf"
check "tmpfiles makes that directory: the milter's, group postfix, setgid" \
    grep -Eqx 'd +/var/spool/postfix/privmta +2750 +privmta-milter +postfix +-' \
    "$ROOT/usr/lib/tmpfiles.d/privmta.conf"
check "the postinst runs tmpfiles, and the milter's unit may write there" bash -c \
    "dpkg-deb --ctrl-tarfile '$(deb agent)' | tar -xO ./postinst | grep -q 'systemd-tmpfiles --create privmta.conf' &&
     grep -qx 'ReadWritePaths=/var/spool/postfix/privmta' '$ROOT/lib/systemd/system/privmta-milter.service'"
check "every other setting is there, commented, with its default" \
    grep -qx '#gossip_ms = 200' "$ROOT/etc/privmta/agent.conf"

# ---- each daemon reads its file ----------------------------------------------------
for d in controller agent milter web; do
    expect_exit 0 "privmta-$d reads /etc/privmta/$d.conf" \
        "$ROOT/usr/sbin/privmta-$d" -c "$ROOT/etc/privmta/$d.conf" --check-config
done
printf 'gossip_ms = 200\nno_such_setting = 1\n' >"$WORK/bad.conf"
expect_exit 2 "an unknown setting is refused, naming it" \
    "$ROOT/usr/sbin/privmta-agent" -c "$WORK/bad.conf" --check-config
check "saying where" grep -q "bad.conf.*2.*no_such_setting" "$WORK/err"

# ---- the units, rated by systemd ---------------------------------------------------
exposure() { # UNIT: systemd-analyze's overall exposure level
    systemd-analyze security --offline=true --root="$ROOT" "$1" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
for u in controller milter agent web; do
    score=$(exposure privmta-$u.service)
    echo "# systemd-analyze security privmta-$u.service: ${score:-?}"
    [ "$u" = agent ] && continue
    check "privmta-$u.service is rated 2.0 or less ($score)" \
        awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
done

# ---- the packaged programs, end to end ---------------------------------------------
CONTROLLER="$ROOT/usr/sbin/privmta-controller"
CTL="$ROOT/usr/bin/privmta-ctl"
AGENT="$ROOT/usr/sbin/privmta-agent"
STATE="$WORK/controller"
PORT=$(free_port)
AGENT_PORT=$(free_port)
daemon_bg controller "$WORK/controller.log" "$CONTROLLER" -c "$ROOT/etc/privmta/controller.conf" \
    --state-dir "$STATE" --endpoint "tcp://127.0.0.1:$PORT" --agent-endpoint "tcp://127.0.0.1:$AGENT_PORT"
export PRIVMTA_STATE_DIR="$STATE" PRIVMTA_CONTROLLER="tcp://127.0.0.1:$PORT" PRIVMTA_CTL_CONFIG=/dev/null
check "the packaged controller answers the packaged privmta-ctl" \
    wait_for 20 "$CTL" --timeout 0.5 policy history --limit 1
# the console as packaged: the two documented enrolment steps, then a login
WEB_PORT=$(free_port)
(umask 077 && echo "packaged console pw" >"$WORK/web.pw")
expect_exit 0 "privmta-ctl web user add (password on stdin)" \
    "$CTL" --web-users "$WORK/web-users" web user add admin <"$WORK/web.pw"
daemon_bg web "$WORK/web.log" "$ROOT/usr/sbin/privmta-web" -c "$ROOT/etc/privmta/web.conf" \
    --state-dir "$WORK/web" --server-key "$STATE/keys/controller.cert" \
    --controller "tcp://127.0.0.1:$PORT" --users "$WORK/web-users" --listen "127.0.0.1:$WEB_PORT"
check "the packaged console makes its key" wait_for 10 test -f "$WORK/web/web.cert"
cp "$WORK/web/web.cert" "$STATE/clients/web-web.cert"
web_login() {
    curl -s --cacert "$WORK/web/tls.crt" -c "$WORK/web.jar" -o /dev/null -w '%{http_code}' \
        -d '{"user":"admin","password":"packaged console pw"}' "https://127.0.0.1:$WEB_PORT/api/login" | grep -qx 200
}
check "and logs its user in" wait_for 10 web_login
agent_args=(-c "$ROOT/etc/privmta/agent.conf" --name pkg1 --state-dir "$WORK/agent"
    --controller "tcp://127.0.0.1:$AGENT_PORT" --controller-key "$STATE/keys/controller.cert"
    --backend noop --sig-dir "" --milter-socket "" --milter-dir "" --milter-user ""
    --fetch-user nobody --address 127.0.0.1)
expect_exit 0 "enrol the node" "$CTL" node add pkg1 "$("$AGENT" "${agent_args[@]}" --public-key)"
daemon_bg agent "$WORK/agent.log" "$AGENT" "${agent_args[@]}"
expect_exit 0 "push a policy, every node applies it" \
    "$CTL" policy push "$SRC/deploy/example-policy.yaml" --wait=30
check "nodes shows pkg1 up on that revision" bash -c \
    "'$CTL' nodes --json | jq -e '.[0].name == \"pkg1\" and .[0].liveness == \"up\" and .[0].applied_rev >= 1' >/dev/null"
check "the console shows pkg1 on that revision too" bash -c \
    "curl -s --cacert '$WORK/web/tls.crt' -b '$WORK/web.jar' 'https://127.0.0.1:$WEB_PORT/api/nodes' |
     jq -e '.nodes[0].name == \"pkg1\" and .nodes[0].applied_rev >= 1' >/dev/null"
finish
