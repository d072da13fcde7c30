#!/usr/bin/env bash
# The web console end to end, on the demo cluster (deploy/cluster.sh up:
# a controller, three nodes with real Postfix, agent and milter each, and
# privmta-web): its JSON API with curl (login, sessions, CSRF and
# cross-site refusals, validation with the CLI's messages, compare-and-swap
# against a concurrent change, a change that every node's Postfix and
# filter enforce, the web key's limits), then the page itself in headless
# Chromium (tests/integration/web_browser.py).
source "$(dirname "$0")/lib.sh" "$@"

demo_cluster 127.0.3 curl # 127.0.3.11-13: no other test uses them

expect_exit 0 "deploy/cluster.sh up (with the web console)" bash "$SRC/deploy/cluster.sh" up
check "it says where the console is" grep -q "web console: https://127.0.0.1:$WEB_PORT/" "$WORK/out"
export PRIVMTA_STATE_DIR="$WORK/cluster/controller" PRIVMTA_CONTROLLER=tcp://127.0.0.1:$CTL_PORT
export PRIVMTA_CTL_CONFIG=/dev/null
PW=$(cat "$WORK/cluster/web-password")
check "the password file is 0600" test "$(stat -c %a "$WORK/cluster/web-password")" = 600
check "the console's key was enrolled with the web role" \
    grep -q 'role = "web"' "$WORK/cluster/controller/clients/web-web.cert"
check "its TLS key is 0600" test "$(stat -c %a "$WORK/cluster/web/tls.key")" = 600

U="https://127.0.0.1:$WEB_PORT"
CA="$WORK/cluster/web/tls.crt"
JAR="$WORK/jar"
# api METHOD PATH [BODY] [curl options...]: prints the body, then the
# status on a last line of its own
api() {
    local method=$1 path=$2 body=${3:-}
    shift 3 2>/dev/null || shift $#
    curl -s --cacert "$CA" -b "$JAR" -c "$JAR" -X "$method" \
        ${body:+-H 'Content-Type: application/json' --data-binary "$body"} \
        -w '\n%{http_code}\n' "$@" "$U$path"
}
status_of() { tail -n 1; }
body_of() { sed '$d'; }
csrf() { jq -r .csrf "$WORK/login.json"; }

# ---- without a login ----------------------------------------------------------
check "the page is served over HTTPS with the console's own certificate" \
    bash -c "curl -sf --cacert '$CA' '$U/' | grep -q '<title>'"
check "its Content-Security-Policy allows no inline script" \
    bash -c "curl -sI --cacert '$CA' '$U/' | grep -qi \"content-security-policy: default-src 'self'; style-src 'self'; script-src 'self'\""
for p in /api/policy /api/nodes /api/history /api/session; do
    check "GET $p without a login is refused (401)" test "$(api GET "$p" | status_of)" = 401
done
check "POST /api/policy without a login is refused (401)" \
    test "$(api POST /api/policy '{"rev":1,"edits":[]}' | status_of)" = 401
check "a wrong password is refused (401)" \
    test "$(api POST /api/login '{"user":"admin","password":"wrong password"}' | status_of)" = 401

# ---- a session ----------------------------------------------------------------------
api POST /api/login "$(jq -n --arg p "$PW" '{user: "admin", password: $p}')" -D "$WORK/login.hdr" >"$WORK/login.out"
check "the right password logs in" test "$(status_of <"$WORK/login.out")" = 200
body_of <"$WORK/login.out" >"$WORK/login.json"
check "the session cookie is Secure, HttpOnly, SameSite=Strict" \
    grep -qi '^set-cookie: __Host-pm_session=.*; Secure; HttpOnly; SameSite=Strict' "$WORK/login.hdr"
api GET /api/policy >"$WORK/policy.out"
check "GET /api/policy with the session" test "$(status_of <"$WORK/policy.out")" = 200
body_of <"$WORK/policy.out" >"$WORK/policy.json"
REV=$(jq .rev "$WORK/policy.json")
check "it is the head revision ($REV), with the key table" \
    jq -e '.rev >= 1 and (.keys | length) > 30 and (.common_extensions | length) == 27' "$WORK/policy.json" >/dev/null

