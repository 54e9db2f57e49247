"""A stand-in `firewall-offline-cmd` (the bed has no firewalld: docs/testbed.md), for unit and bed tests.

It keeps firewalld's permanent configuration as JSON ({"sets": {name: {"family", "entries"}},
"rules": [...], "ports": [...]}; `$FWD_STATE`, default `/etc/firewalld/roachctl-standin.json`) and
implements only the options roachctl uses, as docs/cockroach-contract.md §12 describes them
(output formats, ALREADY_ENABLED/NOT_ENABLED as success, error codes). Stricter than firewalld
where unsure: it refuses to run while firewalld.service is active (the tool is for a firewalld
that is not running), without arguments (firewalld would migrate a lokkit configuration), an
entry of the wrong family, a rich rule naming an unknown ipset, and deleting an ipset in use.
"""

from __future__ import annotations

STATE = "/etc/firewalld/roachctl-standin.json"
PATH = "/usr/local/sbin/firewall-offline-cmd"

FIREWALL_OFFLINE_CMD = r"""#!/usr/bin/env python3
import ipaddress, json, os, re, subprocess, sys

ERR = {"ALREADY_ENABLED": 11, "NOT_ENABLED": 12, "NAME_CONFLICT": 26, "INVALID_TYPE": 119,
       "INVALID_RULE": 122, "INVALID_IPSET": 135, "INVALID_ENTRY": 136, "INVALID_OPTION": 137}


def fail(code, what):
    print(f"Error: {code}: {what}", file=sys.stderr)
    sys.exit(ERR[code])


def warn(code, what):
    print(f"Warning: {code}: {what}", file=sys.stderr)


if os.getuid() != 0:
    sys.exit("You need to be root to run firewall-offline-cmd.")
args = sys.argv[1:]
if not args:
    sys.exit("Opening of '/etc/sysconfig/system-config-firewall' failed, exiting.")
active = subprocess.run(["systemctl", "is-active", "--quiet", "firewalld.service"], check=False)
if active.returncode == 0:
    sys.exit("stand-in: firewall-offline-cmd while firewalld is running")
path = os.environ.get("FWD_STATE", "/etc/firewalld/roachctl-standin.json")
try:
    with open(path) as f:
        cfg = json.load(f)
except FileNotFoundError:
    cfg = {}
cfg.setdefault("sets", {}), cfg.setdefault("rules", []), cfg.setdefault("ports", [])
opts = {}
for a in args:
    m = re.fullmatch(r"--([a-z-]+)(?:=(.*))?", a, re.S)
    if m is None or m.group(1) in opts:
        sys.exit(f"usage: unknown or repeated argument {a!r}")
    opts[m.group(1)] = m.group(2)
sets, out = cfg["sets"], None


def need_set(name):
    if name not in sets:
        fail("INVALID_IPSET", name)
    return sets[name]


def only(*names):
    if set(opts) != set(names):
        sys.exit(f"stand-in: unmodelled options {sorted(opts)}")


if "list-rich-rules" in opts:
    only("list-rich-rules")
    out = "\n".join(cfg["rules"])
elif "get-ipsets" in opts:
    only("get-ipsets")
    out = " ".join(sorted(sets))
elif "info-ipset" in opts:
    only("info-ipset")
    s = need_set(opts["info-ipset"])
    out = "\n".join([opts["info-ipset"], "  type: hash:net", f"  options: family={s['family']}",
                     "  entries: " + " ".join(s["entries"])])
elif "new-ipset" in opts:
    only("new-ipset", "type", "option")
    name = opts["new-ipset"]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,31}", name or ""):
        fail("INVALID_IPSET", name)
    if name in sets:
        fail("NAME_CONFLICT", name)
    if opts["type"] != "hash:net":
        fail("INVALID_TYPE", opts["type"])
    if opts["option"] not in ("family=inet", "family=inet6"):
        fail("INVALID_OPTION", opts["option"])
    sets[name] = {"family": opts["option"].split("=")[1], "entries": []}
elif "delete-ipset" in opts:
    only("delete-ipset")
    need_set(opts["delete-ipset"])
    if any(f'ipset="{opts["delete-ipset"]}"' in r for r in cfg["rules"]):
        sys.exit("stand-in: ipset still used by a rich rule")
    del sets[opts["delete-ipset"]]
elif "ipset" in opts:
    s = need_set(opts["ipset"])
    if "get-entries" in opts:
        only("ipset", "get-entries")
        out = "\n".join(s["entries"])
    elif "add-entry" in opts or "remove-entry" in opts:
        verb = "add-entry" if "add-entry" in opts else "remove-entry"
        only("ipset", verb)
        entry = opts[verb]
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            fail("INVALID_ENTRY", entry)
        if net.version != (4 if s["family"] == "inet" else 6):
            fail("INVALID_ENTRY", f"{entry} in a {s['family']} ipset")
        if verb == "add-entry":
            if entry in s["entries"]:
                warn("ALREADY_ENABLED", entry)
            else:
                s["entries"].append(entry)
        elif entry in s["entries"]:
            s["entries"].remove(entry)
        else:
            warn("NOT_ENABLED", entry)
    else:
        sys.exit(f"stand-in: unmodelled options {sorted(opts)}")
elif "add-rich-rule" in opts or "remove-rich-rule" in opts:
    verb = "add-rich-rule" if "add-rich-rule" in opts else "remove-rich-rule"
    only(verb)
    rule = opts[verb]
    ours = r'rule family="(ipv4|ipv6)" source ipset="([^"]+)" port port="\d+" protocol="tcp" accept'
    m = re.fullmatch(ours, rule)
    if verb == "add-rich-rule":
        if m is None:
            fail("INVALID_RULE", rule)
        s = need_set(m.group(2))
        if s["family"] != {"ipv4": "inet", "ipv6": "inet6"}[m.group(1)]:
            fail("INVALID_RULE", f"family of {rule}")
        if rule in cfg["rules"]:
            warn("ALREADY_ENABLED", rule)
        else:
            cfg["rules"].append(rule)
    elif rule in cfg["rules"]:
        cfg["rules"].remove(rule)
    else:
        warn("NOT_ENABLED", rule)
elif "remove-port" in opts or "add-port" in opts:
    verb = "add-port" if "add-port" in opts else "remove-port"
    only(verb)
    if not re.fullmatch(r"\d+/(tcp|udp)", opts[verb] or ""):
        sys.exit(f"Error: INVALID_PORT: {opts[verb]}")
    if verb == "add-port" and opts[verb] not in cfg["ports"]:
        cfg["ports"].append(opts[verb])
    elif verb == "remove-port" and opts[verb] in cfg["ports"]:
        cfg["ports"].remove(opts[verb])
else:
    sys.exit(f"stand-in: unmodelled options {sorted(opts)}")
if out is not None:
    print(out)
    sys.exit(0)
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".new", "w") as f:
    json.dump(cfg, f)
os.replace(path + ".new", path)
print("success")
"""

# An enabled firewalld that is not running: what the bed test installs beside the stand-in.
FIREWALLD_UNIT = """[Unit]
Description=stand-in firewalld (roachctl tests): enabled, never started by them

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""
