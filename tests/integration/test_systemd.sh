#!/usr/bin/env bash
# End-to-end: the packages under a real systemd (issue 11, part 1). This
# machine's PID 1 is not systemd, so the test boots one: systemd-nspawn
# runs systemd as PID 1 of a container whose root is an overlay of this
# machine's own (its Postfix, its libraries; every write goes to the
# overlay, in the test's folder), with a network namespace of its own
# holding only its loopback. In it, as an administrator would:
#   - Postfix configured by Debian as an Internet site (the system
#     instance, /etc/postfix), then the four packages installed together
#     with dpkg, their users made by their postinsts;
#   - the controller, the milter, the agent and the console started by
#     their hardened units, and they stay up: the sandbox lets each do its
#     job (a unit that kills its daemon is the defect this catches);
#   - the node enrolled with the two documented commands; a policy pushed
#     and applied to the real Postfix (no warning in its log); mail
#     through it: a blocked attachment refused by the milter and the admin
#     notified, a clean message delivered, smtpd's own refusal found by
#     privmta-ctl why in the journal (and a forged line not); a policy
#     test rehearsed in the agent's sandbox; ClamAV's signed test
#     database fetched from a loopback mirror by the agent's
#     privmta-fetch child and loaded by the milter;
#   - what the units promise, read off the running processes: users,
#     capabilities, no_new_privs, seccomp; systemd-analyze's scores;
#   - a rolling restart through systemctl; each line once in the journal;
#     every daemon stops cleanly.
source "$(dirname "$0")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || skip "needs root (mount, systemd-nspawn)"
for tool in cpack systemd-nspawn nsenter jq; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
PKG="$WORK/pkg"
(cd "$BUILD" && cpack -G DEB -B "$PKG") >"$WORK/cpack.log" 2>&1 ||
    { fail "cpack -G DEB"; tail -20 "$WORK/cpack.log"; finish; exit 1; }

# ---- the container -----------------------------------------------------------------
# The overlay's mount point is outside $WORK: lib.sh removes $WORK with
# rm -rf, which must never walk into a view of the whole machine.
CT=$(mktemp -d /tmp/privmta-ct.XXXXXX)
mkdir -p "$WORK/ov/up" "$WORK/ov/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$WORK/ov/up,workdir=$WORK/ov/work" "$CT" ||
    { rmdir "$CT"; skip "cannot mount an overlay of / (is / an overlay itself?)"; }
on_kill "umount -l '$CT'; rmdir '$CT'"
NSPAWN=
ct_down() { # halt the container (SIGTERM: systemd shuts down), unmount
    if [ -n "$NSPAWN" ]; then
        kill -TERM "$NSPAWN" 2>/dev/null
        (sleep 30 && kill -9 "$NSPAWN") 2>/dev/null &
        local timer=$!
        wait "$NSPAWN" 2>/dev/null # (kill -0 would see it until reaped)
        kill "$timer" 2>/dev/null
    fi
    umount "$CT" 2>/dev/null || umount -l "$CT"
    rmdir "$CT"
}
trap 'ct_down; cleanup' EXIT

# a boot to basic.target and no further: nothing of this machine's own
# services (its spamd, its databases) starts in the container
cat >"$CT/etc/systemd/system/privmta-test.target" <<'EOF'
[Unit]
Description=privmta test boot: the basic system, then what the test starts
Requires=basic.target
After=basic.target
AllowIsolate=yes
EOF
rm -f "$CT/etc/machine-id" # a machine of its own (and a journal of its own)
rm -f "$CT/var/mail/root"  # and a mailbox of its own: what the test finds there
# A sanitizer build (deploy/test.sh's): LeakSanitizer stops the process's
# threads with ptrace(2) at exit, which the units' system call filter
# refuses; it would fail every clean stop. Leaks are the other tests'
# business; ASan and UBSan still halt on an error here.
if ldd "$BUILD/controller/privmta-controller" | grep -q libasan; then
    for u in controller agent milter web; do
        mkdir -p "$CT/etc/systemd/system/privmta-$u.service.d"
        printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0:halt_on_error=1\n' \
            >"$CT/etc/systemd/system/privmta-$u.service.d/sanitizer.conf"
    done
