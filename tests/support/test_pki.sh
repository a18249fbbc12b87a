#!/usr/bin/env bash
# Test PKI for the edge tests, made with the openssl CLI (EC P-256 keys, fast). Never for
# production: keys are unencrypted and live in a temporary directory.
#
#   bash tests/support/test_pki.sh DIR
#
# DIR gets: ca.{key,crt} (the modality CA), other-ca.{key,crt} (a CA nobody trusts),
# server.{key,crt} (CN=localhost, SAN DNS:localhost + IP:127.0.0.1, serverAuth),
# edge-client.{key,crt} (the edge's client certificate towards the core, clientAuth), and client
# certificates NAME.{key,crt} for:
#   ct1        CN=ct-room-1, SAN DNS:ct1.modality.test + URI:urn:dicom:ct-room-1 (clientAuth)
#   mr2        CN=mr-room-2 (clientAuth)
#   us3        CN=us-room-3 (clientAuth)
#   expired    CN=expired-1, valid 2020-01-01 .. 2020-12-31
#   notyet     CN=notyet-1, valid from 2099-01-01
#   revoked    CN=revoked-1, revoked in crl.pem
#   wrongeku   CN=wrongeku-1, extendedKeyUsage serverAuth only
#   otherca    CN=ct-room-1 but signed by other-ca
# and crl.pem (the CA's CRL, listing "revoked"). `revoke NAME DIR` revokes another one later.
set -euo pipefail

die() { echo "test_pki: $*" >&2; exit 1; }

write_conf() { # dir name
    local d=$1 n=$2
    mkdir -p "$d/$n.db/new"
    : >"$d/$n.db/index.txt"
    [[ -f "$d/$n.db/serial" ]] || echo 1000 >"$d/$n.db/serial"
    [[ -f "$d/$n.db/crlnumber" ]] || echo 01 >"$d/$n.db/crlnumber"
    cat >"$d/$n.cnf" <<EOF
[ ca ]
default_ca = this
[ this ]
dir = $d/$n.db
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = $d/$n.crt
private_key = $d/$n.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
organizationName = optional
[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_san ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:ct1.modality.test, URI:urn:dicom:ct-room-1
[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ serveronly ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
EOF
}

make_ca() { # dir name cn
    local d=$1 n=$2 cn=$3
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/$n.key" 2>/dev/null
    openssl req -new -x509 -key "$d/$n.key" -sha256 -days 3650 -subj "/O=Test/CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$d/$n.crt" 2>/dev/null
    write_conf "$d" "$n"
}

issue() { # dir ca name cn ext [startdate enddate]
    local d=$1 ca=$2 n=$3 cn=$4 ext=$5
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/$n.key" 2>/dev/null
    openssl req -new -key "$d/$n.key" -subj "/O=Test/CN=$cn" -out "$d/$n.csr" 2>/dev/null
    local dates=()
    if [[ $# -ge 7 ]]; then dates=(-startdate "$6" -enddate "$7"); fi
    openssl ca -batch -config "$d/$ca.cnf" -extensions "$ext" -in "$d/$n.csr" -out "$d/$n.crt" \
        -notext "${dates[@]}" >/dev/null 2>&1 || die "cannot issue $n"
    rm -f "$d/$n.csr"
}

gencrl() { # dir
    openssl ca -batch -config "$1/ca.cnf" -gencrl -out "$1/crl.pem" >/dev/null 2>&1 || die "gencrl"
}

revoke() { # name dir
    local d=$2
    openssl ca -batch -config "$d/ca.cnf" -revoke "$d/$1.crt" >/dev/null 2>&1 || die "revoke $1"
    gencrl "$d"
}

if [[ "${1:-}" == "revoke" ]]; then
    revoke "$2" "$3"
    exit 0
fi

dir=${1:?usage: test_pki.sh DIR | test_pki.sh revoke NAME DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
make_ca "$dir" ca "Test Modality CA"
make_ca "$dir" other-ca "Other CA"
issue "$dir" ca server localhost server
issue "$dir" ca edge-client dicom-edge client
issue "$dir" ca ct1 ct-room-1 client_san
issue "$dir" ca mr2 mr-room-2 client
issue "$dir" ca us3 us-room-3 client
issue "$dir" ca expired expired-1 client 20200101000000Z 20201231000000Z
issue "$dir" ca notyet notyet-1 client 20990101000000Z 20991231000000Z
issue "$dir" ca revoked revoked-1 client
issue "$dir" ca wrongeku wrongeku-1 serveronly
issue "$dir" other-ca otherca ct-room-1 client
openssl ca -batch -config "$dir/ca.cnf" -revoke "$dir/revoked.crt" >/dev/null 2>&1 || die "revoke"
gencrl "$dir"
