#!/usr/bin/env bash
# The seed's deploy (2018 blog post, docs/seed-000_*.txt, "50.setup-cockroach-cluster.sh"),
# reproduced as the baseline of bench/deploy_bench.py. It is deliberately NOT good: no multiplexing,
# hosts one after another, everything copied and redone on every run (no idempotence).
#
# Usage: seed_deploy.sh SSH_CONFIG TARBALL CERTS_DIR VERSION HOST...
#   SSH_CONFIG  ssh config passed as -F (the bed's: Host hN -> root, key, known_hosts)
#   TARBALL     cockroach-VERSION.linux-ARCH.tgz (copied to each host and extracted there)
#   CERTS_DIR   CERTS_DIR/ca.crt and CERTS_DIR/HOST/node.{crt,key}, generated once beforehand on the
#               "management server" (the seed ran `cockroach cert create-*` once; not part of the timing)
#   HOST...     ssh aliases; each is also the node's advertised name
#
# What the seed's transcript shows per host, in order (one password prompt each = one connection each):
#   1. ONE `scp` of 7 files: binary, cockroach.service, cockroach.ufw, node.key, node.crt, ca.crt,
#      51.setup-cockroach-node.sh;
#   2. ONE `ssh` (with sudo) running 51.setup-cockroach-node.sh: firewall rule, unit linked + enabled.
# Differences, all needed for a comparable end state on the bed (none makes the baseline slower per file):
#   - the release *tarball* is copied and extracted on the host (what roachctl ships too) instead of
#     the binary extracted on the management server; chown root:root after extracting (the seed's lesson 2);
#   - the bed has nftables, not ufw: an nft ruleset file stands in for the ufw application profile;
#   - the service user `cockroach` is created (the seed reused its login user `azmin`);
#   - root login with the bed's key instead of passwords + sudo.
# SEED_COPY=binary: the transcript's bytes: the tarball is extracted once on the controller (the seed's
# management server did so, `tar -v` printing cockroach-v2.0.5.linux-amd64/cockroach) and each host gets
# the extracted `cockroach` (54 MB in the transcript's scp line) plus today's lib/*.so, uncompressed,
# instead of the tarball. Default (tarball): what roachctl ships, the stronger baseline for time.
# SEED_SCP=per-file: one scp per file instead (7 + 1 connections per host), a weaker reading of "several
# separate scp invocations"; deploy_bench.py reports it as its own row, never as the baseline.
# SEED_START=1 (bench/ready_bench.py): the seed's next steps too, as its transcript does them: the
# post-install script also starts the node (`systemctl start`, host after host); then ONE ssh to the
# first host runs `cockroach init` with the root client certs piped in on stdin (CERTS_DIR/client.root.*;
# "already initialized" counts as done, so a re-run works), then ONE ssh per host waits for
# /health?ready=1 (python3 on the host, verified against ca.crt).
# ControlMaster=no / ControlPath=none: every scp and ssh pays its own TCP + key exchange + auth, as the seed did.
set -euo pipefail

if [ $# -lt 5 ]; then
    echo "usage: $0 SSH_CONFIG TARBALL CERTS_DIR VERSION HOST..." >&2
    exit 2
fi
ssh_config=$1 tarball=$2 certs=$3 version=$4
shift 4
hosts=("$@")

release=$(basename "$tarball" .tgz) # cockroach-VERSION.linux-ARCH
copy=${SEED_COPY:-tarball}
case $copy in tarball | binary) ;; *)
    echo "SEED_COPY must be tarball or binary" >&2
    exit 2
    ;;
