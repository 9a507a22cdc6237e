#!/bin/sh
# Time and peak memory of the S/MIME operations (docs/smime.md):
#   tests/tools/measure-smime.sh [BUILD_DIR] [RUNS]
# Messages of 10 KB, 100 KB and 25 MB (a third 8-bit text, the rest a
# base64 attachment), RSA-2048 keys, AES-256-GCM. Prints a Markdown table:
# the median wall time of RUNS runs (process start included) and the
# largest peak RSS.
set -eu
build=${1:-build}
runs=${2:-5}
tool=$build/tests/tools/smime-tool
[ -x "$tool" ] || { echo "no $tool: build first" >&2; exit 1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/k.pem" -out "$d/c.pem" \
	-subj "/CN=Measure/emailAddress=m@example.com" -days 2 \
	-addext "subjectAltName=email:m@example.com" 2>/dev/null

/usr/bin/python3 - "$d" <<'EOF'
import base64, os, sys
d = sys.argv[1]
line = "Grüße aus Köln, eine Zeile Text mit Umlauten: äöü ß\r\n".encode()
for name, size in (("10k", 10 << 10), ("100k", 100 << 10), ("25m", 25 << 20)):
    head = (b"From: m@example.com\r\nTo: r@example.com\r\nSubject: measure\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    text = line * (size // 3 // len(line) + 1)
    mid = (b"\r\n--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n")
    rest = size - len(head) - len(text) - len(mid) - 9
    # Base64 lines of 76 characters and CRLF carry 57 octets.
    att = base64.encodebytes(os.urandom(rest // 78 * 57))
    att = att.replace(b"\n", b"\r\n")
    with open(os.path.join(d, name + ".eml"), "wb") as f:
        f.write(head + text + mid + att + b"--b--\r\n")
EOF

# One operation RUNS times: "median_seconds peak_kb".
measure() {
	input=$1
	shift
	: >"$d/times"
	peak=0
	i=0
	while [ $i -lt "$runs" ]; do
		t0=$(date +%s%N)
		/usr/bin/time -f "%M" -o "$d/t" "$tool" "$@" <"$input" \
			>"$d/out" 2>"$d/err" || { cat "$d/err" >&2; exit 1; }
		t1=$(date +%s%N)
		read -r kb <"$d/t"
		echo $(((t1 - t0) / 1000000)) >>"$d/times"
		[ "$kb" -gt "$peak" ] && peak=$kb
		i=$((i + 1))
	done
	med=$(sort -n "$d/times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	echo "$med $(echo "$peak" | awk '{ printf "%.1f", $1 / 1024 }')"
}

sign="--signer $d/c.pem --key $d/k.pem"
enc="--rcpt $d/c.pem --cipher aes256-gcm"
echo "| operation | size | time (ms) | peak RSS (MB) |"
echo "|---|---|---|---|"
set -- $(measure "$d/10k.eml" inspect)
echo "| (libraries loaded: inspect) | 10k | $1 | $2 |"
for size in 10k 100k 25m; do
	m=$d/$size.eml
	set -- $(measure "$m" sign $sign)
	echo "| sign | $size | $1 | $2 |"
	set -- $(measure "$m" encrypt $enc)
	echo "| encrypt | $size | $1 | $2 |"
	set -- $(measure "$m" sign-encrypt $sign $enc)
	echo "| sign+encrypt | $size | $1 | $2 |"
	cp "$d/out" "$d/se.eml"
	set -- $(measure "$d/se.eml" decrypt --key "$d/c.pem,$d/k.pem")
	echo "| decrypt | $size | $1 | $2 |"
	cp "$d/out" "$d/dec.eml"
	set -- $(measure "$d/dec.eml" verify)
	echo "| verify | $size | $1 | $2 |"
done
echo
echo "sizes: $(wc -c <"$d/10k.eml") $(wc -c <"$d/100k.eml") $(wc -c <"$d/25m.eml") octets; $(nproc) cores; $(openssl version)"
