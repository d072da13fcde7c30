#!/usr/bin/env bash
# bench_policy_parse.sh - `privmta-ctl policy validate` on hostile policy
# files: prints the wall time, the exit status and the first problem line of
# each. Run by hand (never by ctest; tests assert errors, not times):
#
#   bench/bench_policy_parse.sh BUILD_DIR [MAX_BYTES]
#
# MAX_BYTES (default: the policy file limit, PM_POLICY_FILE_MAX, 16 MiB) is
# the size of the files that are meant to be as big as allowed. Every file is
# generated into a temporary folder, removed afterwards. The goal: every
# line below 1 s, each with a result or a precise error.
set -u
BUILD=${1:?usage: bench_policy_parse.sh BUILD_DIR [MAX_BYTES]}
MAX=${2:-$((16 << 20))}
CTL="$BUILD/controller/privmta-ctl"
[ -x "$CTL" ] || { echo "no $CTL; build privmta-ctl first" >&2; exit 2; }
DIR=$(mktemp -d /tmp/privmta-bench-policy.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
export PRIVMTA_CTL_CONFIG=/dev/null
# the sanitizers of a debug build would report leaks at exit, not time
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}

python3 - "$DIR" "$MAX" <<'PY'
import os, sys
d, size = sys.argv[1], int(sys.argv[2])
def put(name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
half = (size - 40) // 2
put("deep_flow_list.yaml", "a: " + "[" * half + "]" * half + "\n")
put("deep_flow_map.yaml", "a: " + "{a: " * (half // 4) + "1" + "}" * (half // 4) + "\n")
put("deep_flow_unclosed.yaml", "a: " + "[" * (size - 10) + "\n")
put("deep_block_list.yaml", "".join("  " * i + "-\n" for i in range(min(4000, int((2 * size) ** 0.5) // 2))))
put("deep_json.json", "[" * half + "]" * half)
items = ["x%05d" % i for i in range(40000)]
put("list_40000_flow.yaml", "inbound:\n  blocked_extensions: [" + ", ".join(items) + "]\n")
put("list_40000_block.yaml", "inbound:\n  blocked_extensions:\n" + "".join("    - %s\n" % i for i in items))
put("list_40000_scalar.yaml", "inbound:\n  blocked_extensions: \"" + " ".join(items) + "\"\n")
put("list_40000_dups.yaml", "inbound:\n  blocked_extensions: [" + ", ".join(["exe"] * 40000) + "]\n")
put("list_4096_unique.yaml", "inbound:\n  blocked_extensions: [" + ", ".join(items[:4096]) + "]\n")
put("mynetworks_4096_dups.yaml", "outbound:\n  mynetworks: [" + ", ".join(["10.0.0.0/8"] * 4096) + "]\n")
put("huge_scalar_plain.yaml", "antispam:\n  subject_prefix: " + "x" * (size - 40) + "\n")
put("huge_scalar_quoted.yaml", "antispam:\n  subject_prefix: \"" + "x" * (size - 40) + "\"\n")
put("huge_scalar_literal.yaml", "antispam:\n  subject_prefix: |\n" + ("    " + "x" * 75 + "\n") * ((size - 40) // 80))
put("huge_key.yaml", "x" * 1000 + ": 1\n" + "\"" + "k" * (size - 2000) + "\": 1\n")
put("many_keys_top.yaml", "".join("k%07d: 1\n" % i for i in range(min(200000, size // 11))))
put("many_keys_group.yaml", "inbound:\n" + "".join("  k%07d: 1\n" % i for i in range(min(200000, size // 13))))
put("many_nodes.yaml", "nodes:\n" + "".join("  n%06d:\n    outbound.sasl_auth: false\n" % i for i in range(min(100000, size // 40))))
put("many_nodes_many_keys.yaml", "nodes:\n" + "".join(
    "  n%04d:\n" % n + "".join("    k%04d: 1\n" % k for k in range(4096)) for n in range(48)))
put("many_dkim.yaml", "dkim:\n  domains:\n" + "".join(
    "    - {domain: d%05d.example.com, selector: s, key: k}\n" % i for i in range(4096)))
put("many_dkim_dups.yaml", "dkim:\n  domains:\n" + "".join(
    "    - {domain: example.com, selector: s, key: k}\n" for i in range(4096)))
put("many_signatures.yaml", "antivirus:\n  custom_signatures:\n" + "".join(
    "    - {name: s%05d.ndb, content: \"X.S%d:0:*:41424344\\n\"}\n" % (i, i) for i in range(4096)))
def sig_file(name, lines):
    body = "".join("        Privmta.Big%07d:0:*:%s\n" % (i, ("%08x" % i) * 4) for i in range(lines))
    put(name, "antivirus:\n  custom_signatures:\n    - name: big.ndb\n      content: |\n" + body)
sig_file("sig_over_total.yaml", (size - 100) // 66)   # just under the file limit
sig_file("sig_just_under_total.yaml", (8 << 20) // 59 - 10)  # valid: compiled
lol = ["a: &a [\"lol\"" + ", \"lol\"" * 8 + "]"]
for i, c in enumerate("bcdefghi"):
    lol.append("%s: &%s [%s]" % (c, c, ", ".join(["*" + "abcdefghi"[i]] * 9)))
put("alias_bomb.yaml", "\n".join(lol) + "\n")
put("alias_deep.yaml", "a: &a " + "[" * 15 + "x" + "]" * 15 + "\nb: [*a]\n")
put("anchors_many.yaml", "x: [" + ", ".join("&a%d %d" % (i, i) for i in range(4000)) + "]\ny: [" +
    ", ".join("*a%d" % i for i in range(4000)) + "]\n")
put("simple_keys_long_line.yaml", "a: [" + ", ".join("{k%d: v}" % i for i in range(4096)) + "]\n")
put("nul_in_value.yaml", "outbound:\n  relay_host: \"mx.example.com\\0[10.9.9.9]:25\"\n")
put("two_docs_many.yaml", "a: 1\n" + "---\nb: 2\n" * (size // 12))
PY

printf '%-28s %10s %8s %5s  %s\n' FILE BYTES SECONDS EXIT "FIRST PROBLEM (or result)"
for f in "$DIR"/*; do
    start=$(date +%s.%N)
    "$CTL" policy validate "$f" >"$DIR.out" 2>"$DIR.err"
    rc=$?
    end=$(date +%s.%N)
    first=$(head -1 "$DIR.err")
    [ -n "$first" ] || first=$(head -1 "$DIR.out")
    first=${first#"$DIR/"}
    printf '%-28s %10s %8.3f %5s  %.110s\n' "$(basename "$f")" "$(stat -c %s "$f")" \
        "$(echo "$end - $start" | bc)" "$rc" "$first"
done
rm -f "$DIR.out" "$DIR.err"
