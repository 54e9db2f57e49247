"""Fact gathering: ONE POSIX sh script per host per round trip, parsed into `HostFacts`.

Why one script: with tens of paths, units and users per host, one command per fact would cost
tens of round trips per host. The script is a constant; everything we ask about travels as its
positional parameters (pairs of `kind value`), so a path or unit name can never change what runs.
The script prints one tab-separated record per line and refers to requested items by their index,
never by echoing them back, so odd names (tabs, newlines) cannot corrupt the report. Parsing is
pure and lives in `facts/parse.py`.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from roachctl.errors import RemoteCommandError
from roachctl.exec.base import Executor, Result, command_failed
from roachctl.exec.command import Command
from roachctl.facts.parse import Item, ReportError, parse_report
from roachctl.model.facts import HostFacts
from roachctl.plan import bounds
from roachctl.plan.firewall import FIREWALLD_NEVER_STARTS

NFT_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
_NFT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
_RULE_BACKENDS = ("ufw", "firewalld", "firewalld-offline")
_RULE_PATTERN = re.compile(r"[A-Za-z0-9_. -]{1,80}\Z")
UNIT_PROPERTIES = "LoadState,ActiveState,SubState,UnitFileState,MainPID,ActiveEnterTimestamp"

# Record kinds printed (first field): v, clock, os, arch, systemd, nofile, fwbin, fwactive, fwd
# (firewalld's unit-file state), ss|proc, then per requested item (second field = 1-based index of
# the item's pair): path, target, deref (what a link points to), full (a dir with entries besides
# lost+found), sha and head (hex of a hashed file's first line, at most 200 bytes), user (exists,
# uid, hex of the login shell), unit, nft, mnt (is the path's parent a mount point: mount, plain,
# missing or root), rules + rule (our ufw/firewalld rules, or firewalld's permanent ones read
# offline), df, addr (one IP address `getent ahosts` gives for a name); owner (hex of a marker's
# path and content: global, printed before the items); and finally `end`.
# Exit status is always 0 unless the shell itself broke.
SCRIPT = r"""
set -u
set -f
export LC_ALL=C
printf 'v\t1\n'
printf 'clock\t%s\n' "$(date +%s.%N)"
for f in /etc/os-release /usr/lib/os-release; do
  if [ -r "$f" ]; then awk '{print "os\t" $0}' "$f"; break; fi
done
printf 'arch\t%s\n' "$(uname -m)"
if [ -d /run/systemd/system ]; then sd=1; else sd=0; fi
printf 'systemd\t%s\n' "$sd"
printf 'nofile\t%s\n' "$(ulimit -H -n)"
for b in nft ufw firewall-cmd firewall-offline-cmd; do
  if command -v "$b" >/dev/null 2>&1; then printf 'fwbin\t%s\n' "$b"; fi
done
# `ufw status` (python: slow) answers "inactive" without asking further exactly when ufw's own first
# check, `<iptables_dir>/iptables -L ufw-user-input -n`, exits 1 (contract §12). Only that answer from
# every iptables ufw may use skips it; any other answer, or no iptables, asks ufw as before.
ufw_iptables='/usr/sbin/iptables /sbin/iptables'
ufw_loaded() {
  seen=0
  for ipt in $ufw_iptables; do
    if [ -x "$ipt" ]; then
      seen=1
      "$ipt" -L ufw-user-input -n >/dev/null 2>&1 && return 0
      [ $? -eq 1 ] || return 0
    fi
  done
  [ "$seen" = 0 ]
}
# `firewall-cmd --state` (python; retrying for 10 s when firewalld is not running) can print
# "running" only over a connection to firewalld's D-Bus name (contract §12). Only the bus daemon's
# own answer that nobody owns that name skips it; any other answer (no busctl, no bus, an error)
# asks firewall-cmd as before.
firewalld_owned() {
  [ "$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
      NameHasOwner s org.fedoraproject.FirewallD1 2>/dev/null)" != "b false" ]
}
active=
if command -v firewall-cmd >/dev/null 2>&1 && firewalld_owned \
    && [ "$(firewall-cmd --state 2>/dev/null)" = running ]; then
  active=firewalld
elif command -v ufw >/dev/null 2>&1 && ufw_loaded && ufw status 2>/dev/null | grep -q '^Status: active'; then
  active=ufw
elif [ "$sd" = 1 ] && systemctl is-active --quiet nftables.service 2>/dev/null; then
  active=nftables