esac
ssh_opts=(-F "$ssh_config" -o ControlMaster=no -o ControlPath=none -o BatchMode=yes)
join=$(printf '%s:26257,' "${hosts[@]}")
join=${join%,}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The post-install script (the seed's 51.setup-cockroach-node.sh), run on the host from the staging dir.
cat >"$work/51.setup-cockroach-node.sh" <<EOF
#!/bin/sh
set -eu
SEED_START=${SEED_START:-0}
stage=\$(dirname "\$0")
id cockroach >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cockroach --shell /usr/sbin/nologin cockroach
if [ $copy = binary ]; then
    mkdir -p /opt/$release/lib
    install -m 0755 "\$stage/cockroach" /opt/$release/cockroach
    for lib in \$(cat "\$stage/seed-libs"); do install -m 0644 "\$stage/\$lib" /opt/$release/lib/; done
    rm -f "\$stage/cockroach" \$(cd "\$stage" && cat seed-libs) "\$stage/seed-libs"
else
    tar -C /opt -xzf "\$stage/$release.tgz"
fi
chown -R root:root /opt/$release
mkdir -p /opt/cockroach/certs /var/lib/cockroach
ln -sfn /opt/$release/cockroach /opt/cockroach/cockroach
ln -sfn /opt/$release/lib /opt/cockroach/lib
ln -sfn /var/lib/cockroach /opt/cockroach/data
install -m 0644 -o cockroach -g cockroach "\$stage/ca.crt" "\$stage/node.crt" /opt/cockroach/certs/
install -m 0600 -o cockroach -g cockroach "\$stage/node.key" /opt/cockroach/certs/
chown cockroach:cockroach /opt/cockroach/certs /var/lib/cockroach
chmod 0700 /opt/cockroach/certs /var/lib/cockroach
install -m 0644 "\$stage/cockroach.service" /opt/cockroach/cockroach.service
mkdir -p /etc/roachctl-seed
install -m 0644 "\$stage/cockroach.nft" /etc/roachctl-seed/cockroach.nft
nft -f /etc/roachctl-seed/cockroach.nft
systemctl daemon-reload
systemctl enable /opt/cockroach/cockroach.service
if [ "\$SEED_START" = 1 ]; then systemctl start cockroach.service; fi
cd "\$stage" && rm -f $release.tgz cockroach.service cockroach.nft node.key node.crt ca.crt 51.setup-cockroach-node.sh
EOF

# The seed's ufw application profile, as an nftables ruleset (opens the ports; the seed did so to Anywhere).
cat >"$work/cockroach.nft" <<'EOF'
table inet cockroach_seed
delete table inet cockroach_seed
table inet cockroach_seed {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport { 26257, 8080 } accept
    }
}
EOF

payload=("$tarball")
if [ "$copy" = binary ]; then
    # the seed's step 1: extract the release once on the management server (inside the timing, as there)
    tar -C "$work" -xzvf "$tarball" "$release/cockroach" "$release/lib"
    (cd "$work/$release/lib" && ls) >"$work/seed-libs"
    payload=("$work/$release/cockroach" "$work/$release/lib/"* "$work/seed-libs")
fi

for host in "${hosts[@]}"; do
    echo "install cockroach on $host"
    # The unit, rendered per host (the seed hard-coded each host's address in ExecStart).
    cat >"$work/cockroach.service" <<EOF
[Unit]
Description=cockroach database server
After=network.target

[Service]
Type=notify
User=cockroach
Group=cockroach
WorkingDirectory=/var/lib/cockroach
ExecStart=/opt/cockroach/cockroach start --certs-dir=/opt/cockroach/certs --store=path=/var/lib/cockroach/cockroach-data --advertise-addr=$host:26257 --join=$join
ExecReload=/bin/kill -HUP \$MAINPID
TimeoutStopSec=300
Restart=always

[Install]
WantedBy=multi-user.target
EOF
    files=("${payload[@]}" "$work/cockroach.service" "$work/cockroach.nft" "$certs/$host/node.key"
        "$certs/$host/node.crt" "$certs/ca.crt" "$work/51.setup-cockroach-node.sh")
    if [ "${SEED_SCP:-one}" = per-file ]; then
        # variant: one scp (own connection) per file, 7 per host
        for f in "${files[@]}"; do
            scp -q "${ssh_opts[@]}" "$f" "root@$host:"
        done
    else
        # 1. one scp (own connection) of every file the host needs, into the login user's home (as the seed)
        scp -q "${ssh_opts[@]}" "${files[@]}" "root@$host:"
    fi
    # 2. one ssh (own connection) running the post-install script
    ssh "${ssh_opts[@]}" "root@$host" "sh ./51.setup-cockroach-node.sh"
done

[ "${SEED_START:-0}" = 1 ] || exit 0

echo "init the cluster on ${hosts[0]}"
tar -C "$certs" -cf - ca.crt client.root.crt client.root.key |
    ssh "${ssh_opts[@]}" "root@${hosts[0]}" 'd=$(mktemp -d /run/seed-init.XXXXXX) && tar -x -C "$d" &&
        chmod 600 "$d"/client.root.key; out=$(/opt/cockroach/cockroach init --certs-dir="$d" --host='"${hosts[0]}"':26257 2>&1);
        rc=$?; rm -rf "$d"; echo "$out"; [ $rc = 0 ] || echo "$out" | grep -q "already been initialized"'

for host in "${hosts[@]}"; do
    echo "wait until $host is ready"
    ssh "${ssh_opts[@]}" "root@$host" "python3 -c '
import ssl, sys, time, urllib.request
ctx = ssl.create_default_context(cafile=\"/opt/cockroach/certs/ca.crt\")
for _ in range(180):
    try:
        if urllib.request.urlopen(\"https://$host:8080/health?ready=1\", context=ctx, timeout=5).status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(1)
sys.exit(1)
'"
done