# ---- changes must come from the page ----------------------------------------------
ISO='{"rev":'$REV',"edits":[{"key":"inbound.blocked_extensions","op":"add","value":"iso"}]}'
check "a change without the CSRF token is refused (403)" \
    test "$(api POST /api/policy "$ISO" | status_of)" = 403
check "a change from another site's page is refused (403), token or not" \
    test "$(api POST /api/policy "$ISO" -H "X-CSRF-Token: $(csrf)" -H 'Origin: https://evil.example' | status_of)" = 403
check "as is one the browser marks cross-site (403)" \
    test "$(api POST /api/policy "$ISO" -H "X-CSRF-Token: $(csrf)" -H 'Sec-Fetch-Site: cross-site' | status_of)" = 403
check "nothing was committed" test "$("$CTL" policy history --json | jq '.[0].revision')" = "$REV"

# ---- validation: the CLI's messages, keyed to the field ---------------------------------
BAD='{"rev":'$REV',"edits":[{"key":"outbound.mynetworks","op":"set","value":["10.0.0.1/8"]},
      {"key":"outbound.relay_host","op":"set","value":"bad host:99999"},
      {"key":"antivirus.custom_signatures","op":"add","value":{"name":"bad.ndb","content":"not a signature\n"}}]}'
api POST /api/policy/check "$BAD" -H "X-CSRF-Token: $(csrf)" | body_of >"$WORK/check.json"
check "check: a mynetworks entry with host bits, named with its key" \
    jq -e '.ok == false and any(.problems[]; .key == "outbound.mynetworks" and (.problem | test("host bits")))' "$WORK/check.json" >/dev/null
check "check: a relay host with a space" \
    jq -e 'any(.problems[]; .key == "outbound.relay_host" and (.problem | test("space")))' "$WORK/check.json" >/dev/null
check "check: a signature file libclamav refuses" \
    jq -e 'any(.problems[]; .key == "antivirus.custom_signatures")' "$WORK/check.json" >/dev/null
"$CTL" policy set 'outbound.mynetworks=[10.0.0.1/8]' >/dev/null 2>"$WORK/cli.err"
check "with the CLI's words" bash -c \
    "grep -qF \"\$(jq -r '.problems[] | select(.key == \"outbound.mynetworks\") | .problem' '$WORK/check.json')\" '$WORK/cli.err'"
api POST /api/policy "$BAD" -H "X-CSRF-Token: $(csrf)" >"$WORK/save.out"
check "saving them is refused (422) with the problems" bash -c \
    "test \"\$(tail -n1 '$WORK/save.out')\" = 422 && sed '\$d' '$WORK/save.out' | jq -e '(.problems | length) >= 3' >/dev/null"
check "and nothing was committed" test "$("$CTL" policy history --json | jq '.[0].revision')" = "$REV"

# ---- a concurrent change is shown, not overwritten --------------------------------------
expect_exit 0 "meanwhile, a change from the CLI" "$CTL" policy set 'antispam.subject_prefix="[probably spam]"' -m "from the CLI"
api POST /api/policy "$ISO" -H "X-CSRF-Token: $(csrf)" >"$WORK/conflict.out"
check "a save on the old revision is a conflict (409)" test "$(status_of <"$WORK/conflict.out")" = 409
body_of <"$WORK/conflict.out" >"$WORK/conflict.json"
check "naming the head, its author and what it changed" \
    jq -e --argjson r $((REV + 1)) '.head == $r and (.author | test("admin")) and any(.diff[]; .key == "antispam.subject_prefix")' "$WORK/conflict.json" >/dev/null
check "the CLI's change stands" bash -c "'$CTL' policy show --json | jq -e '.antispam.subject_prefix == \"[probably spam]\"' >/dev/null"

# ---- a change that every node enforces --------------------------------------------------
REV=$((REV + 1))
ISO='{"rev":'$REV',"edits":[{"key":"inbound.blocked_extensions","op":"add","value":"iso"}],"message":"block iso images"}'
api POST /api/policy "$ISO" -H "X-CSRF-Token: $(csrf)" >"$WORK/save.out"
check "the save is committed (200)" test "$(status_of <"$WORK/save.out")" = 200
NEW=$(body_of <"$WORK/save.out" | jq .rev)
check "as revision $((REV + 1)), the diff with it" bash -c \
    "test '$NEW' = $((REV + 1)) && sed '\$d' '$WORK/save.out' | jq -e 'any(.diff[]; .key == \"inbound.blocked_extensions\")' >/dev/null"