fi
printf 'fwactive\t%s\n' "$active"
# firewalld's unit-file state ("" when it has no unit), read without starting anything, whichever of
# its tools are installed: one that is not running but may start (plan/firewall.py
# FIREWALLD_NEVER_STARTS) gets its permanent configuration read and written offline.
fwd=
if [ "$sd" = 1 ]; then
  fwd=$(systemctl show -p UnitFileState --value firewalld.service 2>/dev/null)
  printf 'fwd\t%s\n' "$fwd"
fi
case $fwd in @FWD_NEVER_STARTS@) fwd_start=0 ;; *) fwd_start=1 ;; esac
if command -v ss >/dev/null 2>&1; then
  ss -Htln 2>/dev/null | awk '{print "ss\t" $4}'
else
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {print "proc\t" $2}'
fi
# Ownership markers (plan/owner.py): every /etc/roachctl/cluster-*.owner, read no-follow and
# non-blocking like the hash, at most 16 KiB each, hex-encoded (never trusted to be one line).
if [ -d /etc/roachctl ] && [ ! -L /etc/roachctl ]; then
  set +f
  for f in /etc/roachctl/cluster-*.owner; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      body=$(dd if="$f" iflag=nofollow,nonblock bs=16384 count=1 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
      printf 'owner\t%s\t%s\n' "$(printf '%s' "$f" | od -An -v -tx1 | tr -d ' \n')" "$body"
    fi
  done
  set -f
fi
path_fact() {
  # $1 index, $2 p|h, $3 path
  if [ -L "$3" ]; then pk=link
  elif [ -d "$3" ]; then pk=dir
  elif [ -f "$3" ]; then pk=file
  elif [ -e "$3" ]; then pk=other
  else printf 'path\t%s\tmissing\n' "$1"; return; fi
  printf 'path\t%s\t%s\t%s\n' "$1" "$pk" "$(stat -c '%a %U %G' -- "$3" | tr ' ' '\t')"
  if [ "$pk" = link ]; then
    printf 'target\t%s\t%s\n' "$1" "$(readlink -- "$3" | od -An -v -tx1 | tr -d ' \n')"
    if [ -d "$3" ]; then rk=dir; elif [ -f "$3" ]; then rk=file; elif [ -e "$3" ]; then rk=other
    else rk=missing; fi
    if [ "$rk" = missing ]; then printf 'deref\t%s\tmissing\n' "$1"
    else printf 'deref\t%s\t%s\t%s\n' "$1" "$rk" "$(stat -L -c '%a %U %G' -- "$3" | tr ' ' '\t')"; fi
  fi
  if [ "$pk" = dir ]; then
    entry=$(find "$3" -mindepth 1 -maxdepth 1 ! -name lost+found -print -quit 2>/dev/null)
    if [ -n "$entry" ]; then printf 'full\t%s\n' "$1"; fi
  fi
  if [ "$2" = h ] && [ "$pk" = file ]; then
    # No-follow, non-blocking open (docs/findings.md S-L12): a file swapped for a FIFO or a symlink after the
    # test above yields a wrong hash (so a rewrite), never a hang or a read through a link.
    sha=$(dd if="$3" iflag=nofollow,nonblock bs=65536 2>/dev/null | sha256sum | cut -d' ' -f1)
    printf 'sha\t%s\t%s\n' "$1" "$sha"
    head=$(dd if="$3" iflag=nofollow,nonblock bs=200 count=1 2>/dev/null | head -n 1 | od -An -v -tx1)
    printf 'head\t%s\t%s\n' "$1" "$(printf '%s' "$head" | tr -d ' \n')"
  fi
}
offline_rules() {
  # $1 index, $2 ipset prefix: our rules in firewalld's permanent configuration, read offline
  # (contract §12); fails as a whole when any listing fails.
  rr=$(firewall-offline-cmd --list-rich-rules 2>/dev/null) || return 1
  sets=$(firewall-offline-cmd --get-ipsets 2>/dev/null) || return 1
  printf '%s\n' "$rr" | while IFS= read -r r; do
    case $r in *"ipset=\"$2"*) printf 'rule\t%s\t%s\n' "$1" "$r" ;; esac
  done
  for s in $sets; do
    case $s in "$2"*)
      ents=$(firewall-offline-cmd --ipset="$s" --get-entries 2>/dev/null) || return 1
      for e in $ents; do printf 'rule\t%s\tipset %s %s\n' "$1" "$s" "$e"; done ;;
    esac
  done
}
rules_fact() {
  # $1 index, $2 ufw|firewalld, $3 what marks our rules (ufw: comment tag; firewalld: ipset prefix).
  # Listed only when that backend is the active one ($active, above); otherwise unknown ("?").
  if [ "$2" = ufw ] && [ "$active" = ufw ]; then
    printf 'rules\t%s\tok\n' "$1"
    ufw status numbered 2>/dev/null | pat=$3 awk -v i="$1" '
      /^\[ *[0-9]+\]/ { c = $0; sub(/[ \t]+$/, "", c); at = index(c " ", " # " ENVIRON["pat"])
        if (at) { c = substr(c, at + 3); gsub(/\t/, " ", c); print "rule\t" i "\t" c } }'
  elif [ "$2" = firewalld ] && [ "$active" = firewalld ]; then
    printf 'rules\t%s\tok\n' "$1"
    firewall-cmd --list-rich-rules 2>/dev/null | while IFS= read -r r; do
      case $r in *"ipset=\"$3"*) printf 'rule\t%s\t%s\n' "$1" "$r" ;; esac
    done
    for s in $(firewall-cmd --get-ipsets 2>/dev/null); do
      case $s in "$3"*)
        for e in $(firewall-cmd --ipset="$s" --get-entries 2>/dev/null); do
          printf 'rule\t%s\tipset %s %s\n' "$1" "$s" "$e"
        done ;;
      esac
    done
  elif [ "$2" = firewalld-offline ] && [ "$active" != firewalld ] && [ "$fwd_start" = 1 ] \
      && command -v firewall-offline-cmd >/dev/null 2>&1 && out=$(offline_rules "$1" "$3"); then
    printf 'rules\t%s\tok\n' "$1"
    if [ -n "$out" ]; then printf '%s\n' "$out"; fi
  else
    printf 'rules\t%s\t?\n' "$1"
  fi
}
i=0
while [ $# -ge 2 ]; do
  kind=$1 val=$2
  shift 2
  i=$((i + 1))
  case $kind in
    p|h) path_fact "$i" "$kind" "$val" ;;
    u) if uid=$(id -u -- "$val" 2>/dev/null); then
         shell=$(getent passwd "$val" 2>/dev/null | head -n 1 | cut -d: -f7 | od -An -v -tx1 | tr -d ' \n')
         printf 'user\t%s\t1\t%s\t%s\n' "$i" "$uid" "$shell"
       else printf 'user\t%s\t0\n' "$i"; fi ;;
    s) if [ "$sd" = 1 ]; then
         systemctl show -p LoadState,ActiveState,SubState,UnitFileState,MainPID,ActiveEnterTimestamp \
           -- "$val" 2>/dev/null | awk -v i="$i" '{print "unit\t" i "\t" $0}'
       fi ;;
    n) if ! command -v nft >/dev/null 2>&1; then printf 'nft\t%s\t0\n' "$i"
       elif nft list table "${val%% *}" "${val#* }" >/dev/null 2>&1; then printf 'nft\t%s\t1\n' "$i"
       elif nft list tables >/dev/null 2>&1; then printf 'nft\t%s\t0\n' "$i"
       else printf 'nft\t%s\t?\n' "$i"; fi ;;
    m) parent=$(dirname -- "$val")
       if [ "$parent" = / ]; then st=root
       elif [ ! -d "$parent" ] || [ -L "$parent" ]; then st=missing
       elif command -v mountpoint >/dev/null 2>&1; then
         if mountpoint -q -- "$parent"; then st=mount; else st=plain; fi
       elif [ "$(stat -c %d -- "$parent")" != "$(stat -c %d -- "$parent/..")" ]; then st=mount
       else st=plain; fi
       printf 'mnt\t%s\t%s\n' "$i" "$st" ;;
    r) rules_fact "$i" "${val%% *}" "${val#* }" ;;
    d) d=$val
       while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done
       df -Pk -- "$d" 2>/dev/null | awk -v i="$i" 'NR == 2 {print "df\t" i "\t" $(NF - 2)}' ;;
    g) getent ahosts "$val" 2>/dev/null | awk -v i="$i" 'NF {print "addr\t" i "\t" $1}' ;;
  esac