fi
# a host of its own, resolved locally: nothing asks this machine's DNS
# server (out of reach from the container's network anyway, where each
# question would wait for its time-out: Postfix's postinst asks several)
echo mx1 >"$CT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 mx1.example.test mx1\n::1 localhost\n' >"$CT/etc/hosts"
echo 'nameserver 127.0.0.1' >"$CT/etc/resolv.conf"
# and nothing to wait for beyond its loopback: systemd-networkd's
# wait-online would hold network-online.target (which Postfix's unit and
# ours follow) for its whole 2 min time-out
ln -sf /dev/null "$CT/etc/systemd/system/systemd-networkd-wait-online.service"
FILES=/var/cache/privmta-test # the test's files, as the container sees them
mkdir -p "$CT$FILES"
cp "$PKG"/*.deb "$CT$FILES/"
systemd-nspawn -D "$CT" --register=no --keep-unit --private-network --resolv-conf=off --boot \
    --machine="privmta-test-$$" -- systemd.unit=privmta-test.target \
    </dev/null >"$WORK/container.log" 2>&1 &
NSPAWN=$!
track "$NSPAWN" # the watchdog's kill -9 takes the container with it
LEADER=
booted() {
    LEADER=$(pgrep -P "$NSPAWN" | head -1)
    [ -n "$LEADER" ] || return 1
    case $(nsenter -t "$LEADER" -a systemctl is-system-running 2>/dev/null) in
    running | degraded) return 0 ;;
    *) return 1 ;;
    esac
}
if ! wait_for 30 booted; then
    tail -20 "$WORK/container.log"
    skip "systemd does not boot in a container on this machine"
fi
echo "# systemd $(nsenter -t "$LEADER" -a systemctl --version | head -1 | cut -d' ' -f2) is PID 1 of the container"
# in_ct COMMAND...: runs COMMAND in the container, with a clean environment
in_ct() {
    nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
}
journal() { in_ct journalctl --no-pager -o cat "$@"; }
main_pid() { in_ct systemctl show -p MainPID --value "$1"; }
# active UNIT: running now, and never restarted (Restart=on-failure
# would hide a daemon its sandbox kills)
active() {
    [ "$(in_ct systemctl is-active "$1")" = active ] &&
        [ "$(in_ct systemctl show -p NRestarts --value "$1")" = 0 ]
}

# ---- Postfix, then the packages ------------------------------------------------------
in_ct debconf-set-selections <<<"postfix postfix/main_mailer_type select Internet Site
postfix postfix/mailname string mx1.example.test"
in_ct env DEBIAN_FRONTEND=noninteractive dpkg-reconfigure -f noninteractive postfix \
    >"$WORK/postfix-conf.log" 2>&1
expect_exit 0 "Postfix starts as Debian configured it" in_ct systemctl start postfix
expect_exit 0 "the four packages install together (dpkg -i)" \
    in_ct sh -c "dpkg -i $FILES/*.deb"
users_made() { in_ct getent passwd privmta privmta-milter privmta-fetch privmta-verify privmta-web >/dev/null; }
check "their postinsts made the users" users_made
check "and the milter's socket directory in Postfix's queue" test \
    "$(in_ct stat -c '%U:%G %a' /var/spool/postfix/privmta)" = 'privmta-milter:postfix 2750'

# ---- the controller ------------------------------------------------------------------
expect_exit 0 "systemctl enable --now privmta-controller" \
    in_ct systemctl enable --now privmta-controller
ctl_answers() { in_ct privmta-ctl --timeout 0.5 policy history --limit 1 >/dev/null 2>&1; }
check "the controller answers privmta-ctl" wait_for 15 ctl_answers
check "and is still up, never restarted, under its unit" active privmta-controller
check "under a memory limit (libzmq buffers endless multipart messages)" \
    test "$(in_ct systemctl show -p MemoryMax --value privmta-controller)" = 1073741824

# ---- the node: the documented enrolment ------------------------------------------------
in_ct cp /var/lib/privmta/keys/controller.cert /etc/privmta/controller.cert
in_ct sed -i -e 's|^#name = mx1$|name = mx1|' \
    -e 's|^#controller = tcp://controller.example.net:7421$|controller = tcp://127.0.0.1:7421|' \
    /etc/privmta/agent.conf
expect_exit 0 "privmta-ctl node add mx1 \"\$(privmta-agent -c /etc/privmta/agent.conf --public-key)\"" \
    in_ct sh -c 'privmta-ctl node add mx1 "$(privmta-agent -c /etc/privmta/agent.conf --public-key)"'
# one node: nothing to spread the loading of new signatures over (60 s)
echo 'sig_jitter_ms = 1000' >>"$CT/etc/privmta/milter.conf"
expect_exit 0 "systemctl enable --now privmta-milter privmta-agent" \
    in_ct systemctl enable --now privmta-milter privmta-agent
node_up() { in_ct privmta-ctl nodes --json | jq -e '.[0].name == "mx1" and .[0].liveness == "up"' >/dev/null; }
check "the node reports to the controller" wait_for 15 node_up

# a loopback mirror in the container serving ClamAV's signed test database
mkdir -p "$CT$FILES/www"
cp "$SRC/tests/data/clamav/test-1.cvd" "$CT$FILES/www/test.cvd"
cp "$SRC/tests/data/clamav/mirror.py" "$CT$FILES/"
in_ct systemd-run --quiet --unit=privmta-test-mirror \
    python3 "$FILES/mirror.py" "$FILES/www" "$FILES/mirror.port" "$FILES/access.log"
check "the mirror listens" wait_for 10 test -s "$CT$FILES/mirror.port"
cat >"$CT$FILES/policy.yaml" <<YAML
inbound:
  blocked_extensions: ["@common"]
  checks:
    sender_domain: false
    client_hostname: false
outbound:
  mynetworks: [127.0.0.0/8, "[::1]/128"]
antispam.enabled: false
antivirus:
  mirrors: ["http://127.0.0.1:$(cat "$CT$FILES/mirror.port")"]
  databases: [test]
  update_frequency: 5s
YAML
expect_exit 0 "push a policy; the node applies it to the system's Postfix" \
    in_ct privmta-ctl policy push "$FILES/policy.yaml" --wait="$(waits 20)"
check "main.cf names the milter" test "$(in_ct postconf -h smtpd_milters)" = unix:privmta/milter.sock
# Debian's /etc/postfix holds a symbolic link and directories: the
# scratch copy an apply checks must not fill the log with warnings
no_symlink_warning() { ! journal | grep 'symlink leaves directory'; }
check "the apply's postfix check warned of no symbolic link" no_symlink_warning
for u in controller milter agent; do
    check "privmta-$u is still up, never restarted" active "privmta-$u"
done

# ---- mail through the system's Postfix and the milter -----------------------------------
# the notification listener: the packaged agent.conf names it, and the
# first apply added it to master.cf (nobody ran postconf -M)
listener_added() {
    in_ct postconf -M 127.0.0.1:10026/inet |
        grep -q 'smtpd -o smtpd_milters= -o non_smtpd_milters= -o receive_override_options=no_milters'
}
check "the agent added the notification listener to master.cf, without milters" listener_added
mail_msg() { # ATTACHMENT-NAME TOKEN: a message with one attachment
    printf 'From: bob@example.test\r\nTo: root@localhost\r\nSubject: %s\r\n' "$2"
    printf 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    printf -- '--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n'
    printf 'Content-Type: application/octet-stream\r\n'
    printf 'Content-Disposition: attachment; filename="%s"\r\n\r\nMZ\r\n--b--\r\n' "$1"
}
send() { # ATTACHMENT-NAME TOKEN: swaks' transcript
    mail_msg "$1" "$2" | in_ct swaks --server 127.0.0.1 --from bob@example.test \
        --to root@localhost --data - 2>&1
}
send setup.exe pmtokexe >"$WORK/swaks-exe.out"
check "a blocked attachment is refused by the milter (554 naming .exe)" \
    grep -q '<\*\* *554 5.7.1 .*setup.exe.*\.exe' "$WORK/swaks-exe.out"
check "and the admin is told, through the notification listener" \
    wait_for 10 grep -q 'setup.exe' "$CT/var/mail/root"
send notes.txt pmtoktxt >"$WORK/swaks-txt.out"
check "a clean message is accepted" grep -q '<- *250 2.0.0 Ok: queued' "$WORK/swaks-txt.out"
check "and delivered" wait_for 10 grep -q pmtoktxt "$CT/var/mail/root"

# smtpd's own refusal (before the milter), which only its log records:
# here the journal, as no syslog daemon writes /var/log/mail.log
in_ct swaks --server 127.0.0.1 --from carol@nodomain --to root@localhost \
    --body x >"$WORK/swaks-fqdn.out" 2>&1
check "smtpd refuses an unqualified sender" grep -q '<\*\* *504 5.5.2 .*need fully-qualified' \
    "$WORK/swaks-fqdn.out"
why_fqdn() {
    in_ct privmta-ctl why --from carol@nodomain --json >"$WORK/why.json" 2>/dev/null &&
        jq -e '(.records | length) == 1 and .records[0].node == "mx1" and
            .records[0].key == "inbound.checks.sender_fqdn" and
            (.records[0].reply | startswith("504"))' "$WORK/why.json" >/dev/null
}
check "privmta-ctl why finds it, read from the journal (inbound.checks.sender_fqdn)" \
    wait_for 10 why_fqdn
# a line someone else logs with smtpd's name is not smtpd's
in_ct logger -p mail.info -t postfix/smtpd "NOQUEUE: reject: RCPT from forged[192.0.2.9]: 554 5.7.1 <root@localhost>: Relay access denied; from=<carol@nodomain> to=<root@localhost> proto=ESMTP helo=<x>"
in_ct swaks --server 127.0.0.1 --from dave@nodomain --to root@localhost --body x >/dev/null 2>&1
why_dave() { in_ct privmta-ctl why --from dave@nodomain >/dev/null 2>&1; }
check "a later refusal is found" wait_for 10 why_dave
check "and the line logger forged as postfix/smtpd was not taken" \
    test "$(in_ct privmta-ctl why --from carol@nodomain --json | jq '.records | length')" = 1

# the journal holds every Postfix instance's smtpd: this node's are those
# logging under its syslog_name, submission-style services included
in_ct postconf -M '127.0.0.1:2525/inet=127.0.0.1:2525 inet n - y - - smtpd -o syslog_name=postfix/submission'
in_ct postconf -M '127.0.0.1:2526/inet=127.0.0.1:2526 inet n - y - - smtpd -o syslog_name=postfix-other'
in_ct postfix reload >/dev/null 2>&1
sleep 1
in_ct swaks --server 127.0.0.1:2525 --from erin@nodomain --to root@localhost --body x >/dev/null 2>&1
in_ct swaks --server 127.0.0.1:2526 --from frank@nodomain --to root@localhost --body x >/dev/null 2>&1
in_ct swaks --server 127.0.0.1 --from gina@nodomain --to root@localhost --body x >/dev/null 2>&1
why_from() { in_ct privmta-ctl why --from "$1" >/dev/null 2>&1; }
no_why_from() { ! why_from "$1"; }
check "a refusal by a service logging as postfix/submission is found" wait_for 10 why_from erin@nodomain
check "and one after them (so the one between was read)" wait_for 10 why_from gina@nodomain
check "one logged under another instance's name (postfix-other) was not taken" \
    no_why_from frank@nodomain
in_ct postconf -MX 127.0.0.1:2525/inet 127.0.0.1:2526/inet
in_ct postfix reload >/dev/null 2>&1

# a rehearsal: the agent runs a scratch Postfix and milter from its sandbox
sed 's/blocked_extensions: \["@common"\]/blocked_extensions: ["@common", iso]/' \
    "$CT$FILES/policy.yaml" >"$CT$FILES/candidate.yaml"
mail_msg report.iso pmtokiso >"$CT$FILES/iso.eml"
expect_exit 1 "privmta-ctl policy test: the candidate changes an answer (exit 1)" \
    in_ct privmta-ctl policy test "$FILES/candidate.yaml" "$FILES/iso.eml" --node mx1
check "head accepts report.iso, the candidate rejects it" bash -c \
    "grep -q 'head .* accepted *250' '$WORK/out' &&
     grep -q 'candidate *rejected *554 .*report.iso.*<- changed' '$WORK/out'" ||
    { sed 's/^/    | /' "$WORK/out" "$WORK/err"; journal -n 30 | grep -i 'postfix\|scratch\|rehears' ; }

# ---- signatures, fetched and loaded by the sandboxed daemons ------------------------------
loaded() { in_ct jq -r '.antivirus.databases[]? | select(.name == "test") | .version' \
    /run/privmta-milter/status.json 2>/dev/null; }
loaded_is() { [ "$(loaded)" = "$1" ]; }
check "the milter loaded test version 1 from the mirror" wait_for 30 loaded_is 1
check "what went live is in /var/lib/privmta-signatures, root's" \
    test "$(in_ct stat -c %U /var/lib/privmta-signatures/test.cvd)" = root
check "fetched as privmta-fetch (libfreshclam's freshclam.dat is its)" \
    test "$(in_ct stat -c %U /var/lib/privmta-signatures/.pm-fetch/freshclam.dat)" = privmta-fetch
# the processes running privmta-sigfetch --verify-server (by
# comm, as the kernel cuts it to 15 characters: this shell's own command
# line holds the words it looks for)
verifier_pids() {
    in_ct sh -c 'for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = privmta-sigfetc ] || continue
        case "$(tr "\0" " " <"$p/cmdline" 2>/dev/null)" in
        *--verify-server*) echo "${p#/proc/}" ;;
        esac
    done'
}
verifier_users() { for p in $(verifier_pids); do in_ct stat -c %U "/proc/$p"; done | sort -u; }
check "checked by a verifier of its own user, privmta-verify" \
    test "$(verifier_users)" = privmta-verify ||
    echo "# the verifier's users: $(verifier_users | tr '\n' ' ')"
# its own seccomp filter (pm_sandbox) on top of the unit's: one more than
# the agent that started it
filters_of() { in_ct awk '$1 == "Seccomp_filters:" { print $2 }' "/proc/$1/status"; }
vpid=$(verifier_pids | head -n 1)
check "the verifier runs under a seccomp filter of its own ($(filters_of "$vpid") filters, the agent $(filters_of "$(main_pid privmta-agent)"))" \
    test -n "$vpid" -a "$(filters_of "$vpid")" -gt "$(filters_of "$(main_pid privmta-agent)")"

# ---- what the units promise, read off the running processes --------------------------------
status_of() { in_ct cat "/proc/$(main_pid "$1")/status"; } # UNIT
field() { awk -v f="$2:" '$1 == f { print $2 }' <<<"$1"; }
for u in controller milter; do
    st=$(status_of privmta-$u)
    user=$([ $u = controller ] && echo privmta || echo privmta-milter)
    uid=$(in_ct id -u "$user")
    check "privmta-$u runs as $user" test "$(field "$st" Uid)" = "$uid"
    check "privmta-$u holds no capability" test "$(field "$st" CapEff)" = 0000000000000000
    check "privmta-$u cannot gain privileges (no_new_privs)" test "$(field "$st" NoNewPrivs)" = 1
    check "privmta-$u runs under a seccomp filter" test "$(field "$st" Seccomp)" = 2
done
st=$(status_of privmta-agent)
check "privmta-agent is root under a seccomp filter" test "$(field "$st" Seccomp)" = 2
bits() { # HEX: how many bits are set
    local m=$((16#$1)) n=0
    while [ "$m" -ne 0 ]; do n=$((n + (m & 1))); m=$((m >> 1)); done
    echo "$n"
}
check "with seven capabilities at most (CapBnd)" test "$(bits "$(field "$st" CapBnd)")" -le 7
score() { # UNIT: systemd-analyze's exposure, as this systemd rates the loaded unit
    in_ct systemd-analyze security --no-pager "$1" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
for u in controller milter agent; do
    s=$(score privmta-$u.service)
    echo "# systemd-analyze security privmta-$u.service (running): ${s:-?}"
    [ $u = agent ] && continue
    check "privmta-$u is rated 2.0 or less as it runs ($s)" \
        awk -v s="$s" 'BEGIN { exit !(s != "" && s <= 2.0) }'
done

# ---- the console ----------------------------------------------------------------------
expect_exit 0 "systemctl enable --now privmta-web" in_ct systemctl enable --now privmta-web
check "the console makes its key" wait_for 15 test -f "$CT/var/lib/privmta-web/web.cert"
in_ct cp /var/lib/privmta-web/web.cert /var/lib/privmta/clients/web-web.cert
expect_exit 0 "privmta-ctl web user add admin (password on stdin)" \
    in_ct sh -c 'echo "systemd console pw" | privmta-ctl web user add admin'
web_nodes() {
    in_ct curl -s --cacert /var/lib/privmta-web/tls.crt -c /root/jar -o /dev/null \
        -d '{"user":"admin","password":"systemd console pw"}' https://127.0.0.1:7443/api/login &&
        in_ct curl -s --cacert /var/lib/privmta-web/tls.crt -b /root/jar https://127.0.0.1:7443/api/nodes |
        jq -e '.nodes[0].name == "mx1" and .nodes[0].applied_rev >= 1' >/dev/null
}
check "a user logs in and the console shows mx1" wait_for 15 web_nodes
check "privmta-web is still up, never restarted" active privmta-web

# ---- a rolling restart, through systemctl ---------------------------------------------------
before=$(main_pid privmta-milter)
expect_exit 0 "privmta-ctl restart --rolling --service all --wait" \
    in_ct privmta-ctl restart --rolling --service all --min-healthy 1s --wait="$(waits 40)"
check "the agent had systemd restart the milter (a new main PID)" \
    test "$(main_pid privmta-milter)" != "$before"
check "and the agent kept running" active privmta-agent

# ---- logs and stopping ------------------------------------------------------------------------
check "each line once in the journal (syslog, not stderr too)" \
    test "$(journal -u privmta-controller | grep -c 'serving admins on')" -eq 1
for u in web agent milter controller; do
    in_ct systemctl stop "privmta-$u"
    check "privmta-$u stops cleanly" test \
        "$(in_ct systemctl show -p Result --value "privmta-$u")" = success
done
check "no sanitizer report in the journal" bash -c \
    "! nsenter -t $LEADER -a journalctl --no-pager -o cat -u 'privmta-*' |
       grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:'"
if [ "$FAILED" -gt 0 ]; then
    echo "# the container's journal, privmta's units (last lines):"
    journal -u 'privmta-*' -n 60 | sed 's/^/    | /'
fi
finish