"$CTL" policy history --json >"$WORK/history.json"
check "its author is the console's key and the web user" \
    jq -e '.[0].author == "web (admin)" and .[0].message == "block iso images"' "$WORK/history.json" >/dev/null
acked() { api GET /api/nodes | body_of | jq -e --argjson r "$NEW" '(.nodes | length) == 3 and all(.nodes[]; .applied_rev >= $r)' >/dev/null; }
check "every node acknowledges it (GET /api/nodes)" wait_for 10 acked
printf 'ISO image\n' >"$WORK/report.iso"
for i in 1 2 3; do
    swaks --server "127.0.3.1$i:2525" --from a@remote.example --to "postmaster@mx$i.test" \
        --attach-type application/octet-stream --attach-name report.iso \
        --attach "@$WORK/report.iso" --timeout 20 >"$WORK/swaks.out" 2>&1
    rc=$?
    check "mx$i refuses report.iso (swaks $rc)" bash -c "[ $rc -eq 26 ] && grep -q '554' '$WORK/swaks.out'"
done

# ---- scripts: the session as a bearer token, no CSRF token needed ---------------------
TOKEN=$(jq -r .token "$WORK/login.json")
check "a bearer token reads the history" bash -c \
    "curl -sf --cacert '$CA' -H 'Authorization: Bearer $TOKEN' '$U/api/history?limit=2' | jq -e '.revisions | length == 2' >/dev/null"
check "GET /api/diff between two revisions" bash -c \
    "curl -sf --cacert '$CA' -H 'Authorization: Bearer $TOKEN' '$U/api/diff?a=$REV&b=$NEW' | jq -e '.diff[0].key == \"inbound.blocked_extensions\"' >/dev/null"

check "GET /api/rollout: no rolling restart yet, null" bash -c \
    "curl -sf --cacert '$CA' -H 'Authorization: Bearer $TOKEN' '$U/api/rollout' | jq -e 'has(\"rollout\") and .rollout == null' >/dev/null"

# ---- the web key reads and changes the policy, nothing else ----------------------------
WEBKEY=(--key "$WORK/cluster/web/web.cert_secret")
expect_exit 0 "the web key reads the history" "$CTL" "${WEBKEY[@]}" policy history --limit 1
expect_exit 1 "the web key cannot enrol a node" "$CTL" "${WEBKEY[@]}" node add evil "$(head -c 40 /dev/zero | tr '\0' 'a')"
check "the controller says so" grep -q "may only read and change the policy" "$WORK/err"
expect_exit 1 "nor add a DKIM key" "$CTL" "${WEBKEY[@]}" dkim add example.org --selector s --generate

# ---- logout -----------------------------------------------------------------------------------
api POST /api/logout '{}' -H "X-CSRF-Token: $(csrf)" >/dev/null
check "after logout the session is refused (401)" test "$(api GET /api/session | status_of)" = 401
check "and so is its bearer token" test "$(curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$U/api/policy")" = 401

# ---- the page in a real browser -------------------------------------------------------------
# PM_WEB_SCREENSHOTS=DIR keeps the screenshots (the README's come from here:
# PM_WEB_SCREENSHOTS=docs/web)
SHOTS=${PM_WEB_SCREENSHOTS:-$WORK/shots}
mkdir -p "$SHOTS" "$WORK/browser"
if command -v chromium >/dev/null; then
    python3 "$SRC/tests/integration/web_browser.py" "$U" admin "$WORK/cluster/web-password" \
        "$SHOTS" "$WORK/browser" >"$WORK/browser.out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case $line in
        "ok - "*) pass "browser: ${line#ok - }" ;;
        "FAIL - "*) fail "browser: ${line#FAIL - }" ;;
        "#"*) echo "$line" ;;
        esac
    done <"$WORK/browser.out"
    check "web_browser.py exits 0 (exit $rc)" test "$rc" -eq 0 ||
        tail -20 "$WORK/browser.out" | sed 's/^/    | /'
else
    fail "chromium is not installed (deploy/install-deps.sh installs it)"
fi

[ -n "${PM_KEEP:-}" ] && cp -r "$WORK" "$PM_KEEP"
finish
