"""`home export` / `home import`: a cluster's home entry (CA, node certs, records) as one encrypted file.

The CA key exists only in the controller's home; losing the home means no new node, no rotation
and no client certs ever again. The export is the recovery path: `clusters/<name>/` as a tar,
encrypted with AES-256-GCM under a key derived from a passphrase with scrypt (the passphrase
comes from a prompt or an environment variable, never from argv). The header (format, KDF
parameters, salt, cluster name) is authenticated as associated data, so nothing in the file can
be altered without the passphrase check failing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import tarfile
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from roachctl.errors import RefusedError, UsageError
from roachctl.fsutil import exclusive_write, private_dir
from roachctl.operation.home import ClusterHome, check_name
from roachctl.operation.lock import controller_lock

MAGIC = b"roachctl-home-export v1\n"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1  # 128 MiB to derive the key: slow to guess
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024  # an import never derives with more (a header could ask for GiBs)
MAX_SIZE = 64 * 1024 * 1024
MIN_PASSPHRASE = 12
SKIP = {"journal.jsonl.lock"}


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.name in SKIP or path.is_symlink():
                continue
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


def export_home(home: ClusterHome, out: Path, passphrase: str) -> int:
    """Write the encrypted export of `home` to `out` (created exclusively); returns its size.

    Under the cluster's lock: no rotation or deploy changes the entry while it is read."""
    home.require()
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    with controller_lock(home.root, home.name, "home-export"):
        return _export(home, out, passphrase)


def _export(home: ClusterHome, out: Path, passphrase: str) -> int:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header = {"cluster": home.name, "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
              "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
              "created": time.time()}  # fmt: skip
    head = json.dumps(header, sort_keys=True).encode()
    sealed = AESGCM(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, _tar(home.dir), head)
    data = MAGIC + head + b"\n" + sealed
    try:
        exclusive_write(out, data, 0o600)
    except FileExistsError:
        raise RefusedError(f"{out} already exists", hint="choose another file name") from None
    return len(data)


def read_export(path: Path, passphrase: str) -> tuple[str, bytes]:
    """(cluster name, tar bytes) of an export; a wrong passphrase or an altered file is refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not data.startswith(MAGIC) or len(data) > MAX_SIZE:
        raise UsageError(f"{path} is not a roachctl home export")
    head, _, sealed = data[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(head)
        salt, nonce = base64.b64decode(header["salt"]), base64.b64decode(header["nonce"])
        n, r, p, name = (
            int(header["n"]),
            int(header["r"]),
            int(header["p"]),
            check_name(str(header["cluster"])),
        )
        if header["kdf"] != "scrypt" or not (2**14 <= n <= 2**20 and 1 <= r <= 16 and 1 <= p <= 4):
            raise ValueError("unsupported key derivation")
        if 128 * n * r * p > MAX_SCRYPT_MEMORY:
            raise ValueError(f"scrypt parameters need more than {MAX_SCRYPT_MEMORY >> 20} MiB")
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} has a damaged header ({exc})") from None
    try:
        return name, AESGCM(_key(passphrase, salt, n, r, p)).decrypt(nonce, sealed, head)
    except InvalidTag:
        raise RefusedError(
            f"cannot decrypt {path}: wrong passphrase, or the file was altered", hint="check the passphrase"
        ) from None


def import_home(root: Path, path: Path, passphrase: str, *, force: bool) -> ClusterHome:
    """Restore an export under `root` (the --home); an existing entry is replaced only with `force`
    (the old one is kept beside it as clusters/.<name>.replaced-<time>)."""
    name, payload = read_export(path, passphrase)
    with controller_lock(root, name, "home-import"):
        return _import(root, path, name, payload, force=force)


def _import(root: Path, path: Path, name: str, payload: bytes, *, force: bool) -> ClusterHome:
    home = ClusterHome(root, name)
    if home.dir.exists() and not force:
        raise RefusedError(
            f"cluster {name!r} already has an entry in {home.dir.parent}; nothing was changed",
            hint="pass --force to replace it (the current entry is kept beside it), or use another --home",
        )
    staging = private_dir(root / "clusters" / f".{name}.import-{secrets.token_hex(4)}")
    try:
        _extract(payload, staging)
        if not (staging / "state.json").is_file():
            raise UsageError(f"{path} holds no state.json for cluster {name!r}")
        if home.dir.exists():
            os.rename(home.dir, home.dir.parent / f".{name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
        os.rename(staging, home.dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return ClusterHome(root, name)


def _extract(payload: bytes, into: Path) -> None:
    """Regular files and directories only, inside `into`, private modes (keys stay 0600)."""
    into = into.resolve()
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r") as tar:
        for member in tar.getmembers():
            target = (into / member.name).resolve()
            if (
                member.name.startswith("/")
                or ".." in Path(member.name).parts
                or not target.is_relative_to(into)
            ):
                raise UsageError(f"refusing an export member outside the entry: {member.name!r}")
            if member.isdir():
                private_dir(target)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                private_dir(target.parent)
                exclusive_write(target, source.read(), member.mode & 0o644)
            else:
                raise UsageError(f"refusing an export member that is not a file: {member.name!r}")
