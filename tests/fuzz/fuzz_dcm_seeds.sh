#!/usr/bin/env bash
# Regenerates the seed corpora of fuzz_dcm_ds and fuzz_dcm_query from real DCMTK identifiers:
# C-FIND request identifiers written by dump2dcm (the query files findscu sends), and the
# response identifiers DCMTK's dcmqrscp returns to findscu -X for synthetic studies made by
# tests/support/gen_data.py (no patient data: every name, ID and date is made up). dcmqrscp
# listens on 127.0.0.1 only, on a free port, and is stopped by its PID.
#   tests/fuzz/fuzz_dcm_seeds.sh            (from the repository root; rewrites dcm_* seeds)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out_ds=$root/tests/fuzz/corpus/fuzz_dcm_ds
out_q=$root/tests/fuzz/corpus/fuzz_dcm_query
work=$(mktemp -d)
qrpid=
cleanup() { [[ -n $qrpid ]] && kill "$qrpid" 2>/dev/null; [[ -n ${KEEP:-} ]] || rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$out_ds" "$out_q" "$work/db" "$work/data" "$work/rsp"

# synthetic studies, indexed into a dcmqrscp database
/usr/bin/python3 "$root/tests/support/gen_data.py" --out "$work/data/ct" --count 2 \
    --modality CT --rows 8 --cols 8 --seed 11 >/dev/null
/usr/bin/python3 "$root/tests/support/gen_data.py" --out "$work/data/mr" --count 1 \
    --modality MR --rows 8 --cols 8 --seed 12 --ts implicit >/dev/null
dcmqridx "$work/db" "$work"/data/*/*.dcm
study=$(dcmdump +P StudyInstanceUID "$work"/data/ct/CT_00000.dcm | sed 's/.*\[\(.*\)\].*/\1/')
series=$(dcmdump +P SeriesInstanceUID "$work"/data/ct/CT_00000.dcm | sed 's/.*\[\(.*\)\].*/\1/')
study2=$(dcmdump +P StudyInstanceUID "$work"/data/mr/MR_00000.dcm | sed 's/.*\[\(.*\)\].*/\1/')
port=$(/usr/bin/python3 -c \
    'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/qr.cfg" <<CFG
NetworkTCPPort  = $port
MaxPDUSize      = 16384
MaxAssociations = 4
HostTable BEGIN
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP $work/db RW (100, 64mb) ANY
AETable END
CFG
# dcmqrscp 3.6.7 --single-process may crash after an association: one server per query
start_qr() {
    dcmqrscp -c "$work/qr.cfg" --single-process "$port" >>"$work/qr.log" 2>&1 &
    qrpid=$!
    for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
}
stop_qr() { kill "$qrpid" 2>/dev/null || true; wait "$qrpid" 2>/dev/null || true; qrpid=; }

# name model dump: the request identifiers (DCMTK dump format)
q() { cat >"$work/$1.dump"; echo "$1 $2" >>"$work/queries"; }
q study_root_study S <<D
(0008,0005) CS [ISO_IR 100]
(0008,0020) DA [20000101-]
(0008,0030) TM []
(0008,0050) SH []
(0008,0052) CS [STUDY]
(0008,0061) CS [CT\MR]
(0010,0010) PN [SYNTHETIC*]
(0010,0020) LO []
(0020,000d) UI []
(0020,1208) IS []
D
q patient_root_patient P <<D
(0008,0052) CS [PATIENT]
(0010,0010) PN []
(0010,0020) LO [SYN*]
(0010,0030) DA []
(0010,0040) CS []
D
q study_root_series S <<D
(0008,0052) CS [SERIES]
(0008,0060) CS [CT]
(0020,000d) UI [$study]
(0020,000e) UI []
(0020,0011) IS []
D
q study_root_image S <<D
(0008,0016) UI []
(0008,0018) UI []
(0008,0052) CS [IMAGE]
(0020,000d) UI [$study]
(0020,000e) UI [$series]
(0020,0013) IS []
D
q study_uid_list S <<D
(0008,0052) CS [STUDY]
(0010,0010) PN []
(0020,000d) UI [$study\\$study2]
D
q combined_datetime S <<D
(0008,0020) DA [20000101-20301231]
(0008,0030) TM [0000-2359]
(0008,0052) CS [STUDY]
(0020,000d) UI []
D
q sequence_key S <<D
(0008,0052) CS [STUDY]
(0008,1032) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=2)
    (0008,0100) SH [T-*]
    (0008,0102) SH []
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)
(0020,000d) UI []
D
q utf8_names S <<D
(0008,0005) CS [ISO_IR 192]
(0008,0052) CS [STUDY]
(0010,0010) PN [Wang^XiaoDong=王^小東*]
(0020,000d) UI []
D

