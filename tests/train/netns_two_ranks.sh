#!/usr/bin/env bash
# Two ranks on two "machines": each in its own network namespace, joined by a
# veth pair (10.77.0.1 <-> 10.77.0.2), started by hand with torchrun's
# variables and GLOO_SOCKET_IFNAME. The result must equal the same job run
# with --nproc 2 on loopback. Exit 77 (skipped) where namespaces, veth pairs
# or Fashion-MNIST are not available. usage: netns_two_ranks.sh COMPRESS_CLI
set -u
cli=$1
unshare -n true 2>/dev/null || { echo "skipped: cannot create a network namespace here"; exit 77; }
ls /usr/share/datasets/fashion-mnist >/dev/null 2>&1 || [ -n "${COMPRESS_DATA_DIR:-}" ] ||
  { echo "skipped: Fashion-MNIST is not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
job=(train --arch cnn --data fashion-mnist --limit 512 --epochs 1 --batch-size 64 --threads 1 --quiet --json)

"$cli" "${job[@]}" --nproc 2 -o "$dir/loopback.pt" > "$dir/loopback.json" || { echo "loopback run failed"; exit 1; }

export CLI=$cli DIR=$dir JOB="${job[*]}"
unshare -n bash -c '
  set -u
  ip link set lo up
  ip link add va type veth peer name vb 2>/dev/null || exit 77
  unshare -n sleep 300 & other=$!
  # Wait (up to 10 s) until that process is in its own namespace: moving vb
  # to it earlier leaves vb here, and the run would be skipped below.
  for _ in $(seq 100); do
    [ "$(readlink /proc/$other/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.1
  done
  [ "$(readlink /proc/$other/ns/net)" != "$(readlink /proc/self/ns/net)" ] || exit 77
  ip link set vb netns $other || exit 77
  ip addr add 10.77.0.1/24 dev va && ip link set va up || exit 77
  nsenter -t $other -n sh -c "ip link set lo up; ip addr add 10.77.0.2/24 dev vb; ip link set vb up" || exit 77
  common="MASTER_ADDR=10.77.0.1 MASTER_PORT=29531 WORLD_SIZE=2"
  env $common RANK=0 LOCAL_RANK=0 GLOO_SOCKET_IFNAME=va "$CLI" $JOB -o "$DIR/netns.pt" > "$DIR/netns.json" 2> "$DIR/rank0.log" &
  rank0=$!
  nsenter -t $other -n env $common RANK=1 LOCAL_RANK=0 GLOO_SOCKET_IFNAME=vb "$CLI" $JOB -o "$DIR/rank1.pt" > "$DIR/rank1.out" 2>&1
  rc1=$?
  wait $rank0; rc0=$?
  kill $other
  echo "rank 0 exit $rc0, rank 1 exit $rc1"
  cat "$DIR/rank0.log" "$DIR/rank1.out"
  [ $rc0 = 0 ] && [ $rc1 = 0 ]
'
rc=$?
[ $rc = 77 ] && { echo "skipped: cannot set up a veth pair between namespaces"; exit 77; }
[ $rc = 0 ] || { echo "the two-namespace job failed"; exit 1; }
[ -e "$dir/rank1.pt" ] && { echo "rank 1 wrote an output model"; exit 1; }
[ -s "$dir/rank1.out" ] && { echo "rank 1 printed something:"; cat "$dir/rank1.out"; exit 1; }
/usr/bin/python3 - "$dir" <<'PY' || exit 1
import json, sys, zipfile
d = sys.argv[1]
a, b = json.load(open(d + "/loopback.json")), json.load(open(d + "/netns.json"))
assert a["steps"] == b["steps"] == 8, (a["steps"], b["steps"])
assert a["test"]["top1"] == b["test"]["top1"], (a["test"]["top1"], b["test"]["top1"])
def tensors(p):  # the saved tensors, byte for byte
    z = zipfile.ZipFile(p)
    return sorted(z.read(n) for n in z.namelist() if "/data/" in n)
ta = tensors(d + "/loopback.pt")
assert len(ta) > 4, "no tensors found in the saved model"
assert ta == tensors(d + "/netns.pt"), "weights differ"
print("two namespaces and loopback agree: %d steps, test top-1 %.4f" % (b["steps"], b["test"]["top1"]))
PY
