#!/bin/sh
# make-certs.sh: the certificates of the central stack (docs/deploy.md):
# a private CA, the broker's server certificate (Mosquitto, port 8883) and
# the web certificate (Caddy, port 443), signed by that CA.
#
#   make-certs.sh [--out DIR] [--days N] --broker NAME [--broker NAME…] --web NAME [--web NAME…]
#
# NAME is a DNS name or an IP address (both become subjectAltNames); the
# first --broker and --web names are also the certificates' common names.
# The broker certificate always holds "mosquitto" too: the dashboard
# reaches the broker under that name inside the compose network.
# Output in DIR (default ./certs): ca.pem (give it to every gateway as
# [mqtt] ca_file), ca.key (keep it offline), server.pem/server.key,
# web.pem/web.key. An existing CA in DIR is reused, so that the gateways
# keep trusting the new certificates; leaf certificates are made anew.
set -euf # -f: a "*.example.com" name is never a file glob

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }

# A DNS name (letters, digits, '-', '.', a leading '*.') or an IPv4/IPv6
# address; anything else is refused before anything is made.
check_name() {
    if printf '%s' "$1" | grep -Eq '^([0-9]+(\.[0-9]+){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$'; then
        return 0
    fi
    echo "make-certs.sh: '$1' is neither a host name nor an IP address" >&2
    exit 65
}

out=certs; days=825; broker=""; web=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
        --days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
        --broker) [ $# -ge 2 ] || usage; check_name "$2"; broker="$broker $2"; shift 2 ;;
        --web) [ $# -ge 2 ] || usage; check_name "$2"; web="$web $2"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "make-certs.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -n "$broker" ] && [ -n "$web" ] || usage
printf '%s' "$days" | grep -Eq '^[0-9]+$' || { echo "make-certs.sh: --days '$days': give a number of days" >&2; exit 65; }
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found (Debian package openssl)" >&2; exit 69; }

# "a.example 10.0.0.5" -> "DNS:a.example,IP:10.0.0.5"
sans() {
    list=""
    for n in "$@"; do
        if printf '%s' "$n" | grep -Eq '^[0-9]+(\.[0-9]+){3}$|:'; then
            entry="IP:$n"
        else
            entry="DNS:$n"
        fi
        list="${list:+$list,}$entry"
    done
    printf '%s' "$list"
}

mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.pem" ] || [ ! -f "$out/ca.key" ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 \
        -subj "/CN=BMS central CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$out/ca.key" -out "$out/ca.pem" 2>/dev/null
    echo "made a new CA: $out/ca.pem"
else
    echo "reusing the CA in $out/ca.pem"
fi

# leaf NAME-OF-FILES "names…"
leaf() {
    file="$1"; shift
    # shellcheck disable=SC2086 # word splitting of the name list is wanted
    set -- $*
    cn="$1"
    ext="$out/$file.ext"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$(sans "$@")" > "$ext"
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$cn" \
        -keyout "$out/$file.key" -out "$out/$file.csr" 2>/dev/null
    openssl x509 -req -in "$out/$file.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -CAcreateserial -days "$days" -sha256 -extfile "$ext" -out "$out/$file.pem" 2>/dev/null
    rm -f "$out/$file.csr" "$ext"
    echo "made $out/$file.pem for $(sans "$@")"
}

leaf server "$broker mosquitto"
leaf web "$web"
# The CA certificate and the leaf certificates are public; the keys are
# read by the containers' users (Mosquitto runs as uid 1883).
chmod 0644 "$out/ca.pem" "$out/server.pem" "$out/web.pem"
chmod 0640 "$out/server.key" "$out/web.key"
chmod 0600 "$out/ca.key"
echo "now: chown 1883 $out/server.key (the broker's user in its container); keep $out/ca.key offline"
