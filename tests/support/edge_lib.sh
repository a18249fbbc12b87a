# Shared helpers for the edge integration tests and benchmarks (sourced, not run).
# Needs: src, build, T (a mktemp -d directory) set by the caller. Starts processes only through
# these functions, which record their PIDs in $T/pids; edge_cleanup kills exactly those.

port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

edge_cleanup() {
    if [[ -f "$T/pids" ]]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$T/pids"
    fi
    rm -rf "$T"
}

remember() { echo "$1" >>"$T/pids"; }

wait_port() { # port
    for _ in $(seq 200); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    return 1
}

wait_log() { # file pattern [tries of 0.1 s]
    for _ in $(seq "${3:-100}"); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_core NAME PORT [extra json members] -> CORE_PID_<NAME>; store in $T/NAME/store
start_core() {
    local name=$1 p=$2 extra=${3:-}
    mkdir -p "$T/$name"
    cat >"$T/$name/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$p", "http_listen": "",
  "spool_dir": "$T/$name/spool", "min_free_bytes": 0, "fsync": false,
  "backend": { "type": "file", "dir": "$T/$name/store", "batch_max_age_ms": 200 } $extra }
JSON
    "$build/core/dicom-core" --config "$T/$name/core.json" 2>"$T/$name/core.log" &
    remember $!
    eval "CORE_PID_$name=$!"
    wait_port "$p"
}

# start_storescp NAME PORT -> writes into $T/NAME/out
start_storescp() {
    local name=$1 p=$2
    mkdir -p "$T/$name/out"
    TCP_NODELAY=1 storescp -aet DICOM_CORE -od "$T/$name/out" +B "$p" 2>"$T/$name/scp.log" &
    remember $!
    eval "SCP_PID_$name=$!"
    wait_port "$p"
}

# write_edge_config PORT HTTP_PORT [extra top-level json members]
write_edge_config() {
    local p=$1 h=$2 extra=${3:-}
    cat >"$T/edge.json" <<JSON
{ "listen": "127.0.0.1:$p", "http_listen": "127.0.0.1:$h",
  "tls": { "cert": "$T/pki/server.crt", "key": "$T/pki/server.key",
           "client_ca": "$T/pki/ca.crt", "crl": "$T/pki/crl.pem" },
  "policy": "$T/policy.json" $extra }
JSON
}

start_edge() { # port
    "$build/edge/dicom-edge" --config "$T/edge.json" 2>>"$T/edge.log" &
    EDGE_PID=$!
    remember "$EDGE_PID"
    wait_port "$1"
}

# make_dicom DIR COUNT ROWS COLS: CT images (explicit VR LE, int16), generated, no PHI
make_dicom() {
    /usr/bin/python3 - "$@" <<'PY'
import sys, os
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
d, n, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(d, exist_ok=True)
study, series = generate_uid(), generate_uid()
px = (np.arange(rows * cols, dtype=np.int16) % 4096).reshape(rows, cols)
for i in range(n):
    m = FileMetaDataset()
    m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    m.MediaStorageSOPInstanceUID = generate_uid()
    m.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = m
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = m.MediaStorageSOPClassUID
    ds.SOPInstanceUID = m.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality = "CT"
    ds.PatientName, ds.PatientID = "TEST^SYNTHETIC", "SYN0001"
    ds.InstanceNumber = i + 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = ((px + i) % 4096).astype(np.int16).tobytes()
    ds.save_as(os.path.join(d, "img%05d.dcm" % i), write_like_original=False)
PY
}

# scu TOOL CERTNAME CALLING CALLED PORT [args...]: storescu/echoscu +tls with a test client cert
scu() {
    local tool=$1 cert=$2 calling=$3 called=$4 p=$5
    shift 5
    TCP_NODELAY=1 "$tool" +tls "$T/pki/$cert.key" "$T/pki/$cert.crt" +cf "$T/pki/ca.crt" \
        -aet "$calling" -aec "$called" 127.0.0.1 "$p" "$@"
}

# same_objects A B: every file of A has a byte-identical file of the same SOP Instance under B
# (compares the dataset after the Part-10 meta header, since each side writes its own meta)
same_objects() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, os, pydicom
def load(root):
    out = {}
    for dp, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(dp, f)
            try:
                ds = pydicom.dcmread(p)
            except Exception:
                continue
            raw = open(p, "rb").read()
            # dataset bytes after the file meta group: 128 preamble, "DICM", then (0002,0000)
            # UL explicit VR, whose value (at 140) is the rest of the group's length
            meta_len = int.from_bytes(raw[140:144], "little")
            out[str(ds.SOPInstanceUID)] = raw[144 + meta_len:]
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
missing = [k for k in a if k not in b]
diff = [k for k in a if k in b and a[k] != b[k]]
if missing or diff:
    print("same_objects: %d missing, %d differ (of %d)" % (len(missing), len(diff), len(a)))
    sys.exit(1)
print("same_objects: %d objects identical" % len(a))
PY
}