done
printf 'end\n'
""".replace("@FWD_NEVER_STARTS@", "|".join(shlex.quote(state) for state in FIREWALLD_NEVER_STARTS))


@dataclass(frozen=True)
class FactRequest:
    """What to look at on a host, besides the facts every report has (OS, arch, clock, ...).

    `nft_tables` are "family name" (e.g. "inet roachctl") or a bare name (family inet).
    """

    paths: tuple[str, ...] = ()
    hash_paths: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    nft_tables: tuple[str, ...] = ()
    mount_parents: tuple[str, ...] = ()  # dirs whose parent must be (or be checked for) a mount point
    disk_dirs: tuple[str, ...] = ()
    fw_rules: tuple[str, ...] = ()  # "ufw TAG" / "firewalld[-offline] PREFIX" (plan.firewall.rules_fact)
    resolve: tuple[str, ...] = ()  # names to resolve as this host does (`getent ahosts`)

    def items(self) -> list[Item]:
        """The items passed to the script, in index order (index = position + 1)."""
        hashed = list(dict.fromkeys(self.hash_paths))
        plain = [p for p in dict.fromkeys(self.paths) if p not in set(hashed)]
        items = [Item("p", p) for p in plain] + [Item("h", p) for p in hashed]
        items += [Item("u", u) for u in dict.fromkeys(self.users)]
        items += [Item("s", s) for s in dict.fromkeys(self.units)]
        items += [Item("n", _nft_spec(t), key=t) for t in dict.fromkeys(self.nft_tables)]
        items += [Item("m", m) for m in dict.fromkeys(self.mount_parents)]
        items += [Item("d", d) for d in dict.fromkeys(self.disk_dirs)]
        items += [Item("r", _rules_spec(r)) for r in dict.fromkeys(self.fw_rules)]
        items += [Item("g", n) for n in dict.fromkeys(self.resolve)]
        for item in items:
            if item.kind in "phmd" and not item.value.startswith("/"):
                raise ValueError(f"fact paths must be absolute: {item.value!r}")
        return items

    def args(self) -> list[str]:
        return [word for item in self.items() for word in (item.kind, item.value)]


def _nft_spec(table: str) -> str:
    parts = table.split()
    family, name = (parts[0], parts[1]) if len(parts) == 2 else ("inet", parts[0] if parts else "")
    if family not in NFT_FAMILIES or not _NFT_NAME.match(name):
        raise ValueError(f"invalid nft table {table!r}: expected '[family] name'")
    return f"{family} {name}"


def _rules_spec(spec: str) -> str:
    backend, _, pattern = spec.partition(" ")
    if backend not in _RULE_BACKENDS or not pattern or not _RULE_PATTERN.match(pattern):
        raise ValueError(f"invalid firewall rules item {spec!r}: expected 'ufw|firewalld[-offline] PATTERN'")
    return spec


def facts_command(request: FactRequest, *, sudo: bool = True) -> Command:
    """The one command that gathers everything in `request` (runs as root so keys can be hashed)."""
    return Command.shell(SCRIPT, *request.args(), sudo=sudo, name="roachctl-facts")


async def gather_facts(
    executor: Executor,
    *,
    host: str,
    paths: Sequence[str] = (),
    hash_paths: Sequence[str] = (),
    users: Sequence[str] = (),
    units: Sequence[str] = (),
    nft_tables: Sequence[str] = (),
    mount_parents: Sequence[str] = (),
    disk_dirs: Sequence[str] = (),
    fw_rules: Sequence[str] = (),
    resolve: Sequence[str] = (),
) -> HostFacts:
    """Gather facts about one host in a single round trip (as root: keys must be hashable).

    Takes exactly the keyword arguments `plan.diff.fact_request()` returns.

    Raises:
        TransportError: the host could not be reached.
        RemoteCommandError: the script failed or its report was incomplete.
    """
    request = FactRequest(
        tuple(paths),
        tuple(hash_paths),
        tuple(users),
        tuple(units),
        tuple(nft_tables),
        tuple(mount_parents),
        tuple(disk_dirs),
        tuple(fw_rules),
        tuple(resolve),
    )
    return await gather(executor, host, request)


async def gather(
    executor: Executor, host: str, request: FactRequest, *, sudo: bool = True, timeout: float = bounds.FACTS_S
) -> HostFacts:
    """`gather_facts` with a prepared request, and control over sudo and the timeout."""
    sent = time.time()
    result = await executor.run(facts_command(request, sudo=sudo), timeout=timeout)
    return report_facts(host, request, result, sent_at=sent, received_at=time.time())


def report_facts(
    host: str, request: FactRequest, result: Result, *, sent_at: float, received_at: float
) -> HostFacts:
    """The facts in `result`, the output of `facts_command(request)` (run by `gather`, or after the
    host lock was taken: operation/lock.py)."""
    if result.returncode != 0:
        raise command_failed(host, facts_command(request), result)
    try:
        return parse_report(host, result.out, request.items(), sent_at=sent_at, received_at=received_at)
    except ReportError as exc:
        raise RemoteCommandError(
            f"could not parse the fact report: {exc}", where=host, stderr=result.err[-2000:]
        ) from exc