while read -r name model; do
    dump2dcm -F +te "$work/$name.dump" "$work/$name.ex"
    dump2dcm -F +ti "$work/$name.dump" "$work/$name.im"
    dump2dcm +te "$work/$name.dump" "$work/$name.dcm"
    flag=-S
    [[ $model == P ]] && flag=-P
    mkdir -p "$work/rsp/$name"
    start_qr
    findscu -aec QRSCP $flag -X -od "$work/rsp/$name" 127.0.0.1 "$port" "$work/$name.dcm" \
        >"$work/rsp/$name.log" 2>&1 || true
    stop_qr
done <"$work/queries"

# a candidate with a multi-component UTF-8 name (no DCMTK response has one)
cat >"$work/utf8_cand.dump" <<D
(0008,0005) CS [ISO_IR 192]
(0008,0052) CS [STUDY]
(0010,0010) PN [Wang^XiaoDong=王^小東]
(0020,000d) UI [$study2]
D
dump2dcm +te "$work/utf8_cand.dump" "$work/utf8_cand.dcm"

# fuzz_dcm_ds: byte 0 = syntax (1 explicit), then the dataset
for f in "$work"/*.ex; do
    { printf '\001'; cat "$f"; } >"$out_ds/id_$(basename "$f" .ex)_ex"
done
for f in "$work"/*.im; do
    { printf '\000'; cat "$f"; } >"$out_ds/id_$(basename "$f" .im)_im"
done
n=0
for r in "$work"/rsp/*/rsp*.dcm; do
    [[ -e $r ]] || continue
    n=$((n + 1))
    dcmconv -F +ti "$r" "$work/r$n.im"
    dcmconv -F +te "$r" "$work/r$n.ex"
    [[ $n -le 6 ]] && { printf '\000'; cat "$work/r$n.im"; } >"$out_ds/rsp_${n}_im"
done

# fuzz_dcm_query: flags, candidate charset, identifier length (LE16), identifier, candidate
u16() { printf "\\$(printf %o $(($1 & 255)))\\$(printf %o $(($1 >> 8)))"; }
while read -r name model; do
    flags=0x41
    [[ $model == S ]] && flags=$((flags | 2))
    [[ $name == combined_datetime ]] && flags=$((flags | 8))
    r=$(ls "$work/rsp/$name"/rsp*.dcm 2>/dev/null | head -1 || true)
    [[ $name == utf8_names ]] && r=$work/utf8_cand.dcm
    cand=/dev/null
    if [[ -n $r ]]; then dcmconv -F +te "$r" "$work/$name.cand"; cand=$work/$name.cand; fi
    len=$(stat -c %s "$work/$name.ex")
    { printf "\\$(printf %o $flags)\\002"; u16 "$len"; cat "$work/$name.ex" "$cand"; } \
        >"$out_q/$name"
done <"$work/queries"
# a retrieve identifier (C-MOVE/C-GET), Study Root, against itself
len=$(stat -c %s "$work/study_uid_list.ex")
{ printf '\107\002'; u16 "$len"; cat "$work/study_uid_list.ex" "$work/study_uid_list.ex"; } \
    >"$out_q/retrieve_study_list"
ls "$out_ds" "$out_q" | wc -l
