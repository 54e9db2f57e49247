"""Where every file of a node lives: the seed's layout, made explicit in one place.

```
<install_root>/cockroach-<v>.linux-<arch>/   root:root 0755  versioned release (cockroach, lib/)
<home>/                                      root:root 0755  stable home
<home>/cockroach -> <install_dir>/cockroach                  symlinks: an upgrade flips them
<home>/lib       -> <install_dir>/lib
<home>/certs/                                root:user 0750  certs root:root 0644; node.key root:user 0640
<data>/                                      user 0700       WorkingDirectory, changing data
<data>/cockroach-data/                       user 0700       default store (the official unit's name)
<data>/logs/                                 user 0700       --log-dir
/etc/systemd/system/<unit>.service           root 0644
/etc/roachctl/firewall-<cluster>.<ext>       root            firewall rules roachctl owns
```
Why the unit starts `<home>/cockroach` and not the versioned binary: a rolling upgrade flips two
symlinks and restarts; the unit text (and so `deploy`'s plan) does not change with the version.
The CA key is never part of a node's layout (the seed's rule: it never leaves the controller).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from roachctl.model.topology import LOG_DIR, NodeConfig, Topology

SYSTEMD_DIR = "/etc/systemd/system"
ROACHCTL_ETC = "/etc/roachctl"


@dataclass(frozen=True)
class Layout:
    """Absolute paths of one node's files (all derived from the topology; nothing is guessed)."""

    install_dir: str
    install_binary: str
    install_lib: str
    home: str
    binary: str
    lib_link: str
    certs_dir: str
    data: str
    log_dir: str
    stores: tuple[str, ...]
    unit_name: str
    unit_path: str
    firewall_unit_name: str
    firewall_unit_path: str
    firewall_dir: str

    def firewall_file(self, cluster: str, ext: str) -> str:
        """The rules file roachctl owns for `cluster` (`ext`: nft, sh)."""
        return f"{self.firewall_dir}/firewall-{cluster}.{ext}"


def install_dir_name(version: str, arch: str) -> str:
    """The release's top directory, as the tarball names it (contract §1)."""
    return f"cockroach-{version}.linux-{arch}"


def firewall_unit_name(cluster: str) -> str:
    return f"roachctl-firewall-{cluster}.service"


def layout_for(topology: Topology, node: NodeConfig, arch: str) -> Layout:
    """The layout of `node` when the release for `arch` is installed."""
    paths = topology.paths
    install_dir = posixpath.join(paths.install_root, install_dir_name(topology.version, arch))
    unit_name = f"{topology.service.unit}.service"
    fw_unit = firewall_unit_name(topology.name)
    return Layout(
        install_dir=install_dir,
        install_binary=f"{install_dir}/cockroach",
        install_lib=f"{install_dir}/lib",
        home=paths.home,
        binary=f"{paths.home}/cockroach",
        lib_link=f"{paths.home}/lib",
        certs_dir=f"{paths.home}/certs",
        data=paths.data,
        log_dir=f"{paths.data}/{LOG_DIR}",
        stores=node.stores,
        unit_name=unit_name,
        unit_path=f"{SYSTEMD_DIR}/{unit_name}",
        firewall_unit_name=fw_unit,
        firewall_unit_path=f"{SYSTEMD_DIR}/{fw_unit}",
        firewall_dir=ROACHCTL_ETC,
    )


def is_inside(path: str, parent: str) -> bool:
    """True when `path` is `parent` or below it (paths are normalized by the model)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")
